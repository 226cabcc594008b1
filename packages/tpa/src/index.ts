/**
 * @attnkit/tpa: Tensor Product Attention (Zhang et al., "Tensor Product Attention Is All You
 * Need", arXiv 2501.06425) with a factorised KV cache and a decode that works in factor space.
 */
export { type CacheOptions, createCache, TpaCache } from './cache.js'
export {
  type FactorSpec,
  kvHeadsOf,
  type RecordLayout,
  type ResolvedRope,
  type ResolvedTpaConfig,
  type RopeConfig,
  recordLayout,
  resolveConfig,
  type TpaConfig,
  type TpaVariant,
  VARIANTS,
} from './config.js'
export { type CostOptions, cost, type KvCacheCost, type TpaCost } from './cost.js'
export {
  type DecodeOptions,
  decode,
  factorAttention,
  portableFactorAttention,
  prefill,
  splitRecords,
} from './decode.js'
export {
  computeFactors,
  disposeFactors,
  type Factor,
  type Factors,
  materializeHeads,
  ropeFactor,
  toRecords,
} from './factors.js'
export { type ForwardOptions, forward } from './forward.js'
export type { Impl } from './impl.js'
export { fusedLanguage, type Language } from './kernels/languages.js'
export {
  CACHE_WRITE_KERNEL,
  COPY_KERNEL,
  DECODE_COMBINE_KERNEL,
  DECODE_PARTIAL_KERNEL,
  DEVICE_DELAY_KERNEL,
} from './kernels/names.js'
export { type DecodeTuning, decodeTuning, setDecodeTuning } from './kernels/plan.js'
export { ensureKernelsRegistered, fusedDTypes, registerFusedKernels } from './kernels/register.js'
export { TPA_CUDA_SOURCE } from './kernels/tpa.cu.js'
export { configOf, type InitOptions, init, type ParamSpec, paramSpecs, type TpaParams } from './params.js'
export {
  CONFIG_METADATA_KEY,
  type LoadOptions,
  loadParams,
  type SaveOptions,
  saveParams,
  tensorNames,
  type WeightNameOptions,
} from './weights.js'
