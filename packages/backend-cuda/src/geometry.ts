import { BackendError, broadcastStrides, type Shape, stridesOf } from '@attnkit/core'
import { type Geom, MAX_RANK } from './launch-args.js'

/**
 * Collapses an iteration space: drops size-1 dimensions and merges neighbours that are contiguous
 * in every operand (stride[d] == stride[d+1] * shape[d+1]), so most elementwise work runs at rank
 * 1 or 2 and any rank fits the kernels' MAX_RANK.
 */
export function collapse(shape: Shape, strides: readonly (readonly number[])[]): Geom {
  const dims: { n: number; s: number[] }[] = []
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue
    const s = strides.map((st) => st[d])
    const last = dims.at(-1)
    if (last && s.every((v, i) => last.s[i] === v * shape[d])) {
      last.n *= shape[d]
      last.s = s
    } else {
      dims.push({ n: shape[d], s })
    }
  }
  if (dims.length === 0) dims.push({ n: 1, s: strides.map(() => 0) })
  if (dims.length > MAX_RANK) {
    throw new BackendError(
      `CUDA backend: an iteration space of rank ${dims.length} after collapsing exceeds the kernels' limit of ${MAX_RANK} (shape [${shape}])`,
    )
  }
  return {
    rank: dims.length,
    shape: dims.map((d) => d.n),
    strides: strides.map((_, i) => dims.map((d) => d.s[i])),
  }
}

/** Geometry of operands broadcast to `outShape` (output contiguous). */
export function broadcastGeom(outShape: Shape, operands: readonly Shape[]): Geom {
  return collapse(
    outShape,
    operands.map((s) => broadcastStrides(s, outShape)),
  )
}

export { stridesOf }
