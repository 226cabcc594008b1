import {
  arange,
  attention,
  byteSize,
  concat,
  type DType,
  linear,
  type Rng,
  reshape,
  rope,
  type Tensor,
  type TensorTree,
  tidy,
  transpose,
} from '@attnkit/core'
import {
  type AttentionCache,
  type GdnConfig,
  type GdnParams,
  type GdnState,
  type LteAttentionConfig,
  type LteAttentionParams,
  loadLte,
  loadMosa,
  loadTpa,
  type MosaConfig,
  type MosaParams,
  type TpaCache,
  type TpaConfig,
} from './packages.js'

/**
 * The token mixers a block can hold, as plain JSON (it is stored in checkpoints). Each names
 * the package whose layer it runs; 'dense' is plain multi-head attention from core ops.
 */
export type MixerSpec =
  | { kind: 'dense'; heads: number; kvHeads: number; headDim: number; ropeBase: number }
  | { kind: 'mosa'; config: MosaConfig }
  | { kind: 'tpa'; config: TpaConfig }
  | { kind: 'gdn'; config: GdnConfig }
  | { kind: 'lte-attention'; config: LteAttentionConfig }

export interface MixerContext {
  /** LTE layers train their scorer through the straight-through estimator only when training. */
  training: boolean
  /** Compute dtype (the params given to forward are already in it). */
  dtype: DType
}

/** A layer's decode state, held by the mixer that made it. */
export interface MixerCache {
  /** Every tensor the state holds now (its bytes are the decode memory). */
  tensors(): Tensor[]
  /** Bytes the state holds (default: the sum over tensors()). */
  bytes?(): number
  dispose(): void
}

export interface Mixer {
  spec: MixerSpec
  /** Short description for logs and tables. */
  label: string
  /** Float32 parameters (the master copy). */
  init(rng: Rng, dModel: number, outStd: number): TensorTree
  /** x [B, T, dModel] -> y [B, T, dModel], causal; LTE layers also return their L1 penalty. */
  forward(p: TensorTree, x: Tensor, ctx: MixerContext): { y: Tensor; penalty?: Tensor }
  /** A fresh decode state for `batch` sequences of up to maxLen tokens. */
  createCache?(batch: number, maxLen: number, dtype: DType): MixerCache
  /** The whole prompt at once: x [B, T, dModel] -> y, filling the cache. */
  prefill?(p: TensorTree, cache: MixerCache, x: Tensor): Tensor
  /** One token: xt [B, 1, dModel] -> y [B, 1, dModel]; the cache advances. */
  step?(p: TensorTree, cache: MixerCache, xt: Tensor): Tensor
}

export function cacheBytes(cache: MixerCache): number {
  return cache.bytes ? cache.bytes() : cache.tensors().reduce((n, t) => n + t.size * byteSize(t.dtype), 0)
}

const splitHeads = (x: Tensor, heads: number): Tensor => {
  const [B, T, F] = x.shape
  return transpose(reshape(x, [B, T, heads, F / heads]), [0, 2, 1, 3])
}
const mergeHeads = (x: Tensor): Tensor => {
  const [B, H, T, D] = x.shape
  return reshape(transpose(x, [0, 2, 1, 3]), [B, T, H * D])
}

type DenseParams = { q: Tensor; k: Tensor; v: Tensor; o: Tensor }

/** Growing K/V of dense attention: [B, Hk, t, Dh]. */
class DenseCache implements MixerCache {
  k?: Tensor
  v?: Tensor
  position = 0
  tensors(): Tensor[] {
    return this.k ? [this.k, this.v!] : []
  }
  append(k: Tensor, v: Tensor): void {
    const [k2, v2] = this.k ? [concat([this.k, k], 2), concat([this.v!, v], 2)] : [k, v]
    if (this.k) for (const t of [this.k, this.v!, k, v]) t.dispose()
    this.k = k2
    this.v = v2
    this.position += k.shape[2]
  }
  dispose(): void {
    for (const t of this.tensors()) t.dispose()
    this.k = this.v = undefined
  }
}

function denseMixer(spec: Extract<MixerSpec, { kind: 'dense' }>): Mixer {
  const { heads: H, kvHeads: Hk, headDim: Dh, ropeBase } = spec
  const project = (p: DenseParams, x: Tensor, start: number) =>
    tidy(() => {
      const pos = arange(start, start + x.shape[1], 1, { dtype: 'int32', backend: x.backend })
      return {
        q: rope(splitHeads(linear(x, p.q), H), pos, { base: ropeBase }),
        k: rope(splitHeads(linear(x, p.k), Hk), pos, { base: ropeBase }),
        v: splitHeads(linear(x, p.v), Hk),
      }
    })
  const attendCached = (p: DenseParams, cache: DenseCache, x: Tensor, causal: boolean) => {
    const { q, k, v } = project(p, x, cache.position)
    cache.append(k, v)
    const y = tidy(() => linear(mergeHeads(attention(q, cache.k!, cache.v!, { causal })), p.o))
    q.dispose()
    return y
  }
  return {
    spec,
    label: Hk === H ? `dense MHA ${H}x${Dh}` : `dense GQA ${H}x${Dh} (${Hk} KV heads)`,
    init: (rng, D, outStd) => ({
      q: rng.normal([H * Dh, D], 0, 0.02),
      k: rng.normal([Hk * Dh, D], 0, 0.02),
      v: rng.normal([Hk * Dh, D], 0, 0.02),
      o: rng.normal([D, H * Dh], 0, outStd),
    }),
    forward: (params, x) => {
      const p = params as DenseParams
      return {
        y: tidy(() => {
          const { q, k, v } = project(p, x, 0)
          return linear(mergeHeads(attention(q, k, v, { causal: true })), p.o)
        }),
      }
    },
    createCache: () => new DenseCache(),
    // The prompt attends causally among itself; a decoded token sees the whole cache.
    prefill: (params, cache, x) => attendCached(params as DenseParams, cache as DenseCache, x, true),
    step: (params, cache, xt) => attendCached(params as DenseParams, cache as DenseCache, xt, false),
  }
}

async function mosaMixer(spec: Extract<MixerSpec, { kind: 'mosa' }>): Promise<Mixer> {
  const mosa = await loadMosa()
  const c = spec.config
  return {
    spec,
    label:
      c.sparseHeads > 0
        ? `MoSA ${c.denseHeads} dense + ${c.sparseHeads} sparse heads x${c.headDim}, sparsity ${c.sparsity}`
        : `dense ${c.denseHeads}x${c.headDim} (MoSA layer, no sparse heads)`,
    init: (rng) => mosa.init({ ...c, dtype: 'float32' }, rng),
    // Params rebuilt by the optimiser or a cast lose the config the package attaches: pass it.
    forward: (p, x) => ({ y: mosa.forward(p as MosaParams, x, { config: c }) }),
  }
}

class TpaMixerCache implements MixerCache {
  constructor(readonly cache: TpaCache) {}
  tensors(): Tensor[] {
    return []
  }
  /** The factorised records of the tokens held (the store is allocated at maxLen up front). */
  bytes(): number {
    return this.cache.bytes().used
  }
  dispose(): void {
    this.cache.dispose()
  }
}

async function tpaMixer(spec: Extract<MixerSpec, { kind: 'tpa' }>): Promise<Mixer> {
  const tpa = await loadTpa()
  const c = spec.config
  const variant = c.variant ?? 'tpa'
  const ranks =
    variant === 'tpa'
      ? ` ranks Q${c.qRank ?? 6} K${c.kRank ?? 2} V${c.vRank ?? 2}`
      : variant === 'gqa'
        ? ` (${c.kvHeads} KV heads)`
        : ''
  const withDType = (dtype: DType): TpaConfig => ({ ...c, dtype })
  return {
    spec,
    label: `${variant.toUpperCase()} ${c.heads}x${c.headDim}${ranks}`,
    init: (rng) => tpa.init(withDType('float32'), rng),
    // The package checks x against the config's dtype; params are in the compute dtype here.
    forward: (p, x, ctx) => ({
      y: tpa.forward(p as Record<string, Tensor>, x, { config: withDType(ctx.dtype) }),
    }),
    createCache: (batch, maxLen, dtype) =>
      new TpaMixerCache(tpa.createCache(withDType(dtype), { batch, maxLen })),
    prefill: (p, cache, x) => tpa.prefill(p as Record<string, Tensor>, (cache as TpaMixerCache).cache, x),
  }
}

type ParamDType = 'float32' | 'float64' | 'float16' | 'bfloat16'

async function gdnMixer(spec: Extract<MixerSpec, { kind: 'gdn' }>): Promise<Mixer> {
  const lte = await loadLte()
  const c = spec.config
  class GdnCache implements MixerCache {
    constructor(public state: GdnState) {}
    tensors(): Tensor[] {
      return [this.state.S, this.state.convQ, this.state.convK, this.state.convV]
    }
    dispose(): void {
      for (const t of this.tensors()) t.dispose()
    }
  }
  return {
    spec,
    label: `GDN ${c.numHeads}x${c.headKDim}`,
    init: (rng, _D, outStd) => lte.initGdn(c, rng, 'float32', outStd),
    forward: (p, x) => ({ y: lte.gdnForward(c, p as GdnParams, x).y }),
    createCache: (batch, _maxLen, dtype) => new GdnCache(lte.createGdnState(c, batch, dtype as ParamDType)),
    step: (p, cache, xt) => lte.gdnDecode(c, p as GdnParams, (cache as GdnCache).state, xt),
  }
}

async function lteAttentionMixer(spec: Extract<MixerSpec, { kind: 'lte-attention' }>): Promise<Mixer> {
  const lte = await loadLte()
  const c = spec.config
  const what =
    c.kind === 'full'
      ? 'full attention'
      : c.kind === 'swa'
        ? `SWA (${c.sinks} sinks + window ${c.window})`
        : `LTE sparse attention (${c.sinks} sinks + window ${c.window} + pool ${c.poolSize})`
  class AttnCache implements MixerCache {
    constructor(readonly cache: AttentionCache) {}
    tensors(): Tensor[] {
      return lte.attentionCacheTensors(this.cache)
    }
    dispose(): void {
      for (const t of this.tensors()) t.dispose()
    }
  }
  return {
    spec,
    label: `${what} ${c.numHeads}x${c.headDim}`,
    init: (rng, _D, outStd) => lte.initAttention(c, rng, 'float32', outStd),
    forward: (p, x, ctx) => {
      const r = lte.attentionForward(c, p as LteAttentionParams, x, { training: ctx.training })
      return { y: r.y, penalty: r.penalty }
    },
    createCache: (batch, _maxLen, dtype) =>
      new AttnCache(lte.createAttentionCache(c, batch, dtype as ParamDType)),
    step: (p, cache, xt) => lte.attentionDecode(c, p as LteAttentionParams, (cache as AttnCache).cache, xt),
  }
}

/** The mixer for a spec (loads the package it needs). */
export async function createMixer(spec: MixerSpec): Promise<Mixer> {
  switch (spec.kind) {
    case 'dense':
      return denseMixer(spec)
    case 'mosa':
      return mosaMixer(spec)
    case 'tpa':
      return tpaMixer(spec)
    case 'gdn':
      return gdnMixer(spec)
    case 'lte-attention':
      return lteAttentionMixer(spec)
    default:
      throw new Error(
        `createMixer: argument 'spec.kind' expected 'dense' | 'mosa' | 'tpa' | 'gdn' | 'lte-attention', got ${JSON.stringify((spec as { kind: unknown }).kind)}`,
      )
  }
}
