import { DTYPES, type DType, isFloat } from '../dtype.js'
import { ENGINE } from '../engine.js'
import { argumentError, dtypeError } from '../errors.js'
import { type BinaryOp, type CompareOp, INTEGER_UNARY_OPS, type UnaryOp } from '../kernel-contract.js'
import { registerGradient, registerNonDifferentiable } from '../registry.js'
import { broadcastedAxes, broadcastShapes, type Shape, shapesEqual } from '../shape.js'
import { Tensor } from '../tensor.js'
import { assertTensor, run1 } from './validate.js'

export type TensorOrNumber = Tensor | number

// ------------------------------------------------------------------ helpers

/** Turns a number into a scalar tensor matching `like` (dtype, backend). */
function lift(op: string, arg: string, v: TensorOrNumber, like: Tensor | undefined): Tensor {
  if (v instanceof Tensor) {
    v.assertAlive(`${op} (argument '${arg}')`)
    return v
  }
  if (typeof v !== 'number') throw argumentError(op, arg, 'a Tensor or a number', typeof v)
  const dtype: DType = like?.dtype ?? 'float32'
  return ENGINE.runKernel('fill', {}, { shape: [], dtype, value: v }, like?.backend ?? ENGINE.getBackend())[0]
}

function withLifted(
  op: string,
  a: TensorOrNumber,
  b: TensorOrNumber,
  fn: (a: Tensor, b: Tensor) => Tensor,
): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : undefined
  const ta = lift(op, 'a', a, like)
  const tb = lift(op, 'b', b, like)
  try {
    return fn(ta, tb)
  } finally {
    if (ta !== a) ta.dispose()
    if (tb !== b) tb.dispose()
  }
}

/** Sums a broadcast gradient back down to `shape`. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g
  const axes = broadcastedAxes(shape, g.shape)
  const summed = axes.length ? run1('reduce', { x: g }, { op: 'sum', axes, keepDims: true }) : g
  const out = run1('reshape', { x: summed }, { shape: [...shape] })
  if (summed !== g) summed.dispose()
  return out
}

// ------------------------------------------------------------------ unary

function unary(op: UnaryOp, x: Tensor): Tensor {
  assertTensor(op, 'x', x)
  if (op === 'logicalNot') {
    if (x.dtype !== 'bool') throw dtypeError(op, 'x', 'bool', x.dtype)
  } else if (!isFloat(x.dtype) && !INTEGER_UNARY_OPS.includes(op)) {
    throw dtypeError(op, 'x', 'a floating dtype', x.dtype)
  } else if (x.dtype === 'bool') {
    throw dtypeError(op, 'x', 'a numeric dtype', x.dtype)
  }
  return run1('unary', { x }, { op })
}

export const neg = (x: Tensor) => unary('neg', x)
export const abs = (x: Tensor) => unary('abs', x)
export const exp = (x: Tensor) => unary('exp', x)
export const log = (x: Tensor) => unary('log', x)
export const sqrt = (x: Tensor) => unary('sqrt', x)
export const rsqrt = (x: Tensor) => unary('rsqrt', x)
export const square = (x: Tensor) => unary('square', x)
export const reciprocal = (x: Tensor) => unary('reciprocal', x)
export const sigmoid = (x: Tensor) => unary('sigmoid', x)
export const logSigmoid = (x: Tensor) => unary('logSigmoid', x)
export const tanh = (x: Tensor) => unary('tanh', x)
export const relu = (x: Tensor) => unary('relu', x)
/** Exact GELU, x * Phi(x). */
export const gelu = (x: Tensor) => unary('gelu', x)
export const silu = (x: Tensor) => unary('silu', x)
export const softplus = (x: Tensor) => unary('softplus', x)
export const sin = (x: Tensor) => unary('sin', x)
export const cos = (x: Tensor) => unary('cos', x)
export const erf = (x: Tensor) => unary('erf', x)
export const sign = (x: Tensor) => unary('sign', x)
export const floor = (x: Tensor) => unary('floor', x)
export const ceil = (x: Tensor) => unary('ceil', x)
export const round = (x: Tensor) => unary('round', x)
export const logicalNot = (x: Tensor) => unary('logicalNot', x)

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)

/** d(op)/dx as tensors; y is the forward output. Runs inside the backward pass (no taping). */
function unaryDerivative(op: UnaryOp, x: Tensor, y: Tensor): Tensor | null {
  switch (op) {
    case 'neg':
      return full(x, -1)
    case 'abs':
      return sign(x)
    case 'exp':
      return y
    case 'log':
      return reciprocal(x)
    case 'sqrt':
      return div(0.5, y)
    case 'rsqrt':
      return mul(-0.5, mul(y, mul(y, y)))
    case 'square':
      return mul(2, x)
    case 'reciprocal':
      return neg(square(y))
    case 'sigmoid':
      return mul(y, sub(1, y))
    case 'logSigmoid':
      return sigmoid(neg(x))
    case 'tanh':
      return sub(1, square(y))
    case 'relu':
      return cast(greater(x, 0), x.dtype)
    case 'gelu': {
      // Phi(x) + x phi(x)
      const cdf = mul(0.5, add(1, erf(mul(x, Math.SQRT1_2))))
      const pdf = mul(INV_SQRT_2PI, exp(mul(-0.5, square(x))))
      return add(cdf, mul(x, pdf))
    }
    case 'silu': {
      const s = sigmoid(x)
      return mul(s, add(1, mul(x, sub(1, s))))
    }
    case 'softplus':
      return sigmoid(x)
    case 'sin':
      return cos(x)
    case 'cos':
      return neg(sin(x))
    case 'erf':
      return mul(2 / Math.sqrt(Math.PI), exp(neg(square(x))))
    case 'sign':
    case 'floor':
    case 'ceil':
    case 'round':
      return full(x, 0)
    case 'logicalNot':
      return null
  }
}

function full(like: Tensor, value: number): Tensor {
  return ENGINE.runKernel('fill', {}, { shape: [...like.shape], dtype: like.dtype, value }, like.backend)[0]
}

registerGradient<{ op: UnaryOp }>({
  kernelName: 'unary',
  saveInputs: ['x'],
  saveOutputs: true,
  gradFunc: ({ dys, inputs, outputs, attrs }) => {
    const d = unaryDerivative(attrs.op, inputs.x as Tensor, outputs[0])
    return { x: d ? mul(dys[0], d) : undefined }
  },
})

// ------------------------------------------------------------------ binary

function binary(op: BinaryOp, a: TensorOrNumber, b: TensorOrNumber): Tensor {
  return withLifted(op, a, b, (ta, tb) => {
    if (ta.dtype !== tb.dtype)
      throw dtypeError(op, 'b', `${ta.dtype} (the dtype of 'a'; cast one explicitly)`, tb.dtype)
    if (op === 'and' || op === 'or') {
      if (ta.dtype !== 'bool') throw dtypeError(op, 'a', 'bool', ta.dtype)
    } else if (ta.dtype === 'bool') {
      throw dtypeError(op, 'a', 'a numeric dtype', ta.dtype)
    } else if ((op === 'div' || op === 'pow') && !isFloat(ta.dtype)) {
      throw dtypeError(op, 'a', 'a floating dtype', ta.dtype)
    }
    broadcastShapes(op, ta.shape, tb.shape)
    return run1('binary', { a: ta, b: tb }, { op })
  })
}

export const add = (a: TensorOrNumber, b: TensorOrNumber) => binary('add', a, b)
export const sub = (a: TensorOrNumber, b: TensorOrNumber) => binary('sub', a, b)
export const mul = (a: TensorOrNumber, b: TensorOrNumber) => binary('mul', a, b)
export const div = (a: TensorOrNumber, b: TensorOrNumber) => binary('div', a, b)
export const pow = (a: TensorOrNumber, b: TensorOrNumber) => binary('pow', a, b)
export const maximum = (a: TensorOrNumber, b: TensorOrNumber) => binary('maximum', a, b)
export const minimum = (a: TensorOrNumber, b: TensorOrNumber) => binary('minimum', a, b)
export const logicalAnd = (a: Tensor, b: Tensor) => binary('and', a, b)
export const logicalOr = (a: Tensor, b: Tensor) => binary('or', a, b)

registerGradient<{ op: BinaryOp }>({
  kernelName: 'binary',
  saveInputs: ['a', 'b'],
  gradFunc: ({ dys, inputs, attrs }) => {
    const dy = dys[0]
    const a = inputs.a as Tensor
    const b = inputs.b as Tensor
    let ga: Tensor | undefined
    let gb: Tensor | undefined
    switch (attrs.op) {
      case 'add':
        ga = dy
        gb = dy
        break
      case 'sub':
        ga = dy
        gb = neg(dy)
        break
      case 'mul':
        ga = mul(dy, b)
        gb = mul(dy, a)
        break
      case 'div':
        ga = div(dy, b)
        gb = neg(div(mul(dy, a), square(b)))
        break
      case 'pow': {
        ga = mul(dy, mul(b, pow(a, sub(b, 1))))
        // d/db a^b = a^b log a, taken as 0 where a <= 0 (as PyTorch does for a = 0).
        const positive = greater(a, 0)
        const safeLog = log(where(positive, a, 1))
        gb = mul(dy, mul(pow(a, b), safeLog))
        break
      }
      case 'maximum':
        ga = mul(dy, cast(greaterEqual(a, b), dy.dtype))
        gb = mul(dy, cast(less(a, b), dy.dtype))
        break
      case 'minimum':
        ga = mul(dy, cast(lessEqual(a, b), dy.dtype))
        gb = mul(dy, cast(greater(a, b), dy.dtype))
        break
      default:
        return {}
    }
    return { a: sumToShape(ga, a.shape), b: sumToShape(gb, b.shape) }
  },
})

// ------------------------------------------------------------------ compare, where, cast

function compare(op: CompareOp, a: TensorOrNumber, b: TensorOrNumber): Tensor {
  return withLifted(op, a, b, (ta, tb) => {
    if (ta.dtype !== tb.dtype) throw dtypeError(op, 'b', `${ta.dtype} (the dtype of 'a')`, tb.dtype)
    broadcastShapes(op, ta.shape, tb.shape)
    return run1('compare', { a: ta, b: tb }, { op })
  })
}

export const equal = (a: TensorOrNumber, b: TensorOrNumber) => compare('equal', a, b)
export const notEqual = (a: TensorOrNumber, b: TensorOrNumber) => compare('notEqual', a, b)
export const less = (a: TensorOrNumber, b: TensorOrNumber) => compare('less', a, b)
export const lessEqual = (a: TensorOrNumber, b: TensorOrNumber) => compare('lessEqual', a, b)
export const greater = (a: TensorOrNumber, b: TensorOrNumber) => compare('greater', a, b)
export const greaterEqual = (a: TensorOrNumber, b: TensorOrNumber) => compare('greaterEqual', a, b)
registerNonDifferentiable('compare')

/** Elementwise choice: cond ? a : b (broadcasting). */
export function where(cond: Tensor, a: TensorOrNumber, b: TensorOrNumber): Tensor {
  assertTensor('where', 'cond', cond)
  if (cond.dtype !== 'bool') throw dtypeError('where', 'cond', 'bool', cond.dtype)
  return withLifted('where', a, b, (ta, tb) => {
    if (ta.dtype !== tb.dtype) throw dtypeError('where', 'b', `${ta.dtype} (the dtype of 'a')`, tb.dtype)
    const s = broadcastShapes('where', ta.shape, tb.shape)
    broadcastShapes('where', cond.shape, s, 'cond', 'a/b')
    return run1('where', { cond, a: ta, b: tb }, {})
  })
}

registerGradient({
  kernelName: 'where',
  saveInputs: ['cond'],
  nonDifferentiableInputs: ['cond'],
  gradFunc: ({ dys, inputs, inputMeta }) => {
    const cond = inputs.cond as Tensor
    const dy = dys[0]
    const ga = where(cond, dy, 0)
    const gb = where(cond, 0, dy)
    return {
      a: sumToShape(ga, (inputMeta.a as { shape: Shape }).shape),
      b: sumToShape(gb, (inputMeta.b as { shape: Shape }).shape),
    }
  },
})

/** Converts to another dtype (float -> int truncates toward zero; -> bool is x != 0). */
export function cast(x: Tensor, dtype: DType): Tensor {
  assertTensor('cast', 'x', x)
  if (!DTYPES.includes(dtype)) throw argumentError('cast', 'dtype', DTYPES.join(' | '), dtype)
  if (x.dtype === dtype) return run1('reshape', { x }, { shape: [...x.shape] })
  return run1('cast', { x }, { dtype })
}

registerGradient<{ dtype: DType }>({
  kernelName: 'cast',
  gradFunc: ({ dys, inputMeta }) => {
    const from = (inputMeta.x as { dtype: DType }).dtype
    return { x: isFloat(from) ? cast(dys[0], from) : undefined }
  },
})

/** x * scale + shift in one expression (convenience). */
export function affine(x: Tensor, scale: number, shift = 0): Tensor {
  const scaled = mul(x, scale)
  if (shift === 0) return scaled
  const out = add(scaled, shift)
  scaled.dispose()
  return out
}

/** Clamps into [lo, hi]. */
export function clip(x: Tensor, lo: number, hi: number): Tensor {
  const a = maximum(x, lo)
  const out = minimum(a, hi)
  a.dispose()
  return out
}
