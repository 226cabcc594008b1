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

const UNARY_OPS = Object.keys(UNARY_FLOAT) as UnaryOp[]

/** A WGSL switch over every op `table` defines, on the op index in uniform word `opAt`. */
function opSwitch(opAt: number, cases: [number, string][]): string {
  return `  switch (P(${opAt}u)) {\n${cases.map(([k, body]) => `    case ${k}u: { ${body} }`).join('\n')}\n    default: {}\n  }`
}

/** Unary ops as one pipeline per dtype: the op is a uniform, switched on in the shader. */
function unaryBody(dtype: DType, opAt: number): string {
  if (dtype === 'bool')
    return opSwitch(opAt, [[UNARY_OPS.indexOf('logicalNot'), 'r.y = select(0u, 1u, x == 0u);']])
  const table = dtype === 'int32' ? UNARY_INT : dtype === 'uint32' ? UNARY_UINT : UNARY_FLOAT
  const cases: [number, string][] = []
  for (const [op, fn] of Object.entries(table))
    cases.push([UNARY_OPS.indexOf(op as UnaryOp), `r.y = ${fn!('x')};`])
  return opSwitch(opAt, cases)
}

function checkUnary(op: UnaryOp, dtype: DType): void {
  const ok =
    dtype === 'bool'
      ? op === 'logicalNot'
      : dtype === 'int32'
        ? op in UNARY_INT
        : dtype === 'uint32'
          ? op in UNARY_UINT
          : op in UNARY_FLOAT
  if (!ok) throw new ArgumentError(`unary: op '${op}' is not defined for ${dtype}`)
}

const BINARY_OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'and', 'or']

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

function binaryBody(dtype: DType, opAt: number): string {
  const ops =
    dtype === 'bool' ? (['and', 'or'] as BinaryOp[]) : BINARY_OPS.filter((o) => o !== 'and' && o !== 'or')
  return opSwitch(
    opAt,
    ops.map((op) => [BINARY_OPS.indexOf(op), `r.y = ${binaryExpr(op, dtype)};`]),
  )
}

const COMPARE_OPS: CompareOp[] = ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual']
const COMPARE: Record<CompareOp, string> = {
  equal: '==',
  notEqual: '!=',
  less: '<',
  lessEqual: '<=',
  greater: '>',
  greaterEqual: '>=',
}

/**
 * Loads of broadcast operands for an output of `outShape`. When every operand either lines up
 * with the output or is one element, the load is `ld(i * m)` with m = 1 or 0 from a uniform (no
 * index maths); otherwise offsets come from strides. Either way one pipeline covers all shapes.
 */
export function broadcastLoads(
  operands: readonly { name: string; shape: Shape }[],
  outShape: Shape,
  params: Params,
): { prologue: string; load: Record<string, string>; key: string } {
  const modes = operands.map((o) => indexMode(o.shape, outShape))
  const load: Record<string, string> = {}
  if (modes.every((m) => m !== 'strided')) {
    operands.forEach((o, k) => {
      const at = params.u32(modes[k] === 'same' ? 1 : 0)
      load[o.name] = `ld_${o.name}(i * P(${at}u))`
    })
    return { prologue: '', load, key: 'direct' }
  }
  const strides: Record<string, number[]> = {}
  for (const o of operands) {
    strides[o.name] = broadcastStridesFor(o.shape, outShape)
    load[o.name] = `ld_${o.name}(off_${o.name})`
  }
  return { prologue: offsetsWgsl(params, outShape, strides), load, key: 'strided' }
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
    checkUnary(attrs.op, x.dtype)
    const params = new Params()
    const opAt = params.u32(UNARY_OPS.indexOf(attrs.op))
    return mapKernel(
      b,
      {
        key: 'unary',
        label: `unary ${attrs.op}`,
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(x.shape),
        params,
        body: `  let x = ld_x(i);\n${unaryBody(x.dtype, opAt)}`,
      },
      x.shape,
    )[0]
  })

  registerCoreKernel<'binary', WebGPUBackend>('binary', name, ({ inputs, attrs, backend: b }) => {
    const { a, b: bb } = inputs
    const shape = broadcastShapes('binary', a.shape, bb.shape)
    const params = new Params()
    const opAt = params.u32(BINARY_OPS.indexOf(attrs.op))
    const ld = broadcastLoads(
      [
        { name: 'a', shape: a.shape },
        { name: 'b', shape: bb.shape },
      ],
      shape,
      params,
    )
    const isBool = a.dtype === 'bool'
    if (isBool !== (attrs.op === 'and' || attrs.op === 'or'))
      throw new ArgumentError(`binary: op '${attrs.op}' is not defined for ${a.dtype}`)
    return mapKernel(
      b,
      {
        key: `binary:${ld.key}`,
        label: `binary ${attrs.op}`,
        inputs: [operand(b, 'a', a), operand(b, 'b', bb)],
        outputs: [{ name: 'y', dtype: a.dtype }],
        n: sizeOf(shape),
        params,
        body: `${ld.prologue}\n  let a = ${ld.load.a};\n  let b = ${ld.load.b};\n${binaryBody(a.dtype, opAt)}`,
      },
      shape,
    )[0]
  })

  registerCoreKernel<'compare', WebGPUBackend>('compare', name, ({ inputs, attrs, backend: b }) => {
    const { a, b: bb } = inputs
    const shape = broadcastShapes('compare', a.shape, bb.shape)
    const params = new Params()
    const opAt = params.u32(COMPARE_OPS.indexOf(attrs.op))
    const ld = broadcastLoads(
      [
        { name: 'a', shape: a.shape },
        { name: 'b', shape: bb.shape },
      ],
      shape,
      params,
    )
    const cases: [number, string][] = COMPARE_OPS.map((op, k) => [
      k,
      `r.y = select(0u, 1u, a ${COMPARE[op]} b);`,
    ])
    return mapKernel(
      b,
      {
        key: `compare:${ld.key}`,
        label: `compare ${attrs.op}`,
        inputs: [operand(b, 'a', a), operand(b, 'b', bb)],
        outputs: [{ name: 'y', dtype: 'bool' }],
        n: sizeOf(shape),
        params,
        body: `${ld.prologue}\n  let a = ${ld.load.a};\n  let b = ${ld.load.b};\n${opSwitch(opAt, cases)}`,
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
