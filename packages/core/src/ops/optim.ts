import { ENGINE } from '../engine.js'
import { argumentError, fmtShape, ShapeError } from '../errors.js'
import type { AdamWAttrs } from '../kernel-contract.js'
import { registerNonDifferentiable } from '../registry.js'
import { tidy } from '../scope.js'
import { flattenTree, mapTree, type Tensor, type TensorTree } from '../tensor.js'
import { mul, sqrt } from './elementwise.js'
import { sum } from './reduce.js'
import { assertFloat, assertSameDType, assertTensor } from './validate.js'

registerNonDifferentiable('adamW')

export interface AdamWHyper {
  lr: number
  beta1?: number
  beta2?: number
  eps?: number
  weightDecay?: number
}

/** One AdamW step for one tensor (decoupled weight decay); returns new param, m, v. */
export function adamWStep(
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  step: number,
  h: AdamWHyper,
): { param: Tensor; m: Tensor; v: Tensor } {
  const op = 'adamW'
  for (const [name, t] of Object.entries({ param, grad, m, v })) {
    assertTensor(op, name, t)
    if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
      throw new ShapeError(
        `${op}: argument '${name}' expected shape ${fmtShape(param.shape)} (the param's), got ${fmtShape(t.shape)}`,
      )
    }
  }
  assertFloat(op, 'param', param)
  assertSameDType(op, 'param', param, 'grad', grad)
  if (m.dtype !== 'float32' && m.dtype !== 'float64')
    throw argumentError(op, 'm', 'dtype float32 (optimiser state)', m.dtype)
  if (!Number.isInteger(step) || step < 1) throw argumentError(op, 'step', 'an integer >= 1', step)
  const attrs: AdamWAttrs = {
    lr: h.lr,
    beta1: h.beta1 ?? 0.9,
    beta2: h.beta2 ?? 0.999,
    eps: h.eps ?? 1e-8,
    weightDecay: h.weightDecay ?? 0.01,
    step,
  }
  const [p2, m2, v2] = ENGINE.runKernel(op, { param, grad, m, v }, attrs)
  return { param: p2, m: m2, v: v2 }
}

/** Global L2 norm of a gradient tree, and the tree scaled so that norm <= maxNorm. */
export function clipGradNorm<P extends TensorTree>(grads: P, maxNorm: number): { grads: P; norm: number } {
  const list = flattenTree(grads)
  const normTensor = tidy(() => {
    const squares = list.map((g) => sum(mul(g, g)))
    let total = squares[0]
    for (let i = 1; i < squares.length; i++)
      total = ENGINE.runKernel('binary', { a: total, b: squares[i] }, { op: 'add' })[0]
    return sqrt(total)
  })
  const norm = normTensor.dataSync()[0]
  normTensor.dispose()
  if (!(norm > maxNorm)) return { grads: mapTree(grads, (g) => ENGINE.makeTensor(g, g.backend)) as P, norm }
  const factor = maxNorm / (norm + 1e-6)
  return { grads: mapTree(grads, (g) => mul(g, factor)) as P, norm }
}

export type LearningRate = number | ((step: number) => number)

/** Linear warm-up to `peak`, then cosine decay to `floor` at `total` steps. */
export function warmupCosine(
  peak: number,
  warmup: number,
  total: number,
  floor = 0,
): (step: number) => number {
  return (step) => {
    if (step <= warmup) return (peak * step) / Math.max(1, warmup)
    const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + Math.cos(Math.PI * t))
  }
}

/**
 * AdamW over a parameter tree. Moments are float32 (master precision). `update` returns the
 * new parameters and frees the old ones and the old moments.
 */
export class AdamW<P extends TensorTree> {
  private m: Tensor[] | undefined
  private v: Tensor[] | undefined
  stepCount = 0

  constructor(private readonly hyper: Omit<AdamWHyper, 'lr'> & { lr: LearningRate }) {}

  get learningRate(): number {
    const lr = this.hyper.lr
    return typeof lr === 'function' ? lr(Math.max(1, this.stepCount)) : lr
  }

  update(params: P, grads: P): P {
    const ps = flattenTree(params)
    const gs = flattenTree(grads)
    if (ps.length !== gs.length)
      throw argumentError('AdamW.update', 'grads', `${ps.length} tensors (one per param)`, gs.length)
    this.stepCount++
    const lr = typeof this.hyper.lr === 'function' ? this.hyper.lr(this.stepCount) : this.hyper.lr
    const stateDType = (p: Tensor) => (p.dtype === 'float64' ? 'float64' : 'float32')
    const zeros = (p: Tensor) =>
      ENGINE.runKernelOn(p.backend, 'fill', { shape: [...p.shape], dtype: stateDType(p), value: 0 })
    this.m ??= ps.map(zeros)
    this.v ??= ps.map(zeros)
    const next: Tensor[] = []
    ps.forEach((p, i) => {
      const r = adamWStep(p, gs[i], this.m![i], this.v![i], this.stepCount, { ...this.hyper, lr })
      p.dispose()
      this.m![i].dispose()
      this.v![i].dispose()
      this.m![i] = r.m
      this.v![i] = r.v
      next.push(r.param)
    })
    let k = 0
    return mapTree(params, () => next[k++]) as P
  }

  /** The optimiser state (for checkpoints): moments in parameter order, and the step. */
  state(): { m: Tensor[]; v: Tensor[]; step: number } {
    return { m: this.m ?? [], v: this.v ?? [], step: this.stepCount }
  }

  loadState(state: { m: Tensor[]; v: Tensor[]; step: number }): void {
    this.m = state.m
    this.v = state.v
    this.stepCount = state.step
  }

  dispose(): void {
    for (const t of [...(this.m ?? []), ...(this.v ?? [])]) t.dispose()
    this.m = this.v = undefined
  }
}
