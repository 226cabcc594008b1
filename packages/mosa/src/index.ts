/**
 * @attnkit/mosa: Mixture of Sparse Attention (Piękos, Csordás, Schmidhuber, arXiv 2505.00315).
 * Each MoSA head routes the sequence through its own sigmoid router, keeps its top T/sparsity
 * tokens (expert-choice), attends among them causally by original position and scatters its
 * score-weighted output back; a layer mixes dense causal heads with many MoSA heads.
 */

export { type TimingOptions, type TimingResult, timeLayer } from './bench.js'
export {
  type MosaConfig,
  type MosaRope,
  type ResolvedConfig,
  resolveConfig,
  selectedTokens,
} from './config.js'
export {
  type CostOptions,
  computeMatchedHeads,
  cost,
  decodeCacheBytes,
  type MatchedHeadsOptions,
  type MosaCost,
  type MosaCostBreakdown,
} from './cost.js'
export {
  type CacheOptions,
  createCache,
  type DecodeResult,
  decode,
  decodeWithInfo,
  disposeCache,
  type MosaCache,
  prefill,
} from './decode.js'
export { type DecodeEvaluation, evaluateDecode } from './decode-eval.js'
export {
  CUDA_16BIT_PORTABLE_MAX_BYTES,
  type ForwardOptions,
  type ForwardResult,
  forward,
  forwardWithRouting,
  type MosaPath,
  portableFor16Bit,
  portableLargestBytes,
} from './forward.js'
export { type FusedSupport, fusedSupport } from './fused/layer.js'
export { KERNELS } from './fused/names.js'
export {
  CONFIG_METADATA_KEY,
  checkParams,
  configOf,
  type HeadProjections,
  init,
  loadParams,
  MOSA_CONFIG,
  type MosaParams,
  namedParams,
  type ParamSpec,
  paramSpecs,
  saveParams,
  withConfig,
} from './params.js'
export { routerLogits, selectedScores, selectTokens } from './routing.js'
