import {
  AdamW,
  add,
  type DType,
  dispose,
  div,
  flattenTree,
  mapTree,
  minimum,
  mul,
  Rng,
  sqrt,
  sum,
  type Tensor,
  tensor,
  tidy,
  valueAndGrad,
  warmupCosine,
} from '@attnkit/core'
import { type ForwardContext, Model, type ModelConfig, type ModelParams, tokensTensor } from './model.js'
import type { DataConfig, Metrics, Task } from './tasks.js'

export type Precision = 'fp32' | 'bf16'

export interface OptimConfig {
  /** Peak learning rate, reached after `warmup` steps, then cosine decay to minLr at the last step. */
  lr: number
  minLr: number
  warmup: number
  weightDecay: number
  beta1: number
  beta2: number
  eps: number
  /** Global gradient-norm clip (0: none). */
  clip: number
}

/** Everything that defines a run; JSON, stored in its checkpoints. */
export interface TrainConfig {
  model: ModelConfig
  data: DataConfig
  /** Sequences per step at seqLen. */
  batch: number
  seqLen: number
  steps: number
  optim: OptimConfig
  seed: number
  /** bf16: float32 master weights and optimiser state, bfloat16 forward and backward. */
  precision: Precision
  /** Evaluate every this many steps (0: at the end only). */
  evalEvery: number
  /** Validation batches per evaluation (language modelling). */
  evalBatches: number
}

export const OPTIM_DEFAULTS: OptimConfig = {
  lr: 3e-3,
  minLr: 3e-4,
  warmup: 50,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  clip: 1,
}

export interface StepRecord {
  /** Steps done after this one (1 for the first). */
  step: number
  /** Training tokens seen so far. */
  tokens: number
  /** Tokens of this step's batch. */
  stepTokens: number
  loss: number
  lr: number
  /** Gradient norm before clipping. */
  gradNorm: number
  /** Wall time of the step, ms (includes reading the loss back). */
  ms: number
}

export interface EvalRecord {
  step: number
  tokens: number
  metrics: Metrics
  ms: number
}

export const computeDType = (p: Precision): DType => (p === 'bf16' ? 'bfloat16' : 'float32')

/**
 * Scales gradients so their global L2 norm is at most maxNorm, on the device (no read-back):
 * factor = min(1, maxNorm / (norm + 1e-6)). Returns the scaled tree and the norm before.
 */
export function clipGradients<P>(grads: P, maxNorm: number): { grads: P; norm: Tensor } {
  return tidy(() => {
    const list = flattenTree(grads)
    let total = sum(mul(list[0], list[0]))
    for (let i = 1; i < list.length; i++) total = add(total, sum(mul(list[i], list[i])))
    const norm = sqrt(total)
    if (!(maxNorm > 0)) return { grads: mapTree(grads, (g) => mul(g, 1)) as P, norm }
    const factor = minimum(div(maxNorm, add(norm, 1e-6)), 1)
    return { grads: mapTree(grads, (g) => mul(g, factor)) as P, norm }
  })
}

export function makeOptimizer(config: TrainConfig): AdamW<ModelParams> {
  const o = config.optim
  return new AdamW<ModelParams>({
    lr: warmupCosine(o.lr, o.warmup, config.steps, o.minLr),
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
  })
}

export class Trainer {
  history: StepRecord[] = []
  evals: EvalRecord[] = []
  tokens = 0
  private readonly lossAndGrad

  constructor(
    readonly config: TrainConfig,
    readonly model: Model,
    /** Float32 master parameters (replaced by every step). */
    public params: ModelParams,
    readonly optimizer: AdamW<ModelParams>,
    readonly task: Task,
  ) {
    this.lossAndGrad = valueAndGrad((p: ModelParams, inputs: Tensor, targets: Tensor, weights?: Tensor) =>
      model.loss(p, inputs, targets, this.context(true), weights),
    )
  }

  static async create(config: TrainConfig, task: Task): Promise<Trainer> {
    const model = await Model.create(config.model)
    return new Trainer(config, model, model.init(new Rng(config.seed)), makeOptimizer(config), task)
  }

  /** Optimiser steps done. */
  get step(): number {
    return this.optimizer.stepCount
  }

  context(training: boolean): ForwardContext {
    return { training, dtype: computeDType(this.config.precision) }
  }

  paramCount(): number {
    return this.model.paramCount(this.params)
  }

  /** One optimiser step on the task's batch for this step. */
  async trainStep(): Promise<StepRecord> {
    const t0 = performance.now()
    const b = this.task.batch(this.step)
    const inputs = tokensTensor(b.inputs, b.batch, b.length)
    const targets = tokensTensor(b.targets, b.batch, b.length)
    const weights = b.weights ? tensor(b.weights, [b.batch, b.length], 'float32') : undefined
    let value: Tensor | undefined
    let norm: Tensor | undefined
    try {
      const r = this.lossAndGrad(this.params, inputs, targets, weights)
      value = r.value
      const clipped = clipGradients(r.grads, this.config.optim.clip)
      dispose(r.grads)
      norm = clipped.norm
      this.params = this.optimizer.update(this.params, clipped.grads)
      dispose(clipped.grads)
      const [loss, gradNorm] = [(await value.data())[0], (await norm.data())[0]]
      if (!Number.isFinite(loss))
        throw new Error(
          `training diverged at step ${this.step} (loss ${loss}, gradient norm ${gradNorm}); try a lower --lr`,
        )
      this.tokens += b.batch * b.length
      const rec: StepRecord = {
        step: this.step,
        tokens: this.tokens,
        stepTokens: b.batch * b.length,
        loss,
        // After update: the rate of the step just taken.
        lr: this.optimizer.learningRate,
        gradNorm,
        ms: performance.now() - t0,
      }
      this.history.push(rec)
      return rec
    } finally {
      for (const t of [inputs, targets, weights, value, norm]) t?.dispose()
    }
  }

  async evaluate(): Promise<EvalRecord> {
    const t0 = performance.now()
    const metrics = await this.task.evaluate(this.model, this.params, this.context(false))
    const rec: EvalRecord = { step: this.step, tokens: this.tokens, metrics, ms: performance.now() - t0 }
    this.evals.push(rec)
    return rec
  }

  dispose(): void {
    dispose(this.params)
    this.optimizer.dispose()
  }
}
