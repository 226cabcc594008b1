import { registerGradient } from '../registry.js'
import { normAxis } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { exp, mul, sub } from './elementwise.js'
import { sum } from './reduce.js'
import { swapAxes } from './shape-ops.js'
import { assertFloat, assertTensor, run1 } from './validate.js'

/** Kernels work on the last axis; other axes are moved there and back. */
function alongAxis(op: string, kernel: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  assertTensor(op, 'x', x)
  assertFloat(op, 'x', x)
  const a = normAxis(op, axis, x.rank)
  if (a === x.rank - 1) return run1(kernel, { x }, {})
  const moved = swapAxes(x, a, -1)
  const y = run1(kernel, { x: moved }, {})
  const out = swapAxes(y, a, -1)
  moved.dispose()
  y.dispose()
  return out
}

/** exp(x) / sum(exp(x)) along `axis` (last by default). */
export const softmax = (x: Tensor, axis = -1) => alongAxis('softmax', 'softmax', x, axis)
/** x - logsumexp(x) along `axis` (last by default). */
export const logSoftmax = (x: Tensor, axis = -1) => alongAxis('logSoftmax', 'logSoftmax', x, axis)

registerGradient({
  kernelName: 'softmax',
  saveOutputs: true,
  gradFunc: ({ dys, outputs }) => {
    const y = outputs[0]
    const dot = sum(mul(dys[0], y), -1, { keepDims: true })
    return { x: mul(y, sub(dys[0], dot)) }
  },
})

registerGradient({
  kernelName: 'logSoftmax',
  saveOutputs: true,
  gradFunc: ({ dys, outputs }) => {
    const total = sum(dys[0], -1, { keepDims: true })
    return { x: sub(dys[0], mul(exp(outputs[0]), total)) }
  },
})
