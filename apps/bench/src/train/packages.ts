import type { Backend, DType, Rng, Tensor, TensorTree } from '@attnkit/core'
import { importOptional } from '../optional-imports.js'

/**
 * The parts of the mechanism packages' APIs the training code calls. The bench loads these
 * packages on demand (a missing or unbuilt one only disables the models that need it), so they
 * are typed here and their functions checked when loaded.
 */

export interface MosaConfig {
  dModel: number
  headDim: number
  denseHeads: number
  sparseHeads: number
  sparsity: number
  rope?: boolean | { base?: number }
  dtype?: DType
}

export interface MosaModule {
  init(config: MosaConfig, rng: Rng, opts?: { backend?: Backend }): TensorTree
  forward(
    params: TensorTree,
    x: Tensor,
    opts?: { path?: 'auto' | 'fused' | 'portable'; config?: MosaConfig },
  ): Tensor
  computeMatchedHeads(opts: {
    dModel: number
    headDim: number
    heads: number
    denseHeads?: number
    sparsity: number
    seqLen: number
    flops?: 'forward' | 'training'
  }): number
  cost(
    config: MosaConfig,
    opts: { seqLen: number; batch?: number; dtype?: DType },
  ): { flops: number; trainingFlops: number; kvCacheBytes: number; k: number }
}

export type TpaVariant = 'tpa' | 'tpa-kvonly' | 'mha' | 'mqa' | 'gqa'

export interface TpaConfig {
  dModel: number
  heads: number
  headDim: number
  variant?: TpaVariant
  qRank?: number
  kRank?: number
  vRank?: number
  kvHeads?: number
  rope?: { base?: number } | false
  dtype?: DType
}

export interface TpaCache {
  bytes(): { allocated: number; used: number; perToken: number }
  dispose(): void
}

export interface TpaModule {
  init(config: TpaConfig, rng: Rng, opts?: { backend?: Backend }): Record<string, Tensor>
  forward(params: Record<string, Tensor>, x: Tensor, opts?: { config?: TpaConfig }): Tensor
  paramSpecs(config: TpaConfig): { key: string; shape: [number, number] }[]
  createCache(config: TpaConfig, opts: { batch: number; maxLen: number }): TpaCache
  prefill(params: Record<string, Tensor>, cache: TpaCache, x: Tensor): Tensor
  cost(
    config: TpaConfig,
    opts: { seqLen: number; batch?: number; dtype?: DType; layers?: number },
  ): {
    forward: { flops: number }
    kvCache: { bytesPerToken: { tpa: number; mha: number }; bytes: { tpa: number; mha: number } }
  }
}

export interface GdnConfig {
  dModel: number
  numHeads: number
  headKDim: number
  headVDim: number
  convSize: number
  chunkSize: number
  normEps: number
}

export type LteAttentionKind = 'full' | 'swa' | 'lte'

export interface LteAttentionConfig {
  kind: LteAttentionKind
  dModel: number
  numHeads: number
  numKvHeads: number
  headDim: number
  ropeBase: number
  sinks: number
  window: number
  poolSize: number
  threshold: number
  l1Weight: number
  scorer: { hidden: number; layers: number; kernelSize: number; dilation: number }
}

export interface LteModelOptions {
  vocabSize: number
  dModel: number
  numLayers: number
  headDim?: number
  numKvHeads?: number
  attentionEvery?: number
  sinks?: number
  window?: number
  poolSize?: number
  mlpHidden?: number
}

export interface LteModelConfig {
  name: string
  vocabSize: number
  dModel: number
  layers: ('gdn' | LteAttentionKind)[]
  mlpHidden: number
  normEps: number
}

/** Decode state objects of the LTE package (opaque here: created, stepped, listed, freed by it). */
export type GdnState = Record<'S' | 'convQ' | 'convK' | 'convV', Tensor>
export type AttentionCache = { position: number }

type ParamDType = 'float32' | 'float64' | 'float16' | 'bfloat16'

export interface LteModule {
  initGdn(c: GdnConfig, rng: Rng, dtype?: ParamDType, outStd?: number): TensorTree
  gdnForward(c: GdnConfig, p: TensorTree, x: Tensor): { y: Tensor }
  createGdnState(c: GdnConfig, batch: number, paramDType?: ParamDType): GdnState
  gdnDecode(c: GdnConfig, p: TensorTree, state: GdnState, xt: Tensor): Tensor
  initAttention(c: LteAttentionConfig, rng: Rng, dtype?: ParamDType, outStd?: number): TensorTree
  attentionForward(
    c: LteAttentionConfig,
    p: TensorTree,
    x: Tensor,
    opts?: { training?: boolean },
  ): { y: Tensor; penalty?: Tensor }
  createAttentionCache(c: LteAttentionConfig, batch: number, dtype?: ParamDType): AttentionCache
  attentionDecode(c: LteAttentionConfig, p: TensorTree, cache: AttentionCache, xt: Tensor): Tensor
  attentionCacheTensors(cache: AttentionCache): Tensor[]
  laLTEConfig(o: LteModelOptions): LteModelConfig
  gdnConfig(o: LteModelOptions): LteModelConfig
  gdnSwaConfig(o: LteModelOptions): LteModelConfig
  fullAttentionConfig(o: LteModelOptions): LteModelConfig
  gdnLayerConfig(c: LteModelConfig): GdnConfig
  attentionLayerConfig(c: LteModelConfig, kind: LteAttentionKind): LteAttentionConfig
}

export interface Packages {
  mosa?: MosaModule
  tpa?: TpaModule
  lte?: LteModule
}

const loaded: Packages = {}

/** The module, once it is known to export every function the training code calls. */
function requireFunctions<T>(mod: Record<string, unknown>, pkg: string, names: readonly string[]): T {
  const missing = names.filter((n) => typeof mod[n] !== 'function')
  if (missing.length > 0)
    throw new Error(
      `${pkg} does not export ${missing.join(', ')} (attnkit-bench train needs them; rebuild it with pnpm --filter ${pkg} build, or its API changed)`,
    )
  return mod as T
}

export async function loadMosa(): Promise<MosaModule> {
  loaded.mosa ??= requireFunctions<MosaModule>(await importOptional('@attnkit/mosa'), '@attnkit/mosa', [
    'init',
    'forward',
    'computeMatchedHeads',
    'cost',
  ])
  return loaded.mosa
}

export async function loadTpa(): Promise<TpaModule> {
  loaded.tpa ??= requireFunctions<TpaModule>(await importOptional('@attnkit/tpa'), '@attnkit/tpa', [
    'init',
    'forward',
    'paramSpecs',
    'createCache',
    'prefill',
    'cost',
  ])
  return loaded.tpa
}

export async function loadLte(): Promise<LteModule> {
  loaded.lte ??= requireFunctions<LteModule>(await importOptional('@attnkit/lte'), '@attnkit/lte', [
    'initGdn',
    'gdnForward',
    'createGdnState',
    'gdnDecode',
    'initAttention',
    'attentionForward',
    'createAttentionCache',
    'attentionDecode',
    'attentionCacheTensors',
    'laLTEConfig',
    'gdnConfig',
    'gdnSwaConfig',
    'fullAttentionConfig',
    'gdnLayerConfig',
    'attentionLayerConfig',
  ])
  return loaded.lte
}
