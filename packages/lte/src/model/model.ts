import {
  add,
  argumentError,
  byteSize,
  embedding,
  linear,
  type Rng,
  reshape,
  rmsNorm,
  scalar,
  type Tensor,
  tidy,
} from '@attnkit/core'
import {
  type AttentionCache,
  attentionCacheTensors,
  attentionDecode,
  createAttentionCache,
} from '../attention/decode-cache.js'
import { type AttentionParams, attentionForward, initAttention } from '../attention/layer.js'
import type { KernelChoice } from '../gdn/delta-rule.js'
import {
  createGdnState,
  type GdnParams,
  type GdnState,
  gdnDecode,
  gdnForward,
  initGdn,
} from '../gdn/layer.js'
import { type SwiGluParams, swiglu } from '../nn/functional.js'
import { constInit, normalInit, type ParamDType } from '../nn/init.js'
import { assertDTypeArg, assertIntArg, assertShapeArg } from '../validate.js'
import {
  attentionLayerConfig,
  gdnLayerConfig,
  type LayerKind,
  type ModelConfig,
  validateModelConfig,
} from './config.js'

/** One block's parameters (flash-linear-attention names: attn_norm, attn, mlp_norm, mlp). */
export type BlockParams = {
  attn_norm: { weight: Tensor }
  attn: GdnParams | AttentionParams
  mlp_norm: { weight: Tensor }
  mlp: SwiGluParams
}

/** A model's parameters; flattened with '.' they are the PyTorch state-dict names. */
export type ModelParams = {
  model: { embeddings: { weight: Tensor }; layers: BlockParams[]; norm: { weight: Tensor } }
  lm_head?: { weight: Tensor }
}

export interface ForwardOptions {
  /** LTE layers: STE composition so the scorer learns (default true); false for inference. */
  training?: boolean
  /** GDN kernel choice (see gatedDelta). */
  kernel?: KernelChoice
}

export interface ForwardResult {
  /** [B, T, vocabSize]. */
  logits: Tensor
  /** Sum of the LTE layers' L1 penalties (a scalar; 0 without LTE layers). Add it to the loss. */
  penalty: Tensor
}

export interface InitOptions {
  dtype?: ParamDType
}

/** The decode state of a whole model: constant size unless it has full-attention layers. */
export interface ModelCache {
  batch: number
  position: number
  layers: ({ kind: 'gdn'; state: GdnState } | { kind: Exclude<LayerKind, 'gdn'>; cache: AttentionCache })[]
}

export function initModel(c: ModelConfig, rng: Rng, opts: InitOptions = {}): ModelParams {
  validateModelConfig(c)
  const dtype = opts.dtype ?? 'float32'
  const D = c.dModel
  // GPT-2 / flash-linear-attention: residual output projections scaled by 1/sqrt(2 * layers).
  const outStd = 0.02 / Math.sqrt(2 * c.layers.length)
  const layers = c.layers.map((kind, i) => {
    const r = rng.fork(i)
    const attn =
      kind === 'gdn'
        ? initGdn(gdnLayerConfig(c), r, dtype, outStd)
        : initAttention(attentionLayerConfig(c, kind), r, dtype, outStd)
    return {
      attn_norm: { weight: constInit([D], 1, dtype) },
      attn,
      mlp_norm: { weight: constInit([D], 1, dtype) },
      mlp: {
        gate_proj: { weight: normalInit(r, [c.mlpHidden, D], 0.02, dtype) },
        up_proj: { weight: normalInit(r, [c.mlpHidden, D], 0.02, dtype) },
        down_proj: { weight: normalInit(r, [D, c.mlpHidden], outStd, dtype) },
      },
    }
  })
  const head = rng.fork(c.layers.length)
  const params: ModelParams = {
    model: {
      embeddings: { weight: normalInit(head, [c.vocabSize, D], 0.02, dtype) },
      layers,
      norm: { weight: constInit([D], 1, dtype) },
    },
  }
  if (!c.tieEmbeddings) params.lm_head = { weight: normalInit(head, [c.vocabSize, D], 0.02, dtype) }
  return params
}

function outputWeight(c: ModelConfig, p: ModelParams): Tensor {
  if (c.tieEmbeddings) return p.model.embeddings.weight
  if (!p.lm_head) throw new TypeError(`model '${c.name}': params.lm_head is missing (tieEmbeddings is false)`)
  return p.lm_head.weight
}

/** tokens int32 [B, T] -> logits [B, T, V] and the LTE penalty. */
export function modelForward(
  c: ModelConfig,
  p: ModelParams,
  tokens: Tensor,
  opts: ForwardOptions = {},
): ForwardResult {
  assertDTypeArg('forward', 'tokens', tokens, 'int32')
  assertShapeArg('forward', 'tokens', tokens, [null, null], ['B', 'T'])
  if (p.model.layers.length !== c.layers.length)
    throw argumentError(
      'forward',
      'params.model.layers',
      `${c.layers.length} blocks (model '${c.name}')`,
      `${p.model.layers.length} blocks`,
    )
  return tidy(() => {
    let x = embedding(p.model.embeddings.weight, tokens)
    let penalty: Tensor = scalar(0, x.dtype)
    c.layers.forEach((kind, i) => {
      const b = p.model.layers[i]
      const h = rmsNorm(x, b.attn_norm.weight, c.normEps)
      if (kind === 'gdn') {
        x = add(x, gdnForward(gdnLayerConfig(c), b.attn as GdnParams, h, { kernel: opts.kernel }).y)
      } else {
        const r = attentionForward(attentionLayerConfig(c, kind), b.attn as AttentionParams, h, {
          training: opts.training,
        })
        x = add(x, r.y)
        if (r.penalty) penalty = add(penalty, r.penalty)
      }
      x = add(x, swiglu(b.mlp, rmsNorm(x, b.mlp_norm.weight, c.normEps)))
    })
    const logits = linear(rmsNorm(x, p.model.norm.weight, c.normEps), outputWeight(c, p))
    return { logits, penalty }
  })
}

export function createModelCache(c: ModelConfig, opts: { batch: number; dtype?: ParamDType }): ModelCache {
  assertIntArg('createCache', 'batch', opts.batch, 1)
  const dtype = opts.dtype ?? 'float32'
  return {
    batch: opts.batch,
    position: 0,
    layers: c.layers.map((kind) =>
      kind === 'gdn'
        ? { kind, state: createGdnState(gdnLayerConfig(c), opts.batch, dtype) }
        : { kind, cache: createAttentionCache(attentionLayerConfig(c, kind), opts.batch, dtype) },
    ),
  }
}

/** One decode step: tokens int32 [B] (the newest token of each sequence) -> logits [B, V]. */
export function modelDecode(
  c: ModelConfig,
  p: ModelParams,
  cache: ModelCache,
  tokens: Tensor,
  opts: { kernel?: KernelChoice } = {},
): Tensor {
  assertDTypeArg('decode', 'tokens', tokens, 'int32')
  assertShapeArg('decode', 'tokens', tokens, [cache.batch], ['B'])
  const B = cache.batch
  let x = tidy(() => reshape(embedding(p.model.embeddings.weight, tokens), [B, 1, c.dModel]))
  c.layers.forEach((kind, i) => {
    const b = p.model.layers[i]
    const entry = cache.layers[i]
    const h = rmsNorm(x, b.attn_norm.weight, c.normEps)
    const y =
      entry.kind === 'gdn'
        ? gdnDecode(gdnLayerConfig(c), b.attn as GdnParams, entry.state, h)
        : attentionDecode(
            attentionLayerConfig(c, kind as Exclude<LayerKind, 'gdn'>),
            b.attn as AttentionParams,
            entry.cache,
            h,
            opts,
          )
    const next = tidy(() => {
      const x1 = add(x, y)
      return add(x1, swiglu(b.mlp, rmsNorm(x1, b.mlp_norm.weight, c.normEps)))
    })
    for (const t of [x, h, y]) t.dispose()
    x = next
  })
  const logits = tidy(() =>
    reshape(linear(rmsNorm(x, p.model.norm.weight, c.normEps), outputWeight(c, p)), [B, c.vocabSize]),
  )
  x.dispose()
  cache.position++
  return logits
}

/** Every tensor a model cache holds. */
export function cacheTensors(cache: ModelCache): Tensor[] {
  return cache.layers.flatMap((l) =>
    l.kind === 'gdn'
      ? [l.state.S, l.state.convQ, l.state.convK, l.state.convV]
      : attentionCacheTensors(l.cache),
  )
}

/** Bytes the cache holds now (as stored: element count x dtype size). */
export function cacheBytes(cache: ModelCache): number {
  return cacheTensors(cache).reduce((n, t) => n + t.size * byteSize(t.dtype), 0)
}

export function disposeCache(cache: ModelCache): void {
  for (const t of cacheTensors(cache)) t.dispose()
}
