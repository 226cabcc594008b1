import { argumentError, fmtShape, ShapeError } from './errors.js'

export type Shape = readonly number[]

export function sizeOf(shape: Shape): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length)
  let s = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s
    s *= shape[i]
  }
  return strides
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

/** Normalises a possibly negative axis; throws naming the op and argument when out of range. */
export function normAxis(op: string, axis: number, rank: number, arg = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw argumentError(op, arg, `an integer in [${-rank}, ${rank - 1}]`, axis)
  }
  return a
}

export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i)
  const list = typeof axes === 'number' ? [axes] : [...axes]
  const out = list.map((a) => normAxis(op, a, rank, 'axes'))
  if (new Set(out).size !== out.length) throw argumentError(op, 'axes', 'distinct axes', axes)
  return out.sort((a, b) => a - b)
}

/** Numpy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape, argA = 'a', argB = 'b'): number[] {
  const rank = Math.max(a.length, b.length)
  const out = new Array<number>(rank)
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1
    const db = b[b.length - rank + i] ?? 1
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}: arguments '${argA}' ${fmtShape(a)} and '${argB}' ${fmtShape(b)} cannot be broadcast together (dimension ${i} of the result: ${da} vs ${db})`,
      )
    }
    out[i] = da === 1 ? db : da
  }
  return out
}

/**
 * Strides for reading a tensor of `shape` as if broadcast to `outShape` (0 on broadcast dims).
 * The returned array has outShape.length entries.
 */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(shape)
  const offset = outShape.length - shape.length
  return outShape.map((_, i) => {
    const j = i - offset
    return j < 0 || shape[j] === 1 ? 0 : strides[j]
  })
}

/** Axes of `outShape` that were broadcast from `shape` (to be summed away in a gradient). */
export function broadcastedAxes(shape: Shape, outShape: Shape): number[] {
  const offset = outShape.length - shape.length
  const axes: number[] = []
  for (let i = 0; i < outShape.length; i++) {
    const j = i - offset
    if (j < 0 || (shape[j] === 1 && outShape[i] !== 1)) axes.push(i)
  }
  return axes
}

export function assertValidShape(op: string, shape: Shape, arg = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw argumentError(op, arg, 'an array of non-negative integers', shape)
  }
}

/** Resolves one -1 entry of a reshape target. */
export function inferReshape(op: string, size: number, shape: Shape): number[] {
  const out = [...shape]
  const neg = out.indexOf(-1)
  if (neg >= 0) {
    if (out.indexOf(-1, neg + 1) >= 0) throw argumentError(op, 'shape', 'at most one -1', shape)
    const rest = sizeOf(out.filter((_, i) => i !== neg))
    if (rest === 0 || size % rest !== 0) {
      throw new ShapeError(`${op}: cannot reshape ${size} elements into ${fmtShape(shape)}`)
    }
    out[neg] = size / rest
  }
  assertValidShape(op, out)
  if (sizeOf(out) !== size) {
    throw new ShapeError(
      `${op}: argument 'shape' expected ${size} elements in total, got ${fmtShape(out)} (${sizeOf(out)} elements)`,
    )
  }
  return out
}
