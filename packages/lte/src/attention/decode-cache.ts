import {
  arange,
  argmin,
  attention,
  concat,
  equal,
  full,
  greater,
  greaterEqual,
  linear,
  logicalAnd,
  min,
  ones,
  reshape,
  slice,
  sub,
  type Tensor,
  tensor,
  tidy,
  where,
} from '@attnkit/core'
import type { KernelChoice } from '../gdn/delta-rule.js'
import { fusedDecodeAttention, fusedDecodeAvailable } from '../kernels/decode-attention.js'
import { mergeHeads } from '../nn/functional.js'
import type { ParamDType } from '../nn/init.js'
import { assertIntArg, assertShapeArg } from '../validate.js'
import { type AttentionConfig, type AttentionParams, attentionProjections } from './layer.js'
import { createScorerState, type ScorerState, scorerHalo, scorerStep } from './scorer.js'

/**
 * The decode cache of one attention layer.
 *
 * 'swa' and 'lte' layers hold a constant number of slots per KV head,
 *   [0, s)            sinks: tokens 0 .. s-1, written once
 *   [s, s + w)        ring buffer of the w tokens before the current one: token j >= s lives in
 *                     slot s + (j - s) mod w
 *   [s + w, s + w + P) pool of retained tokens (lte only)
 * as k [B, Hk, N, Dh], v [B, Hk, N, Dh], pos int32 [B, Hk, N] (the token's position, -1 when
 * empty) and score [B, Hk, N] (the LTE score once final; -1 in empty pool slots).
 *
 * Delayed scoring: the scorer sees `halo` (6) tokens ahead, so token j's score becomes final at
 * step j + halo (written into its ring slot then). Token j leaves the window at the end of step
 * j + w (w >= halo, so its score is final by then): if r_j > threshold it enters the pool,
 * taking an empty slot or evicting the pool's lowest score when r_j is higher (ties keep the
 * older token); otherwise it is dropped. 'full' layers keep every token (k/v grow).
 */
export interface AttentionCache {
  kind: AttentionConfig['kind']
  batch: number
  /** Tokens seen so far: the next token's position. */
  position: number
  /** 'full' only: every key and value so far, [B, Hk, t, Dh]. */
  keys?: Tensor
  values?: Tensor
  /** 'swa' / 'lte': the constant-size slots. */
  slots?: { k: Tensor; v: Tensor; pos: Tensor; score: Tensor }
  /** 'lte': the scorer's streaming buffers. */
  scorer?: ScorerState
}

export const slotCount = (c: AttentionConfig): number =>
  c.kind === 'full' ? 0 : c.sinks + c.window + (c.kind === 'lte' ? c.poolSize : 0)

export function createAttentionCache(
  c: AttentionConfig,
  batch: number,
  dtype: ParamDType = 'float32',
): AttentionCache {
  assertIntArg('createAttentionCache', 'batch', batch, 1)
  const cache: AttentionCache = { kind: c.kind, batch, position: 0 }
  if (c.kind === 'full') return cache
  const N = slotCount(c)
  const Hk = c.numKvHeads
  const poolStart = c.sinks + c.window
  const initialScore = new Float64Array(N)
  for (let n = poolStart; n < N; n++) initialScore[n] = -1
  cache.slots = {
    k: full([batch, Hk, N, c.headDim], 0, dtype),
    v: full([batch, Hk, N, c.headDim], 0, dtype),
    pos: full([batch, Hk, N], -1, 'int32'),
    score: tidy(() => where(full([batch, Hk, N], 1, 'bool'), tensor(initialScore, [N], { dtype }), 0)),
  }
  if (c.kind === 'lte') cache.scorer = createScorerState(c.scorer, c.dModel, batch, dtype)
  return cache
}

export interface DecodeOptions {
  /** The LTE decode attention: fused kernel, core ops, or the best available (default). */
  kernel?: KernelChoice
}

/** One decode step: xt [B, 1, dModel] (the layer's normed input) -> y [B, 1, dModel]. */
export function attentionDecode(
  c: AttentionConfig,
  p: AttentionParams,
  cache: AttentionCache,
  xt: Tensor,
  opts: DecodeOptions = {},
): Tensor {
  assertShapeArg('attentionDecode', 'xt', xt, [cache.batch, 1, c.dModel], ['B', '1', 'dModel'])
  const t = cache.position
  const { q, k, v } = attentionProjections(c, p, xt, t)
  let o: Tensor
  if (c.kind === 'full') {
    const keys = cache.keys ? concat([cache.keys, k], 2) : k
    const values = cache.values ? concat([cache.values, v], 2) : v
    if (cache.keys) {
      cache.keys.dispose()
      cache.values!.dispose()
      k.dispose()
      v.dispose()
    }
    cache.keys = keys
    cache.values = values
    o = attention(q, keys, values)
  } else {
    if (c.kind === 'lte') recordFinalScore(c, p, cache, xt, t)
    o = slotAttention(q, k, v, cache, opts.kernel ?? 'auto')
    writeToken(c, cache, k, v, t)
    k.dispose()
    v.dispose()
  }
  cache.position = t + 1
  q.dispose()
  const y = tidy(() => linear(mergeHeads(o), p.o_proj.weight))
  o.dispose()
  return y
}

/** Feeds the scorer and stores the score of token t - halo (now final) in its ring slot. */
function recordFinalScore(
  c: AttentionConfig,
  p: AttentionParams,
  cache: AttentionCache,
  xt: Tensor,
  t: number,
): void {
  const r = scorerStep(c.scorer, p.lte_scorer!, cache.scorer!, xt, t)
  if (!r) return
  const j = t - scorerHalo(c.scorer)
  const slots = cache.slots!
  if (j >= c.sinks) {
    const mask = oneHot(slotCount(c), c.sinks + ((j - c.sinks) % c.window), xt)
    const next = tidy(() => where(mask, reshape(r, [cache.batch, c.numKvHeads, 1]), slots.score))
    slots.score.dispose()
    slots.score = next
    mask.dispose()
  }
  r.dispose()
}

/** Attention of q [B, H, 1, Dh] over the occupied slots plus the new token. */
function slotAttention(q: Tensor, k: Tensor, v: Tensor, cache: AttentionCache, kernel: KernelChoice): Tensor {
  const s = cache.slots!
  const fused = kernel !== 'portable' && fusedDecodeAvailable(q, kernel === 'fused')
  if (fused) return fusedDecodeAttention(q, s.k, s.v, s.pos, k, v)
  return tidy(() => {
    const keep = concat([greaterEqual(s.pos, 0), ones([cache.batch, k.shape[1], 1], 'bool')], 2)
    return attention(q, concat([s.k, k], 2), concat([s.v, v], 2), { keep })
  })
}

/** End of step t: token t - w leaves the window (to the pool or gone); token t takes its slot. */
function writeToken(c: AttentionConfig, cache: AttentionCache, k: Tensor, v: Tensor, t: number): void {
  const N = slotCount(c)
  const slot = t < c.sinks ? t : c.sinks + ((t - c.sinks) % c.window)
  const leaving = t - c.window
  if (c.kind === 'lte' && c.poolSize > 0 && t >= c.sinks && leaving >= c.sinks)
    admitToPool(c, cache, slot, leaving)
  const s = cache.slots!
  const mask = oneHot(N, slot, k)
  const next = tidy(() => ({
    k: where(reshape(mask, [N, 1]), k, s.k),
    v: where(reshape(mask, [N, 1]), v, s.v),
    pos: where(mask, t, s.pos),
    // The new token's score is pending until step t + halo.
    score: c.kind === 'lte' ? where(mask, 0, s.score) : s.score,
  }))
  if (next.score !== s.score) s.score.dispose()
  s.k.dispose()
  s.v.dispose()
  s.pos.dispose()
  cache.slots = next
  mask.dispose()
}

/**
 * Moves the token in ring slot `slot` (position `position`) into the pool when its score passes
 * the threshold and beats the pool's lowest score (empty slots score -1), per KV head.
 */
function admitToPool(c: AttentionConfig, cache: AttentionCache, slot: number, position: number): void {
  const s = cache.slots!
  const N = slotCount(c)
  const B = cache.batch
  const Hk = c.numKvHeads
  const poolStart = c.sinks + c.window
  const next = tidy(() => {
    const candScore = slice(s.score, [0, 0, slot], [B, Hk, 1])
    const candK = slice(s.k, [0, 0, slot, 0], [B, Hk, 1, c.headDim])
    const candV = slice(s.v, [0, 0, slot, 0], [B, Hk, 1, c.headDim])
    const poolScore = slice(s.score, [0, 0, poolStart], [B, Hk, c.poolSize])
    const lowest = min(poolScore, -1, { keepDims: true })
    const victim = reshape(argmin(poolScore, -1), [B, Hk, 1])
    const admit = logicalAnd(greater(candScore, c.threshold), greater(candScore, lowest))
    const relative = sub(arange(0, N, 1, { dtype: 'int32', backend: s.pos.backend }), poolStart)
    const target = logicalAnd(equal(relative, victim), admit)
    const target4 = reshape(target, [B, Hk, N, 1])
    return {
      k: where(target4, candK, s.k),
      v: where(target4, candV, s.v),
      pos: where(target, position, s.pos),
      score: where(target, candScore, s.score),
    }
  })
  for (const x of [s.k, s.v, s.pos, s.score]) x.dispose()
  cache.slots = next
}

function oneHot(n: number, at: number, like: Tensor): Tensor {
  const m = new Uint8Array(n)
  m[at] = 1
  return tensor(m, [n], { dtype: 'bool', backend: like.backend })
}

/** Host copy of the positions each KV head's slots hold (-1 = empty), [B, Hk, N]. */
export async function cachedPositions(cache: AttentionCache): Promise<Int32Array> {
  if (!cache.slots) throw new TypeError("cachedPositions: only 'swa' and 'lte' caches have slots")
  return (await cache.slots.pos.data()) as Int32Array
}

/** Every tensor the cache holds (for disposal and byte counts). */
export function attentionCacheTensors(cache: AttentionCache): Tensor[] {
  const out: Tensor[] = []
  if (cache.keys) out.push(cache.keys, cache.values!)
  if (cache.slots) out.push(cache.slots.k, cache.slots.v, cache.slots.pos, cache.slots.score)
  if (cache.scorer) out.push(...cache.scorer.buffers)
  return out
}
