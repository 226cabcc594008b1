import { ENGINE } from '../engine.js'
import { dtypeError } from '../errors.js'
import type { ReduceOp } from '../kernel-contract.js'
import { registerGradient, registerNonDifferentiable } from '../registry.js'
import { broadcastShapes, normAxes, normAxis, type Shape, shapesEqual } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { add, cast, div, equal, exp, log, mul, sub } from './elementwise.js'
import { reshape } from './shape-ops.js'
import { assertFloat, assertTensor, run1 } from './validate.js'

export interface ReduceOptions {
  /** Keep reduced axes with size 1. */
  keepDims?: boolean
}

function reduce(
  op: ReduceOp,
  x: Tensor,
  axes: number | readonly number[] | undefined,
  opts: ReduceOptions,
): Tensor {
  assertTensor(op, 'x', x)
  if (x.dtype === 'bool') throw dtypeError(op, 'x', 'a numeric dtype', x.dtype)
  if (op === 'mean') assertFloat(op, 'x', x)
  const list = normAxes(op, axes, x.rank)
  const keepDims = opts.keepDims ?? false
  if (list.length === 0) return reshape(x, x.shape)
  return run1('reduce', { x }, { op, axes: list, keepDims })
}

/** Sum over `axes` (all by default). */
export const sum = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}) =>
  reduce('sum', x, axes, opts)
export const mean = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}) =>
  reduce('mean', x, axes, opts)
export const max = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}) =>
  reduce('max', x, axes, opts)
export const min = (x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}) =>
  reduce('min', x, axes, opts)

/** Expands `x` to `shape` (numpy broadcasting). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  assertTensor('broadcastTo', 'x', x)
  const target = broadcastShapes('broadcastTo', x.shape, shape, 'x', 'shape')
  if (!shapesEqual(target, shape)) broadcastShapes('broadcastTo', target, shape, 'x', 'shape')
  if (shapesEqual(x.shape, shape)) return reshape(x, shape)
  const zeros = ENGINE.runKernel('fill', {}, { shape: [...shape], dtype: x.dtype, value: 0 }, x.backend)[0]
  const out = add(x, zeros)
  zeros.dispose()
  return out
}

function keptShape(shape: Shape, axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d))
}

registerGradient<{ op: ReduceOp; axes: number[]; keepDims: boolean }>({
  kernelName: 'reduce',
  saveInputs: ['x'],
  saveOutputs: true,
  gradFunc: ({ dys, inputs, outputs, attrs }) => {
    const x = inputs.x as Tensor
    const dyKeep = reshape(dys[0], keptShape(x.shape, attrs.axes))
    switch (attrs.op) {
      case 'sum':
        return { x: broadcastTo(dyKeep, x.shape) }
      case 'mean': {
        const count = attrs.axes.reduce((n, a) => n * x.shape[a], 1)
        return { x: broadcastTo(div(dyKeep, count), x.shape) }
      }
      case 'max':
      case 'min': {
        // Ties share the gradient evenly, as PyTorch's amax/amin do.
        const yKeep = reshape(outputs[0], keptShape(x.shape, attrs.axes))
        const mask = cast(equal(x, yKeep), x.dtype)
        const count = run1('reduce', { x: mask }, { op: 'sum', axes: attrs.axes, keepDims: true })
        return { x: mul(mask, div(dyKeep, count)) }
      }
    }
  },
})

/** Index of the largest value along `axis` (int32; ties: the lowest index). */
export function argmax(x: Tensor, axis = -1): Tensor {
  assertTensor('argmax', 'x', x)
  return run1('argReduce', { x }, { op: 'argmax', axis: normAxis('argmax', axis, x.rank) })
}

export function argmin(x: Tensor, axis = -1): Tensor {
  assertTensor('argmin', 'x', x)
  return run1('argReduce', { x }, { op: 'argmin', axis: normAxis('argmin', axis, x.rank) })
}
registerNonDifferentiable('argReduce')

/** log(sum(exp(x))) over `axes`, computed stably. */
export function logsumexp(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  assertTensor('logsumexp', 'x', x)
  assertFloat('logsumexp', 'x', x)
  const list = normAxes('logsumexp', axes, x.rank)
  const m = run1('reduce', { x }, { op: 'max', axes: list, keepDims: true })
  // The max is a constant shift: its gradient cancels exactly, so stop it flowing.
  const mConst = stopGradient(m)
  const shifted = sub(x, mConst)
  const e = exp(shifted)
  const s = sum(e, list, { keepDims: true })
  const l = log(s)
  const withMax = add(l, mConst)
  const out = opts.keepDims
    ? withMax
    : reshape(
        withMax,
        x.shape.filter((_, i) => !list.includes(i)),
      )
  for (const t of [m, mConst, shifted, e, s, l]) t.dispose()
  if (out !== withMax) withMax.dispose()
  return out
}

/** The same values with no gradient flowing back through them. */
export function stopGradient(x: Tensor): Tensor {
  assertTensor('stopGradient', 'x', x)
  return run1('stopGradient', { x }, { shape: [...x.shape] })
}
// stopGradient is a storage-sharing view (like reshape) that the tape never records.
registerNonDifferentiable('stopGradient')
