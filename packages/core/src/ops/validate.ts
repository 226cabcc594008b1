import type { Backend } from '../backend.js'
import { type DType, isFloat } from '../dtype.js'
import { ENGINE } from '../engine.js'
import { argumentError, dtypeError, fmtShape, shapeError } from '../errors.js'
import type { Attrs } from '../kernel-contract.js'
import { Tensor } from '../tensor.js'

/** Runs a single-output kernel. */
export function run1(
  kernelName: string,
  inputs: Record<string, Tensor | readonly Tensor[] | undefined>,
  attrs: Attrs = {},
): Tensor {
  return ENGINE.runKernel(kernelName, inputs, attrs)[0]
}

/** Throws unless `x` is a live Tensor; names the op and argument. */
export function assertTensor(op: string, arg: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor))
    throw argumentError(op, arg, 'a Tensor', typeof x === 'object' ? String(x) : typeof x)
  x.assertAlive(`${op} (argument '${arg}')`)
}

export function assertFloat(op: string, arg: string, x: Tensor): void {
  if (!isFloat(x.dtype))
    throw dtypeError(op, arg, 'a floating dtype (float32, float16, bfloat16, float64)', x.dtype)
}

export function assertDType(op: string, arg: string, x: Tensor, ...allowed: DType[]): void {
  if (!allowed.includes(x.dtype)) throw dtypeError(op, arg, allowed.join(' or '), x.dtype)
}

export function assertSameDType(op: string, argA: string, a: Tensor, argB: string, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw dtypeError(op, argB, `${a.dtype} (the dtype of '${argA}'; cast one explicitly)`, b.dtype)
  }
}

export function assertRank(
  op: string,
  arg: string,
  x: Tensor,
  rank: number | readonly number[],
  what?: string,
): void {
  const ranks = typeof rank === 'number' ? [rank] : rank
  if (!ranks.includes(x.rank)) {
    throw shapeError(op, arg, what ?? `rank ${ranks.join(' or ')}`, x.shape)
  }
}

/** Checks x.shape against an expected pattern; null entries match anything. */
export function assertShape(
  op: string,
  arg: string,
  x: Tensor,
  expected: readonly (number | null)[],
  names?: readonly string[],
): void {
  const ok = x.rank === expected.length && expected.every((d, i) => d === null || d === x.shape[i])
  if (!ok) {
    const desc = expected.map((d, i) =>
      d === null ? (names?.[i] ?? '*') : names?.[i] ? `${names[i]}=${d}` : String(d),
    )
    throw shapeError(op, arg, `[${desc.join(', ')}]`, x.shape)
  }
}

export function assertInt(
  op: string,
  arg: string,
  v: unknown,
  min = Number.NEGATIVE_INFINITY,
  max = Number.POSITIVE_INFINITY,
): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = Number.isFinite(max)
      ? `an integer in [${min}, ${max}]`
      : Number.isFinite(min)
        ? `an integer >= ${min}`
        : 'an integer'
    throw argumentError(op, arg, range, v)
  }
  return v
}

export function assertNumber(
  op: string,
  arg: string,
  v: unknown,
  pred: (n: number) => boolean = Number.isFinite,
  expected = 'a finite number',
): number {
  if (typeof v !== 'number' || !pred(v)) throw argumentError(op, arg, expected, v)
  return v
}

/** Tensors that must share a backend: returns it (for ops creating helper tensors). */
export function backendOf(...xs: (Tensor | undefined)[]): Backend {
  return xs.find((x) => x)?.backend ?? ENGINE.getBackend()
}

export { fmtShape }
