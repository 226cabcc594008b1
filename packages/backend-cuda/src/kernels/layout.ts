import { type DType, registerCoreKernel, type Shape, sizeOf, stridesOf, type TensorInfo } from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { collapse } from '../geometry.js'
import { ctype, kind } from '../host-convert.js'
import { byteWidth, castFromF32Ptr, castTo } from './elementwise.js'

/**
 * dst[dstBase + c . dstStrides] = src[srcBase + c . srcStrides] for every coordinate c of `shape`
 * (element units); any dtype, by element width.
 */
export function stridedCopy(
  backend: CudaBackend,
  dtype: DType,
  src: bigint,
  dst: bigint,
  shape: Shape,
  srcStrides: readonly number[],
  dstStrides: readonly number[],
  srcBase = 0,
  dstBase = 0,
): void {
  const n = sizeOf(shape)
  if (n === 0) return
  const g = collapse(shape, [srcStrides, dstStrides])
  const k = backend.kernel('layout.cu', { ES: byteWidth(dtype) }, 'strided_copy_k', [
    'ptr',
    'ptr',
    'i64',
    'geom',
    'i64',
    'i64',
  ])
  backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [src, dst, n, g, srcBase, dstBase])
}

/** A new contiguous tensor with x's axes permuted (out axis i = x axis perm[i]). */
export function permute(backend: CudaBackend, x: TensorInfo, perm: readonly number[]): TensorInfo {
  const outShape = perm.map((p) => x.shape[p])
  const out = backend.alloc(outShape, x.dtype)
  const inStrides = stridesOf(x.shape)
  stridedCopy(
    backend,
    x.dtype,
    backend.ptr(x),
    backend.ptr(out),
    outShape,
    perm.map((p) => inStrides[p]),
    stridesOf(outShape),
  )
  return out
}

/** A new contiguous tensor of x broadcast to `shape` (numpy rules). */
export function expand(backend: CudaBackend, x: TensorInfo, shape: Shape): TensorInfo {
  const out = backend.alloc(shape, x.dtype)
  const strides = stridesOf(x.shape)
  const offset = shape.length - x.shape.length
  const src = shape.map((_, i) => {
    const j = i - offset
    return j < 0 || x.shape[j] === 1 ? 0 : strides[j]
  })
  stridedCopy(backend, x.dtype, backend.ptr(x), backend.ptr(out), shape, src, stridesOf(shape))
  return out
}

export function registerLayoutKernels(): void {
  registerCoreKernel<'transpose', CudaBackend>('transpose', 'cuda', ({ inputs, attrs, backend }) =>
    permute(backend, inputs.x, attrs.perm),
  )

  registerCoreKernel<'slice', CudaBackend>('slice', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const out = backend.alloc(attrs.size, x.dtype)
    const strides = stridesOf(x.shape)
    const base = attrs.begin.reduce((s, b, i) => s + b * strides[i], 0)
    stridedCopy(
      backend,
      x.dtype,
      backend.ptr(x),
      backend.ptr(out),
      attrs.size,
      strides,
      stridesOf(attrs.size),
      base,
      0,
    )
    return out
  })

  registerCoreKernel<'concat', CudaBackend>('concat', 'cuda', ({ inputs, attrs, backend }) => {
    const xs = inputs.xs
    const a = attrs.axis
    const outShape = [...xs[0].shape]
    outShape[a] = xs.reduce((s, x) => s + x.shape[a], 0)
    const out = backend.alloc(outShape, xs[0].dtype)
    const outStrides = stridesOf(outShape)
    let offset = 0
    for (const x of xs) {
      stridedCopy(
        backend,
        x.dtype,
        backend.ptr(x),
        backend.ptr(out),
        x.shape,
        stridesOf(x.shape),
        outStrides,
        0,
        offset * outStrides[a],
      )
      offset += x.shape[a]
    }
    return out
  })

  registerCoreKernel<'pad', CudaBackend>('pad', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const outShape = x.shape.map((d, i) => d + attrs.paddings[i][0] + attrs.paddings[i][1])
    const out = backend.alloc(outShape, x.dtype)
    backend.fill(out, attrs.value)
    const outStrides = stridesOf(outShape)
    const base = attrs.paddings.reduce((s, [l], i) => s + l * outStrides[i], 0)
    stridedCopy(
      backend,
      x.dtype,
      backend.ptr(x),
      backend.ptr(out),
      x.shape,
      stridesOf(x.shape),
      outStrides,
      0,
      base,
    )
    return out
  })

  registerCoreKernel<'gather', CudaBackend>('gather', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, indices } = inputs
    const a = attrs.axis
    const len = x.shape[a]
    const inner = sizeOf(x.shape.slice(a + 1))
    const nidx = sizeOf(indices.shape)
    const outShape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)]
    const out = backend.alloc(outShape, x.dtype)
    const n = sizeOf(outShape)
    if (n === 0) return out
    const k = backend.kernel('layout.cu', { ES: byteWidth(x.dtype) }, 'gather_k', [
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'i32',
      'i32',
      'i32',
      'ptr',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(x),
      backend.ptr(indices),
      backend.ptr(out),
      n,
      len,
      nidx,
      inner,
      backend.errorWord.ptr,
    ])
    backend.noteIndexKernel()
    return out
  })

  registerCoreKernel<'takeAlongAxis', CudaBackend>('takeAlongAxis', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, indices } = inputs
    const a = attrs.axis
    const out = backend.alloc(indices.shape, x.dtype)
    const n = sizeOf(indices.shape)
    if (n === 0) return out
    const xStrides = stridesOf(x.shape)
    const g = collapse(indices.shape, [xStrides.map((s, i) => (i === a ? 0 : s)), stridesOf(indices.shape)])
    const k = backend.kernel('layout.cu', { ES: byteWidth(x.dtype) }, 'take_along_k', [
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'geom',
      'i32',
      'i32',
      'ptr',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(x),
      backend.ptr(indices),
      backend.ptr(out),
      n,
      g,
      xStrides[a],
      x.shape[a],
      backend.errorWord.ptr,
    ])
    backend.noteIndexKernel()
    return out
  })

  registerCoreKernel<'scatterAdd', CudaBackend>('scatterAdd', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, indices, updates } = inputs
    const a = attrs.axis
    const n = sizeOf(indices.shape)
    // Accumulate in float32 (or the integer type) and round once, as the float64 reference does.
    const accDType: DType = x.dtype === 'int32' || x.dtype === 'uint32' ? x.dtype : 'float32'
    const acc = castTo(backend, x, accDType)
    if (n > 0) {
      const xStrides = stridesOf(x.shape)
      const g = collapse(indices.shape, [xStrides.map((s, i) => (i === a ? 0 : s)), stridesOf(indices.shape)])
      const k = backend.kernel(
        'scatter.cu',
        accDType === 'float32'
          ? { DTU: ctype(updates.dtype), DTA: 'float', DTA_IS_FLOAT: 1 }
          : { DTU: ctype(updates.dtype), DTA: ctype(accDType) },
        'scatter_add_k',
        ['ptr', 'ptr', 'ptr', 'i64', 'geom', 'i32', 'i32', 'ptr'],
      )
      backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
        backend.ptr(indices),
        backend.ptr(updates),
        backend.ptr(acc),
        n,
        g,
        xStrides[a],
        x.shape[a],
        backend.errorWord.ptr,
      ])
      backend.noteIndexKernel()
    }
    if (accDType === x.dtype) return acc
    const out = castFromF32Ptr(backend, backend.ptr(acc), x.shape, x.dtype)
    backend.release(acc.dataId)
    return out
  })

  registerCoreKernel<'topk', CudaBackend>('topk', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const d = x.shape[x.shape.length - 1]
    const rows = d === 0 ? 0 : sizeOf(x.shape) / d
    const { k, largest } = attrs
    const outShape = [...x.shape.slice(0, -1), k]
    const values = backend.alloc(outShape, x.dtype)
    const indices = backend.alloc(outShape, 'int32')
    if (rows === 0 || k === 0) return [values, indices]
    const defs = { DT: ctype(x.dtype), DTK: kind(x.dtype) }
    let p = 1
    while (p < d) p *= 2
    if (p <= 4096) {
      const kern = backend.kernel('topk.cu', defs, 'topk_sort_k', [
        'ptr',
        'ptr',
        'ptr',
        'i32',
        'i32',
        'i32',
        'i32',
      ])
      backend.launch(kern, [rows, 1, 1], [Math.min(512, Math.max(32, p / 2)), 1, 1], 0, [
        backend.ptr(x),
        backend.ptr(values),
        backend.ptr(indices),
        d,
        k,
        p,
        largest ? 1 : 0,
      ])
    } else {
      const kern = backend.kernel('topk.cu', defs, 'topk_select_k', [
        'ptr',
        'ptr',
        'ptr',
        'i32',
        'i32',
        'i32',
      ])
      backend.launch(kern, [rows, 1, 1], [256, 1, 1], 0, [
        backend.ptr(x),
        backend.ptr(values),
        backend.ptr(indices),
        d,
        k,
        largest ? 1 : 0,
      ])
    }
    return [values, indices]
  })
}
