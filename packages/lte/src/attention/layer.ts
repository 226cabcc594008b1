import {
  arange,
  argumentError,
  attention,
  greater,
  linear,
  mean,
  mul,
  type Rng,
  rope,
  type Tensor,
  tidy,
} from '@attnkit/core'
import { mergeHeads, splitHeads } from '../nn/functional.js'
import { normalInit, type ParamDType } from '../nn/init.js'
import { assertIntArg, assertNumberArg, assertOneOf, assertShapeArg } from '../validate.js'
import { coreWindow, type KeepRuleConfig } from './keep-rule.js'
import {
  initScorer,
  type ScorerConfig,
  type ScorerParams,
  scorerForward,
  scorerHalo,
  validateScorerConfig,
} from './scorer.js'
import { steSparseAttention } from './ste-attention.js'

/**
 * 'full': causal softmax attention. 'swa': sinks + sliding window. 'lte': sinks + window +
 * tokens the LTE scorer retains (the paper's sparse attention).
 */
export type AttentionKind = 'full' | 'swa' | 'lte'

export interface AttentionConfig {
  kind: AttentionKind
  dModel: number
  numHeads: number
  /** Key/value heads (grouped-query attention when fewer than numHeads). */
  numKvHeads: number
  headDim: number
  /** RoPE base (10000). */
  ropeBase: number
  /** s: sink tokens (swa, lte). */
  sinks: number
  /** w: the window covers the query and the w tokens before it (swa, lte). */
  window: number
  /** Capacity of the decode pool of retained tokens per KV head (lte). */
  poolSize: number
  /** Keep threshold on the scores (0.5). */
  threshold: number
  /** Weight of the L1 penalty mean(r) returned by forward (lte). */
  l1Weight: number
  scorer: ScorerConfig
}

/** Parameters, PyTorch names: linear weights [out, in]; the scorer as `lte_scorer.convs.{l}`. */
export type AttentionParams = {
  q_proj: { weight: Tensor }
  k_proj: { weight: Tensor }
  v_proj: { weight: Tensor }
  o_proj: { weight: Tensor }
  lte_scorer?: ScorerParams
}

export function validateAttentionConfig(c: AttentionConfig, where = 'attention'): void {
  assertOneOf(where, 'kind', c.kind, ['full', 'swa', 'lte'])
  for (const k of ['dModel', 'numHeads', 'numKvHeads', 'headDim'] as const) assertIntArg(where, k, c[k], 1)
  if (c.numHeads % c.numKvHeads !== 0)
    throw argumentError(where, 'numKvHeads', `a divisor of numHeads=${c.numHeads}`, c.numKvHeads)
  if (c.headDim % 2 !== 0) throw argumentError(where, 'headDim', 'an even number (for RoPE)', c.headDim)
  assertNumberArg(where, 'ropeBase', c.ropeBase, 1)
  if (c.kind === 'full') return
  assertIntArg(where, 'sinks', c.sinks, 0)
  assertIntArg(where, 'window', c.window, 1)
  if (c.kind === 'lte') {
    validateScorerConfig(c.scorer, `${where}.scorer`)
    // Delayed scoring: a token's score is final `halo` steps after it, before it leaves the window.
    assertIntArg(
      where,
      `window (>= the scorer's look-ahead ${scorerHalo(c.scorer)})`,
      c.window,
      scorerHalo(c.scorer),
    )
    assertIntArg(where, 'poolSize', c.poolSize, 0)
    assertNumberArg(where, 'threshold', c.threshold, 0, 1)
    assertNumberArg(where, 'l1Weight', c.l1Weight, 0)
  }
}

export function keepRuleOf(c: AttentionConfig): KeepRuleConfig {
  return { sinks: c.sinks, window: c.window, threshold: c.threshold }
}

export function initAttention(
  c: AttentionConfig,
  rng: Rng,
  dtype: ParamDType = 'float32',
  outStd = 0.02,
): AttentionParams {
  validateAttentionConfig(c)
  const { dModel: D, numHeads: H, numKvHeads: Hk, headDim: Dh } = c
  const lin = (out: number, inp: number, std = 0.02) => ({ weight: normalInit(rng, [out, inp], std, dtype) })
  const p: AttentionParams = {
    q_proj: lin(H * Dh, D),
    k_proj: lin(Hk * Dh, D),
    v_proj: lin(Hk * Dh, D),
    o_proj: lin(D, H * Dh, outStd),
  }
  if (c.kind === 'lte') p.lte_scorer = initScorer(c.scorer, D, Hk, rng, dtype)
  return p
}

/** q [B, H, T, Dh], k and v [B, Hk, T, Dh], with RoPE at positions start .. start + T - 1. */
export function attentionProjections(
  c: AttentionConfig,
  p: AttentionParams,
  x: Tensor,
  start = 0,
): { q: Tensor; k: Tensor; v: Tensor } {
  const T = x.shape[1]
  return tidy(() => {
    const pos = arange(start, start + T, 1, { dtype: 'int32', backend: x.backend })
    return {
      q: rope(splitHeads(linear(x, p.q_proj.weight), c.numHeads), pos, { base: c.ropeBase }),
      k: rope(splitHeads(linear(x, p.k_proj.weight), c.numKvHeads), pos, { base: c.ropeBase }),
      v: splitHeads(linear(x, p.v_proj.weight), c.numKvHeads),
    }
  })
}

export interface AttentionForwardOptions {
  /**
   * LTE layers: true (default) composes the attention from core ops with the straight-through
   * estimator so the scorer is trained; false runs core's fused attention with a boolean keep
   * mask (same values, no gradient to the scorer; for inference and prefill).
   */
  training?: boolean
}

export interface AttentionForwardResult {
  y: Tensor
  /** l1Weight * mean(r) for LTE layers (a scalar to add to the loss), else undefined. */
  penalty?: Tensor
  /** The scores r [B, Hk, T] for LTE layers. */
  scores?: Tensor
}

/** x [B, T, dModel] -> y [B, T, dModel], causal. */
export function attentionForward(
  c: AttentionConfig,
  p: AttentionParams,
  x: Tensor,
  opts: AttentionForwardOptions = {},
): AttentionForwardResult {
  assertShapeArg('attentionForward', 'x', x, [null, null, c.dModel], ['B', 'T', 'dModel'])
  return tidy(() => {
    const { q, k, v } = attentionProjections(c, p, x)
    let o: Tensor
    let penalty: Tensor | undefined
    let scores: Tensor | undefined
    if (c.kind === 'full') o = attention(q, k, v, { causal: true })
    else if (c.kind === 'swa')
      o = attention(q, k, v, { causal: true, window: coreWindow(c.window), sinks: c.sinks })
    else {
      if (!p.lte_scorer) throw new TypeError("attentionForward: an 'lte' layer needs params.lte_scorer")
      scores = scorerForward(c.scorer, p.lte_scorer, x)
      penalty = mul(mean(scores), c.l1Weight)
      o =
        opts.training === false
          ? lteAttention(q, k, v, scores, keepRuleOf(c))
          : steSparseAttention(q, k, v, scores, keepRuleOf(c))
    }
    return { y: linear(mergeHeads(o), p.o_proj.weight), penalty, scores }
  })
}

/**
 * LTE sparse attention through core's fused attention: causal, window w + 1, s sinks, keep =
 * (r > threshold). q [B, H, T, D], k/v [B, Hk, T, D], r [B, Hk, T]. No gradient reaches r.
 */
export function lteAttention(q: Tensor, k: Tensor, v: Tensor, scores: Tensor, rule: KeepRuleConfig): Tensor {
  return tidy(() =>
    attention(q, k, v, {
      causal: true,
      window: coreWindow(rule.window),
      sinks: rule.sinks,
      keep: greater(scores, rule.threshold),
    }),
  )
}
