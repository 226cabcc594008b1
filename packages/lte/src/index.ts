/**
 * @attnkit/lte: Gated DeltaNet, sparse attention with learnable token eviction (LTE), and the
 * laLTE hybrid (He & Garner, arXiv 2510.20787), on any attnkit backend.
 */

export {
  type AttentionCache,
  attentionCacheTensors,
  attentionDecode,
  cachedPositions,
  createAttentionCache,
  type DecodeOptions,
  slotCount,
} from './attention/decode-cache.js'
export { coreWindow, isKept, isStructural, type KeepRuleConfig } from './attention/keep-rule.js'
export {
  type AttentionConfig,
  type AttentionForwardOptions,
  type AttentionForwardResult,
  type AttentionKind,
  type AttentionParams,
  attentionForward,
  attentionProjections,
  initAttention,
  keepRuleOf,
  lteAttention,
  validateAttentionConfig,
} from './attention/layer.js'
export {
  createScorerState,
  initScorer,
  layerReach,
  receptiveField,
  SCORER_DEFAULTS,
  type ScorerConfig,
  type ScorerParams,
  type ScorerState,
  scorerForward,
  scorerHalo,
  scorerStep,
} from './attention/scorer.js'
export { steSparseAttention } from './attention/ste-attention.js'
export {
  benchDecode,
  benchGdnForwardBackward,
  checkFusedDecodeAttention,
  checkFusedGdn,
  type DecodeBenchResult,
  type GdnBenchResult,
  type GdnBenchShape,
  gdnBenchInputs,
  syntheticDecodeCache,
  type TimingStats,
  timeRuns,
} from './bench.js'
export { type GatedDeltaOptions, gatedDelta, type KernelChoice } from './gdn/delta-rule.js'
export {
  createGdnState,
  GDN_DEFAULTS,
  type GdnConfig,
  type GdnForwardOptions,
  type GdnParams,
  type GdnState,
  gdnDecode,
  gdnForward,
  initGdn,
} from './gdn/layer.js'
export { fusedDecodeAttention, fusedDecodeAvailable } from './kernels/decode-attention.js'
export { KERNELS } from './kernels/names.js'
export { ensureKernelsRegistered, kernelAvailable } from './kernels/register.js'
export {
  createModel,
  fullAttentionModel,
  gdnModel,
  gdnSwaModel,
  type LteModel,
  laLTE,
} from './model/api.js'
export {
  attentionLayerConfig,
  fullAttentionConfig,
  gdnConfig,
  gdnLayerConfig,
  gdnSwaConfig,
  type LayerKind,
  laLTEConfig,
  MODEL_DEFAULTS,
  type ModelConfig,
  type ModelOptions,
  validateModelConfig,
} from './model/config.js'
export { type CostShape, type ModelCost, modelCost } from './model/cost.js'
export {
  type BlockParams,
  cacheBytes,
  cacheTensors,
  createModelCache,
  disposeCache,
  type ForwardOptions,
  type ForwardResult,
  type InitOptions,
  initModel,
  type ModelCache,
  type ModelParams,
  modelDecode,
  modelForward,
} from './model/model.js'
export { flattenParams, type LoadOptions, loadParams, parameterShapes, saveParams } from './model/params.js'
export { l2Normalize, type SwiGluParams, swiglu } from './nn/functional.js'
export type { ParamDType } from './nn/init.js'
