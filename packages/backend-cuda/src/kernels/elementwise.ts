import {
  ArgumentError,
  type BinaryOp,
  broadcastShapes,
  type CompareOp,
  type DType,
  registerCoreKernel,
  sizeOf,
  type TensorInfo,
  type UnaryOp,
} from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { broadcastGeom } from '../geometry.js'
import { ctype, kind } from '../host-convert.js'

/** Op codes, mirrored by kernels/elementwise.cu. */
export const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0,
  abs: 1,
  exp: 2,
  log: 3,
  sqrt: 4,
  rsqrt: 5,
  square: 6,
  reciprocal: 7,
  sigmoid: 8,
  logSigmoid: 9,
  tanh: 10,
  relu: 11,
  gelu: 12,
  silu: 13,
  softplus: 14,
  sin: 15,
  cos: 16,
  erf: 17,
  sign: 18,
  floor: 19,
  ceil: 20,
  round: 21,
  logicalNot: 22,
}

export const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  pow: 4,
  maximum: 5,
  minimum: 6,
  and: 7,
  or: 8,
}

export const COMPARE_CODE: Record<CompareOp, number> = {
  equal: 0,
  notEqual: 1,
  less: 2,
  lessEqual: 3,
  greater: 4,
  greaterEqual: 5,
}

export function elemDefines(dtype: DType): { DT: string; DTK: number } {
  return { DT: ctype(dtype), DTK: kind(dtype) }
}

/** Converts `x` to `dtype` on the device (a new tensor). */
export function castTo(backend: CudaBackend, x: TensorInfo, dtype: DType): TensorInfo {
  const out = backend.alloc(x.shape, dtype)
  const n = sizeOf(x.shape)
  if (n === 0) return out
  if (x.dtype === dtype) {
    backend.copy(backend.ptr(out), backend.ptr(x), n * byteWidth(dtype))
    return out
  }
  const k = backend.kernel(
    'cast.cu',
    { DT: ctype(x.dtype), DTK: kind(x.dtype), DTO: ctype(dtype), DTOK: kind(dtype) },
    'cast_k',
    ['ptr', 'ptr', 'i64'],
  )
  backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [backend.ptr(x), backend.ptr(out), n])
  return out
}

/** Converts a float32 device buffer of `shape` into a new tensor of `dtype`. */
export function castFromF32Ptr(
  backend: CudaBackend,
  src: bigint,
  shape: readonly number[],
  dtype: DType,
): TensorInfo {
  const out = backend.alloc(shape, dtype)
  const n = sizeOf(shape)
  if (n === 0) return out
  if (dtype === 'float32') {
    backend.copy(backend.ptr(out), src, n * 4)
    return out
  }
  const k = backend.kernel(
    'cast.cu',
    { DT: 'float', DTK: 0, DTO: ctype(dtype), DTOK: kind(dtype) },
    'cast_k',
    ['ptr', 'ptr', 'i64'],
  )
  backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [src, backend.ptr(out), n])
  return out
}

export function byteWidth(dtype: DType): number {
  return dtype === 'bool' ? 1 : dtype === 'float16' || dtype === 'bfloat16' ? 2 : 4
}

export function registerElementwiseKernels(): void {
  registerCoreKernel<'fill', CudaBackend>('fill', 'cuda', ({ attrs, backend }) => {
    const out = backend.alloc(attrs.shape, attrs.dtype)
    backend.fill(out, attrs.value)
    return out
  })

  registerCoreKernel<'cast', CudaBackend>('cast', 'cuda', ({ inputs, attrs, backend }) =>
    castTo(backend, inputs.x, attrs.dtype),
  )

  registerCoreKernel<'unary', CudaBackend>('unary', 'cuda', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const code = UNARY_CODE[attrs.op]
    if (code === undefined) throw new ArgumentError(`unary: unknown op '${attrs.op}'`)
    const out = backend.alloc(x.shape, x.dtype)
    const n = sizeOf(x.shape)
    if (n === 0) return out
    const k = backend.kernel('elementwise.cu', elemDefines(x.dtype), 'unary_k', ['ptr', 'ptr', 'i64', 'i32'])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [backend.ptr(x), backend.ptr(out), n, code])
    return out
  })

  registerCoreKernel<'binary', CudaBackend>('binary', 'cuda', ({ inputs, attrs, backend }) => {
    const { a, b } = inputs
    const shape = broadcastShapes('binary', a.shape, b.shape)
    const code = BINARY_CODE[attrs.op]
    if (code === undefined) throw new ArgumentError(`binary: unknown op '${attrs.op}'`)
    const out = backend.alloc(shape, a.dtype)
    const n = sizeOf(shape)
    if (n === 0) return out
    const defs = elemDefines(a.dtype)
    if (sizeOf(a.shape) === n && sizeOf(b.shape) === n) {
      const k = backend.kernel('elementwise.cu', defs, 'binary_same_k', ['ptr', 'ptr', 'ptr', 'i64', 'i32'])
      backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
        backend.ptr(a),
        backend.ptr(b),
        backend.ptr(out),
        n,
        code,
      ])
      return out
    }
    const g = broadcastGeom(shape, [a.shape, b.shape])
    const k = backend.kernel('elementwise.cu', defs, 'binary_k', ['ptr', 'ptr', 'ptr', 'i64', 'geom', 'i32'])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(a),
      backend.ptr(b),
      backend.ptr(out),
      n,
      g,
      code,
    ])
    return out
  })

  registerCoreKernel<'compare', CudaBackend>('compare', 'cuda', ({ inputs, attrs, backend }) => {
    const { a, b } = inputs
    const shape = broadcastShapes('compare', a.shape, b.shape)
    const out = backend.alloc(shape, 'bool')
    const n = sizeOf(shape)
    if (n === 0) return out
    const g = broadcastGeom(shape, [a.shape, b.shape])
    const k = backend.kernel('elementwise.cu', elemDefines(a.dtype), 'compare_k', [
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'geom',
      'i32',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(a),
      backend.ptr(b),
      backend.ptr(out),
      n,
      g,
      COMPARE_CODE[attrs.op],
    ])
    return out
  })

  registerCoreKernel<'where', CudaBackend>('where', 'cuda', ({ inputs, backend }) => {
    const { cond, a, b } = inputs
    const shape = broadcastShapes('where', cond.shape, broadcastShapes('where', a.shape, b.shape))
    const out = backend.alloc(shape, a.dtype)
    const n = sizeOf(shape)
    if (n === 0) return out
    const g = broadcastGeom(shape, [cond.shape, a.shape, b.shape])
    const k = backend.kernel('elementwise.cu', elemDefines(a.dtype), 'where_k', [
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'geom',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(cond),
      backend.ptr(a),
      backend.ptr(b),
      backend.ptr(out),
      n,
      g,
    ])
    return out
  })
}
