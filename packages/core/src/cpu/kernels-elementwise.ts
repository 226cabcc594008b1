import { type DType, isFloat, roundScalar, type TypedArray } from '../dtype.js'
import { ArgumentError } from '../errors.js'
import type { BinaryOp, CompareOp, UnaryOp } from '../kernel-contract.js'
import { registerCoreKernel } from '../registry.js'
import { broadcastShapes, sizeOf } from '../shape.js'
import type { CpuBackend } from './cpu-backend.js'
import { forEachBroadcast2, forEachBroadcast3 } from './iter.js'
import { erf, gelu, roundHalfEven, sigmoid, softplus } from './scalar-math.js'

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  sigmoid,
  logSigmoid: (x) => -softplus(-x),
  tanh: Math.tanh,
  relu: (x) => Math.max(x, 0),
  gelu,
  silu: (x) => x * sigmoid(x),
  softplus,
  sin: Math.sin,
  cos: Math.cos,
  erf,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  floor: Math.floor,
  ceil: Math.ceil,
  round: roundHalfEven,
  logicalNot: (x) => (x ? 0 : 1),
}

function binaryFn(op: BinaryOp, dtype: DType): (a: number, b: number) => number {
  const int = dtype === 'int32' ? (v: number) => v | 0 : dtype === 'uint32' ? (v: number) => v >>> 0 : null
  switch (op) {
    case 'add':
      return (a, b) => a + b
    case 'sub':
      return (a, b) => a - b
    case 'mul':
      return int ? (a, b) => int(Math.imul(a, b)) : (a, b) => a * b
    case 'div':
      return (a, b) => a / b
    case 'pow':
      return (a, b) => a ** b
    case 'maximum':
      return Math.max
    case 'minimum':
      return Math.min
    case 'and':
      return (a, b) => (a && b ? 1 : 0)
    case 'or':
      return (a, b) => (a || b ? 1 : 0)
  }
}

const COMPARE: Record<CompareOp, (a: number, b: number) => number> = {
  equal: (a, b) => (a === b ? 1 : 0),
  notEqual: (a, b) => (a !== b ? 1 : 0),
  less: (a, b) => (a < b ? 1 : 0),
  lessEqual: (a, b) => (a <= b ? 1 : 0),
  greater: (a, b) => (a > b ? 1 : 0),
  greaterEqual: (a, b) => (a >= b ? 1 : 0),
}

function castValue(x: number, to: DType, from: DType): number {
  if (to === 'bool') return x !== 0 ? 1 : 0
  if (to === 'int32') return isFloat(from) ? Math.trunc(x) | 0 : x | 0
  if (to === 'uint32') return isFloat(from) ? Math.trunc(x) >>> 0 : x >>> 0
  return x
}

export function registerElementwiseKernels(): void {
  registerCoreKernel<'fill', CpuBackend>('fill', 'cpu', ({ attrs, backend }) => {
    const out = backend.alloc(attrs.dtype, sizeOf(attrs.shape))
    out.fill(roundScalar(attrs.dtype, attrs.value))
    return backend.output(out, attrs.shape, attrs.dtype)
  })

  registerCoreKernel<'cast', CpuBackend>('cast', 'cpu', ({ inputs, attrs, backend }) => {
    const x = backend.values(inputs.x)
    const out = backend.alloc(attrs.dtype, x.length)
    for (let i = 0; i < x.length; i++) out[i] = castValue(x[i], attrs.dtype, inputs.x.dtype)
    return backend.output(out, inputs.x.shape, attrs.dtype)
  })

  registerCoreKernel<'unary', CpuBackend>('unary', 'cpu', ({ inputs, attrs, backend }) => {
    const fn = UNARY[attrs.op]
    if (!fn) throw new ArgumentError(`unary: unknown op '${attrs.op}'`)
    const x = backend.values(inputs.x)
    const out = backend.alloc(inputs.x.dtype, x.length)
    for (let i = 0; i < x.length; i++) out[i] = fn(x[i])
    return backend.output(out, inputs.x.shape, inputs.x.dtype)
  })

  registerCoreKernel<'binary', CpuBackend>('binary', 'cpu', ({ inputs, attrs, backend }) => {
    const { a, b } = inputs
    const shape = broadcastShapes('binary', a.shape, b.shape)
    const fn = binaryFn(attrs.op, a.dtype)
    const va = backend.values(a)
    const vb = backend.values(b)
    const out: TypedArray = backend.alloc(a.dtype, sizeOf(shape))
    forEachBroadcast2(shape, a.shape, b.shape, (i, ia, ib) => {
      out[i] = fn(va[ia], vb[ib])
    })
    return backend.output(out, shape, a.dtype)
  })

  registerCoreKernel<'compare', CpuBackend>('compare', 'cpu', ({ inputs, attrs, backend }) => {
    const { a, b } = inputs
    const shape = broadcastShapes('compare', a.shape, b.shape)
    const fn = COMPARE[attrs.op]
    const va = backend.values(a)
    const vb = backend.values(b)
    const out = backend.alloc('bool', sizeOf(shape))
    forEachBroadcast2(shape, a.shape, b.shape, (i, ia, ib) => {
      out[i] = fn(va[ia], vb[ib])
    })
    return backend.output(out, shape, 'bool')
  })

  registerCoreKernel<'where', CpuBackend>('where', 'cpu', ({ inputs, backend }) => {
    const { cond, a, b } = inputs
    const shape = broadcastShapes('where', cond.shape, broadcastShapes('where', a.shape, b.shape))
    const vc = backend.values(cond)
    const va = backend.values(a)
    const vb = backend.values(b)
    const out = backend.alloc(a.dtype, sizeOf(shape))
    forEachBroadcast3(shape, cond.shape, a.shape, b.shape, (i, ic, ia, ib) => {
      out[i] = vc[ic] ? va[ia] : vb[ib]
    })
    return backend.output(out, shape, a.dtype)
  })
}
