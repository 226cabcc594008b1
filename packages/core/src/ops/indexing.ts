import { ENGINE } from '../engine.js'
import { fmtShape, ShapeError } from '../errors.js'
import { registerGradient, registerNonDifferentiable } from '../registry.js'
import { normAxis, type Shape } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { broadcastTo } from './reduce.js'
import { reshape } from './shape-ops.js'
import { assertDType, assertInt, assertSameDType, assertTensor, run1 } from './validate.js'

function zerosOf(shape: Shape, like: Tensor): Tensor {
  return ENGINE.runKernel('fill', {}, { shape: [...shape], dtype: like.dtype, value: 0 }, like.backend)[0]
}

/**
 * Selects slices of `x` along `axis` by int32 `indices` of any shape:
 * out.shape = x.shape[:axis] + indices.shape + x.shape[axis+1:] (numpy `take`).
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  assertTensor('gather', 'x', x)
  assertTensor('gather', 'indices', indices)
  assertDType('gather', 'indices', indices, 'int32')
  const a = normAxis('gather', axis, x.rank)
  return run1('gather', { x, indices }, { axis: a })
}

registerGradient<{ axis: number }>({
  kernelName: 'gather',
  saveInputs: ['indices'],
  nonDifferentiableInputs: ['indices'],
  gradFunc: ({ dys, inputs, inputMeta, attrs }) => {
    const xShape = (inputMeta.x as { shape: Shape }).shape
    const indices = inputs.indices as Tensor
    const a = attrs.axis
    const n = indices.size
    const flatShape = [...xShape.slice(0, a), n, ...xShape.slice(a + 1)]
    const idxShape = flatShape.map((d, i) => (i === a ? d : 1))
    const idx = broadcastTo(reshape(indices, idxShape), flatShape)
    const dy = reshape(dys[0], flatShape)
    return { x: scatterAdd(zerosOf(xShape, dys[0]), idx, dy, a) }
  },
})

/** Rows of an embedding table [V, D] for int32 ids of any shape: out [...ids.shape, D]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  assertTensor('embedding', 'table', table)
  if (table.rank !== 2)
    throw new ShapeError(`embedding: argument 'table' expected shape [V, D], got ${fmtShape(table.shape)}`)
  return gather(table, ids, 0)
}

function checkAlongAxis(op: string, x: Tensor, indices: Tensor, a: number, arg = 'indices'): void {
  assertDType(op, 'indices', indices, 'int32')
  if (indices.rank !== x.rank || indices.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    const expected = x.shape.map((d, i) => (i === a ? '*' : String(d)))
    throw new ShapeError(
      `${op}: argument '${arg}' expected shape [${expected.join(', ')}] (x's dims except axis ${a}), got ${fmtShape(indices.shape)}`,
    )
  }
}

/** out[..i..] = x[.., indices[..i..], ..] along `axis` (numpy take_along_axis). */
export function takeAlongAxis(x: Tensor, indices: Tensor, axis: number): Tensor {
  assertTensor('takeAlongAxis', 'x', x)
  assertTensor('takeAlongAxis', 'indices', indices)
  const a = normAxis('takeAlongAxis', axis, x.rank)
  checkAlongAxis('takeAlongAxis', x, indices, a)
  return run1('takeAlongAxis', { x, indices }, { axis: a })
}

registerGradient<{ axis: number }>({
  kernelName: 'takeAlongAxis',
  saveInputs: ['indices'],
  nonDifferentiableInputs: ['indices'],
  gradFunc: ({ dys, inputs, inputMeta, attrs }) => {
    const xShape = (inputMeta.x as { shape: Shape }).shape
    return { x: scatterAdd(zerosOf(xShape, dys[0]), inputs.indices as Tensor, dys[0], attrs.axis) }
  },
})

/**
 * Returns x with `updates` added at `indices` along `axis` (torch scatter_add): indices and
 * updates share a shape equal to x's except along axis. Repeated indices accumulate.
 */
export function scatterAdd(x: Tensor, indices: Tensor, updates: Tensor, axis: number): Tensor {
  assertTensor('scatterAdd', 'x', x)
  assertTensor('scatterAdd', 'indices', indices)
  assertTensor('scatterAdd', 'updates', updates)
  assertSameDType('scatterAdd', 'x', x, 'updates', updates)
  const a = normAxis('scatterAdd', axis, x.rank)
  checkAlongAxis('scatterAdd', x, indices, a)
  if (updates.rank !== indices.rank || updates.shape.some((d, i) => d !== indices.shape[i])) {
    throw new ShapeError(
      `scatterAdd: argument 'updates' expected the shape of 'indices' ${fmtShape(indices.shape)}, got ${fmtShape(updates.shape)}`,
    )
  }
  return run1('scatterAdd', { x, indices, updates }, { axis: a })
}

registerGradient<{ axis: number }>({
  kernelName: 'scatterAdd',
  saveInputs: ['indices'],
  nonDifferentiableInputs: ['indices'],
  gradFunc: ({ dys, inputs, attrs }) => ({
    x: dys[0],
    updates: takeAlongAxis(dys[0], inputs.indices as Tensor, attrs.axis),
  }),
})

export interface TopkOptions {
  /** Largest values first (default); false for the smallest. */
  largest?: boolean
}

/**
 * The k largest (or smallest) values along the last axis, sorted, with their int32 indices.
 * Ties keep the lower index first, so selection is deterministic on every backend.
 */
export function topk(x: Tensor, k: number, opts: TopkOptions = {}): { values: Tensor; indices: Tensor } {
  assertTensor('topk', 'x', x)
  if (x.rank < 1) throw new ShapeError(`topk: argument 'x' expected rank >= 1, got ${fmtShape(x.shape)}`)
  if (x.dtype === 'bool')
    assertDType('topk', 'x', x, 'float32', 'float16', 'bfloat16', 'float64', 'int32', 'uint32')
  assertInt('topk', 'k', k, 1, x.shape[x.rank - 1])
  const [values, indices] = ENGINE.runKernel('topk', { x }, { k, largest: opts.largest ?? true })
  return { values, indices }
}

registerGradient({
  kernelName: 'topk',
  saveOutputs: true,
  gradFunc: ({ dys, outputs, inputMeta }) => {
    const xShape = (inputMeta.x as { shape: Shape }).shape
    return { x: scatterAdd(zerosOf(xShape, dys[0]), outputs[1], dys[0], xShape.length - 1) }
  },
})
registerNonDifferentiable('fill')
