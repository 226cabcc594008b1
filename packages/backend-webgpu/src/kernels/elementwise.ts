import {
  ArgumentError,
  type BinaryOp,
  broadcastShapes,
  type CompareOp,
  type DType,
  registerCoreKernel,
  roundScalar,
  type Shape,
  sizeOf,
  type UnaryOp,
} from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { valueType } from '../wgsl/codec.js'
import {
  broadcastStridesFor,
  castExpr,
  indexMode,
  mapKernel,
  type Operand,
  offsetsWgsl,
  operand,
  Params,
} from './common.js'

const UNARY_FLOAT: Record<UnaryOp, (x: string) => string> = {
  neg: (x) => `-${x}`,
  abs: (x) => `abs(${x})`,
  exp: (x) => `exp(${x})`,
  log: (x) => `log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  rsqrt: (x) => `inverseSqrt(${x})`,
  square: (x) => `${x} * ${x}`,
  reciprocal: (x) => `1.0 / ${x}`,
  sigmoid: (x) => `sigmoid_f(${x})`,
  logSigmoid: (x) => `-softplus_f(-${x})`,
  tanh: (x) => `tanh_f(${x})`,
  relu: (x) => `max(${x}, 0.0)`,
  gelu: (x) => `gelu_f(${x})`,
  silu: (x) => `${x} * sigmoid_f(${x})`,
  softplus: (x) => `softplus_f(${x})`,
  sin: (x) => `sin(${x})`,
  cos: (x) => `cos(${x})`,
  erf: (x) => `erf_f(${x})`,
  sign: (x) => `sign(${x})`,
  floor: (x) => `floor(${x})`,
  ceil: (x) => `ceil(${x})`,
  round: (x) => `round(${x})`,
  logicalNot: (x) => `select(0.0, 1.0, ${x} == 0.0)`,
}

const UNARY_INT: Partial<Record<UnaryOp, (x: string) => string>> = {
  neg: (x) => `-${x}`,
  abs: (x) => `abs(${x})`,
  square: (x) => `${x} * ${x}`,
  sign: (x) => `sign(${x})`,
  relu: (x) => `max(${x}, 0i)`,
}

const UNARY_UINT: Partial<Record<UnaryOp, (x: string) => string>> = {
  neg: (x) => `0u - ${x}`,
  abs: (x) => x,
  square: (x) => `${x} * ${x}`,
  sign: (x) => `select(0u, 1u, ${x} > 0u)`,
  relu: (x) => x,
}

function unaryExpr(op: UnaryOp, dtype: DType, x: string): string {
  if (dtype === 'bool') {
    if (op === 'logicalNot') return `select(0u, 1u, ${x} == 0u)`
    throw new ArgumentError(`unary: op '${op}' is not defined for bool`)
  }
  const table = dtype === 'int32' ? UNARY_INT : dtype === 'uint32' ? UNARY_UINT : UNARY_FLOAT
  const fn = table[op]
  if (!fn) throw new ArgumentError(`unary: op '${op}' is not defined for ${dtype}`)
  return fn(x)
}

function binaryExpr(op: BinaryOp, dtype: DType): string {
  const vt = valueType(dtype)
  switch (op) {
    case 'add':
      return 'a + b'
    case 'sub':
      return 'a - b'
    case 'mul':
      return 'a * b'
    case 'div':
      // Integer division by zero gives 0, as the CPU's ToInt32(x / 0) does.
      return vt === 'f32'
        ? 'a / b'
        : `select(a / b, ${vt === 'i32' ? '0i' : '0u'}, b == ${vt === 'i32' ? '0i' : '0u'})`
    case 'pow':
      return vt === 'f32' ? 'pow_f(a, b)' : vt === 'i32' ? 'ipow_i32(a, b)' : 'ipow_u32(a, b)'
    case 'maximum':
      return 'max(a, b)'
    case 'minimum':
      return 'min(a, b)'
    case 'and':
      return 'select(0u, 1u, a != 0u && b != 0u)'
    case 'or':
      return 'select(0u, 1u, a != 0u || b != 0u)'
  }
}

const COMPARE: Record<CompareOp, string> = {
  equal: '==',
  notEqual: '!=',
  less: '<',
  lessEqual: '<=',
  greater: '>',
  greaterEqual: '>=',
}

/**
 * Loads of broadcast operands for an output of `outShape`: returns the WGSL prologue (offset
 * computation when any operand is strided), the expression that loads each operand, the
 * uniform words and a key fragment describing the index modes.
 */
export function broadcastLoads(
  operands: readonly { name: string; shape: Shape }[],
  outShape: Shape,
  params: Params,
): { prologue: string; load: Record<string, string>; key: string } {
  const modes = operands.map((o) => indexMode(o.shape, outShape))
  const load: Record<string, string> = {}
  const strided: Record<string, number> = {}
  let shapeAt = -1
  operands.forEach((o, k) => {
    if (modes[k] === 'same') load[o.name] = `ld_${o.name}(i)`
    else if (modes[k] === 'scalar') load[o.name] = `ld_${o.name}(0u)`
    else {
      if (shapeAt < 0) shapeAt = params.array(outShape)
      strided[o.name] = params.array(broadcastStridesFor(o.shape, outShape))
      load[o.name] = `ld_${o.name}(off_${o.name})`
    }
  })
  const prologue = shapeAt >= 0 ? offsetsWgsl(outShape.length, shapeAt, strided) : ''
  return { prologue, load, key: `${modes.join(',')}:${outShape.length}` }
}

export function registerElementwiseKernels(name: string): void {
  registerCoreKernel<'fill', WebGPUBackend>('fill', name, ({ attrs, backend: b }) => {
    const { dtype, shape } = attrs
    const n = sizeOf(shape)
    const params = new Params()
    const v = roundScalar(dtype, attrs.value)
    const vt = valueType(dtype)
    const at = vt === 'f32' ? params.f32(v) : params.u32(v)
    const value = vt === 'f32' ? `PF(${at}u)` : vt === 'i32' ? `PI(${at}u)` : `P(${at}u)`
    return mapKernel(
      b,
      {
        key: 'fill',
        label: 'fill',
        inputs: [],
        outputs: [{ name: 'y', dtype }],
        n,
        params,
        body: `  r.y = ${value};`,
      },
      shape,
    )[0]
  })

  registerCoreKernel<'cast', WebGPUBackend>('cast', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    return mapKernel(
      b,
      {
        key: 'cast',
        label: `cast ${x.dtype}->${attrs.dtype}`,
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: attrs.dtype }],
        n: sizeOf(x.shape),
        body: `  r.y = ${castExpr('ld_x(i)', x.dtype, attrs.dtype)};`,
      },
      x.shape,
    )[0]
  })

  registerCoreKernel<'unary', WebGPUBackend>('unary', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    return mapKernel(
      b,
      {
        key: `unary:${attrs.op}`,
        label: `unary ${attrs.op}`,
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(x.shape),
        body: `  let x = ld_x(i);\n  r.y = ${unaryExpr(attrs.op, x.dtype, 'x')};`,
      },
      x.shape,
    )[0]
  })

  registerCoreKernel<'binary', WebGPUBackend>('binary', name, ({ inputs, attrs, backend: b }) => {
    const { a, b: bb } = inputs
    const shape = broadcastShapes('binary', a.shape, bb.shape)
    const params = new Params()
    const ld = broadcastLoads(
      [
        { name: 'a', shape: a.shape },
        { name: 'b', shape: bb.shape },
      ],
      shape,
      params,
    )
    return mapKernel(
      b,
      {
        key: `binary:${attrs.op}:${ld.key}`,
        label: `binary ${attrs.op}`,
        inputs: [operand(b, 'a', a), operand(b, 'b', bb)],
        outputs: [{ name: 'y', dtype: a.dtype }],
        n: sizeOf(shape),
        params,
        body: `${ld.prologue}\n  let a = ${ld.load.a};\n  let b = ${ld.load.b};\n  r.y = ${binaryExpr(attrs.op, a.dtype)};`,
      },
      shape,
    )[0]
  })

  registerCoreKernel<'compare', WebGPUBackend>('compare', name, ({ inputs, attrs, backend: b }) => {
    const { a, b: bb } = inputs
    const shape = broadcastShapes('compare', a.shape, bb.shape)
    const params = new Params()
    const ld = broadcastLoads(
      [
        { name: 'a', shape: a.shape },
        { name: 'b', shape: bb.shape },
      ],
      shape,
      params,
    )
    return mapKernel(
      b,
      {
        key: `compare:${attrs.op}:${ld.key}`,
        label: `compare ${attrs.op}`,
        inputs: [operand(b, 'a', a), operand(b, 'b', bb)],
        outputs: [{ name: 'y', dtype: 'bool' }],
        n: sizeOf(shape),
        params,
        body: `${ld.prologue}\n  r.y = select(0u, 1u, ${ld.load.a} ${COMPARE[attrs.op]} ${ld.load.b});`,
      },
      shape,
    )[0]
  })

  registerCoreKernel<'where', WebGPUBackend>('where', name, ({ inputs, backend: b }) => {
    const { cond, a, b: bb } = inputs
    const shape = broadcastShapes('where', cond.shape, broadcastShapes('where', a.shape, bb.shape))
    const params = new Params()
    const ld = broadcastLoads(
      [
        { name: 'c', shape: cond.shape },
        { name: 'a', shape: a.shape },
        { name: 'b', shape: bb.shape },
      ],
      shape,
      params,
    )
    const ops: Operand[] = [operand(b, 'c', cond), operand(b, 'a', a), operand(b, 'b', bb)]
    return mapKernel(
      b,
      {
        key: `where:${ld.key}`,
        label: 'where',
        inputs: ops,
        outputs: [{ name: 'y', dtype: a.dtype }],
        n: sizeOf(shape),
        params,
        body: `${ld.prologue}\n  r.y = select(${ld.load.b}, ${ld.load.a}, ${ld.load.c} != 0u);`,
      },
      shape,
    )[0]
  })
}
