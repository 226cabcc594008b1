import { type ReduceOp, registerCoreKernel, sizeOf, type TensorInfo } from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { ctype, kind } from '../host-convert.js'
import { permute } from './layout.js'

const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, mean: 1, max: 2, min: 3 }

function defs(t: TensorInfo) {
  return { DT: ctype(t.dtype), DTK: kind(t.dtype) }
}

/** Block size for one-block-per-row kernels: enough threads for the row, at most 1024. */
function rowBlock(len: number): number {
  let b = 32
  while (b < len && b < 1024) b *= 2
  return Math.min(b, len >= 4096 ? 1024 : 256)
}

/**
 * Blocks per row for few long rows (1: one block per row). A full reduction of a [1, 8192, 512]
 * tensor in one block took 0.86 ms on an H100 (a mean-of-output loss pays it every step); split
 * into 4096-element parts it is a bandwidth-bound pass.
 */
export function splitParts(rows: number, len: number): number {
  if (rows >= 128 || len < 16384) return 1
  return Math.min(1024, Math.ceil(len / 4096))
}

export function registerReduceKernels(): void {
  registerCoreKernel<'reduce', CudaBackend>('reduce', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const { axes, op, keepDims } = attrs
    const outShape = keepDims
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i))
    const out = backend.alloc(outShape, x.dtype)
    const nOut = sizeOf(outShape)
    if (nOut === 0) return out
    const len = axes.reduce((n, a) => n * x.shape[a], 1)
    if (len === 0) {
      backend.fill(out, op === 'sum' ? 0 : op === 'mean' ? Number.NaN : op === 'max' ? -Infinity : Infinity)
      return out
    }
    const code = REDUCE_CODE[op]
    const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1] + 1)
    let src = x
    let outer: number
    let inner: number
    if (contiguous) {
      outer = sizeOf(x.shape.slice(0, axes[0]))
      inner = sizeOf(x.shape.slice(axes[axes.length - 1] + 1))
    } else {
      // Move the reduced axes last (kept axes first, each group in order), then reduce rows.
      const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i))
      src = permute(backend, x, [...kept, ...axes])
      outer = nOut
      inner = 1
    }
    const parts = splitParts(outer, len)
    if (inner === 1 && parts > 1) {
      const chunk = Math.ceil(len / parts)
      // 8 bytes a partial: float32 or the exact 64-bit integer sum (acc_t).
      const partial = backend.alloc([2 * outer * parts], 'int32')
      const first = backend.kernel('reduce.cu', defs(x), 'reduce_rows_partial_k', [
        'ptr',
        'ptr',
        'i32',
        'i32',
        'i32',
      ])
      backend.launch(first, [parts, outer, 1], [256, 1, 1], 0, [
        backend.ptr(src),
        backend.ptr(partial),
        len,
        chunk,
        code,
      ])
      const second = backend.kernel('reduce.cu', defs(x), 'reduce_partials_k', [
        'ptr',
        'ptr',
        'i32',
        'i32',
        'f32',
      ])
      backend.launch(second, [outer, 1, 1], [rowBlock(parts), 1, 1], 0, [
        backend.ptr(partial),
        backend.ptr(out),
        parts,
        code,
        1 / len,
      ])
      backend.release(partial.dataId)
    } else if (inner === 1) {
      const k = backend.kernel('reduce.cu', defs(x), 'reduce_rows_k', ['ptr', 'ptr', 'i32', 'i32', 'f32'])
      backend.launch(k, [outer, 1, 1], [rowBlock(len), 1, 1], 0, [
        backend.ptr(src),
        backend.ptr(out),
        len,
        code,
        1 / len,
      ])
    } else {
      const k = backend.kernel('reduce.cu', defs(x), 'reduce_mid_k', [
        'ptr',
        'ptr',
        'i64',
        'i32',
        'i32',
        'i32',
        'f32',
      ])
      backend.launch(k, backend.grid1d(outer * inner), [256, 1, 1], 0, [
        backend.ptr(src),
        backend.ptr(out),
        outer,
        len,
        inner,
        code,
        1 / len,
      ])
    }
    if (src !== x) backend.release(src.dataId)
    return out
  })

  registerCoreKernel<'argReduce', CudaBackend>('argReduce', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const a = attrs.axis
    const outShape = x.shape.filter((_, i) => i !== a)
    const out = backend.alloc(outShape, 'int32')
    const outer = sizeOf(x.shape.slice(0, a))
    const inner = sizeOf(x.shape.slice(a + 1))
    const n = outer * inner
    if (n === 0) return out
    const k = backend.kernel('reduce.cu', defs(x), 'argreduce_k', ['ptr', 'ptr', 'i64', 'i32', 'i32', 'i32'])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(x),
      backend.ptr(out),
      outer,
      x.shape[a],
      inner,
      attrs.op === 'argmax' ? 1 : 0,
    ])
    return out
  })

  const softmaxLike = (isLog: boolean) =>
    (({ inputs, backend }) => {
      const { x } = inputs
      const out = backend.alloc(x.shape, x.dtype)
      const d = x.shape[x.shape.length - 1]
      const rows = d === 0 ? 0 : sizeOf(x.shape) / d
      if (rows === 0) return out
      const k = backend.kernel('reduce.cu', defs(x), 'softmax_k', ['ptr', 'ptr', 'i32', 'i32'])
      backend.launch(k, [rows, 1, 1], [rowBlock(d), 1, 1], 0, [
        backend.ptr(x),
        backend.ptr(out),
        d,
        isLog ? 1 : 0,
      ])
      return out
    }) satisfies Parameters<typeof registerCoreKernel<'softmax', CudaBackend>>[2]
  registerCoreKernel<'softmax', CudaBackend>('softmax', 'cuda', softmaxLike(false))
  registerCoreKernel<'logSoftmax', CudaBackend>('logSoftmax', 'cuda', softmaxLike(true))

  registerCoreKernel<'rmsNorm', CudaBackend>('rmsNorm', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, weight } = inputs
    const out = backend.alloc(x.shape, x.dtype)
    const d = x.shape[x.shape.length - 1]
    const rows = d === 0 ? 0 : sizeOf(x.shape) / d
    if (rows === 0) return out
    const k = backend.kernel('reduce.cu', defs(x), 'rmsnorm_k', ['ptr', 'ptr', 'ptr', 'i32', 'f32', 'i32'])
    backend.launch(k, [rows, 1, 1], [rowBlock(d), 1, 1], 0, [
      backend.ptr(x),
      weight ? backend.ptr(weight) : 0n,
      backend.ptr(out),
      d,
      attrs.eps,
      weight ? 1 : 0,
    ])
    return out
  })

  registerCoreKernel<'layerNorm', CudaBackend>('layerNorm', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, weight, bias } = inputs
    const out = backend.alloc(x.shape, x.dtype)
    const d = x.shape[x.shape.length - 1]
    const rows = d === 0 ? 0 : sizeOf(x.shape) / d
    if (rows === 0) return out
    const k = backend.kernel('reduce.cu', defs(x), 'layernorm_k', [
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'i32',
      'f32',
      'i32',
      'i32',
    ])
    backend.launch(k, [rows, 1, 1], [rowBlock(d), 1, 1], 0, [
      backend.ptr(x),
      weight ? backend.ptr(weight) : 0n,
      bias ? backend.ptr(bias) : 0n,
      backend.ptr(out),
      d,
      attrs.eps,
      weight ? 1 : 0,
      bias ? 1 : 0,
    ])
    return out
  })
}
