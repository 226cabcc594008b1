import { add, crossEntropy, type Rng, type Tensor, tidy } from '@attnkit/core'
import type { KernelChoice } from '../gdn/delta-rule.js'
import type { ParamDType } from '../nn/init.js'
import {
  fullAttentionConfig,
  gdnConfig,
  gdnSwaConfig,
  laLTEConfig,
  type ModelConfig,
  type ModelOptions,
  validateModelConfig,
} from './config.js'
import { type CostShape, type ModelCost, modelCost } from './cost.js'
import {
  createModelCache,
  type ForwardOptions,
  type ForwardResult,
  type InitOptions,
  initModel,
  type ModelCache,
  type ModelParams,
  modelDecode,
  modelForward,
} from './model.js'
import { type LoadOptions, loadParams, parameterShapes, saveParams } from './params.js'

/** A language model bound to its config: the functional API of every attnkit mechanism. */
export interface LteModel {
  readonly config: ModelConfig
  init(rng: Rng, opts?: InitOptions): ModelParams
  /** tokens int32 [B, T] -> { logits [B, T, V], penalty }. */
  forward(params: ModelParams, tokens: Tensor, opts?: ForwardOptions): ForwardResult
  /** Mean next-token cross-entropy of logits[:, t] against targets[:, t], plus the LTE penalty. */
  loss(params: ModelParams, tokens: Tensor, targets: Tensor, opts?: ForwardOptions): Tensor
  /** A constant-size decode cache (growing only for full-attention layers). */
  createCache(opts: { batch: number; dtype?: ParamDType }): ModelCache
  /** tokens int32 [B] -> logits [B, V]; the cache advances one position. */
  decode(params: ModelParams, cache: ModelCache, tokens: Tensor, opts?: { kernel?: KernelChoice }): Tensor
  cost(shape: CostShape): ModelCost
  parameterShapes(): Map<string, number[]>
  saveParams(params: ModelParams): Promise<Uint8Array>
  loadParams(bytes: Uint8Array, opts?: LoadOptions): ModelParams
}

export function createModel(config: ModelConfig): LteModel {
  validateModelConfig(config)
  const c = config
  return {
    config: c,
    init: (rng, opts) => initModel(c, rng, opts),
    forward: (params, tokens, opts) => modelForward(c, params, tokens, opts),
    loss: (params, tokens, targets, opts) =>
      tidy(() => {
        const { logits, penalty } = modelForward(c, params, tokens, opts)
        return add(crossEntropy(logits, targets), penalty)
      }),
    createCache: (opts) => createModelCache(c, opts),
    decode: (params, cache, tokens, opts) => modelDecode(c, params, cache, tokens, opts),
    cost: (shape) => modelCost(c, shape),
    parameterShapes: () => parameterShapes(c),
    saveParams: (params) => saveParams(c, params),
    loadParams: (bytes, opts) => loadParams(c, bytes, opts),
  }
}

/** laLTE: Gated DeltaNet layers interleaved with LTE sparse attention. */
export const laLTE = (o: ModelOptions): LteModel => createModel(laLTEConfig(o))
/** Gated DeltaNet only. */
export const gdnModel = (o: ModelOptions): LteModel => createModel(gdnConfig(o))
/** Gated DeltaNet with sink + sliding-window attention layers where laLTE has LTE layers. */
export const gdnSwaModel = (o: ModelOptions): LteModel => createModel(gdnSwaConfig(o))
/** A full-attention transformer of the same width, depth and MLP. */
export const fullAttentionModel = (o: ModelOptions): LteModel => createModel(fullAttentionConfig(o))
