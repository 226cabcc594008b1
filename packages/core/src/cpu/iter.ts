import { broadcastStrides, type Shape, sizeOf, stridesOf } from '../shape.js'

/**
 * Calls fn(outIndex, offsetA, offsetB) for every element of `outShape`, where the offsets index
 * arrays of shapes a and b broadcast to it. Fast paths for equal shapes and scalars.
 */
export function forEachBroadcast2(
  outShape: Shape,
  a: Shape,
  b: Shape,
  fn: (i: number, ia: number, ib: number) => void,
): void {
  const n = sizeOf(outShape)
  const na = sizeOf(a)
  const nb = sizeOf(b)
  if (na === n && nb === n) {
    for (let i = 0; i < n; i++) fn(i, i, i)
    return
  }
  if (na === n && nb === 1) {
    for (let i = 0; i < n; i++) fn(i, i, 0)
    return
  }
  if (na === 1 && nb === n) {
    for (let i = 0; i < n; i++) fn(i, 0, i)
    return
  }
  const sa = broadcastStrides(a, outShape)
  const sb = broadcastStrides(b, outShape)
  odometer(outShape, [sa, sb], (i, offs) => fn(i, offs[0], offs[1]))
}

/** Like forEachBroadcast2 for three operands. */
export function forEachBroadcast3(
  outShape: Shape,
  a: Shape,
  b: Shape,
  c: Shape,
  fn: (i: number, ia: number, ib: number, ic: number) => void,
): void {
  const strides = [a, b, c].map((s) => broadcastStrides(s, outShape))
  odometer(outShape, strides, (i, offs) => fn(i, offs[0], offs[1], offs[2]))
}

/**
 * Walks `shape` in row-major order keeping one running offset per strides array (so no
 * per-element division). fn receives the flat index and the offsets.
 */
export function odometer(
  shape: Shape,
  stridesList: number[][],
  fn: (i: number, offsets: number[]) => void,
): void {
  const rank = shape.length
  const n = sizeOf(shape)
  const k = stridesList.length
  const offs = new Array<number>(k).fill(0)
  const idx = new Array<number>(rank).fill(0)
  for (let i = 0; i < n; i++) {
    fn(i, offs)
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++
      for (let j = 0; j < k; j++) offs[j] += stridesList[j][d]
      if (idx[d] < shape[d]) break
      for (let j = 0; j < k; j++) offs[j] -= stridesList[j][d] * shape[d]
      idx[d] = 0
    }
  }
}

export { stridesOf }
