import { argumentError, type DType, dtypeError, fmtShape, ShapeError, Tensor } from '@attnkit/core'

export function assertTensorArg(op: string, arg: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw argumentError(op, arg, 'a Tensor', x === null ? 'null' : typeof x)
}

/** Checks a shape; `null` entries match anything, `names` label the dimensions in the message. */
export function assertShapeArg(
  op: string,
  arg: string,
  x: Tensor,
  expected: readonly (number | null)[],
  names: readonly string[],
): void {
  const ok = x.rank === expected.length && expected.every((d, i) => d === null || d === x.shape[i])
  if (!ok) {
    const desc = expected.map((d, i) => (d === null ? names[i] : `${names[i]}=${d}`))
    throw new ShapeError(
      `${op}: argument '${arg}' expected shape [${desc.join(', ')}], got ${fmtShape(x.shape)}`,
    )
  }
}

export function assertDTypeArg(op: string, arg: string, x: Tensor, ...allowed: DType[]): void {
  if (!allowed.includes(x.dtype)) throw dtypeError(op, arg, allowed.join(' | '), x.dtype)
}

export function assertIntArg(op: string, arg: string, v: unknown, min: number, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw argumentError(
      op,
      arg,
      Number.isFinite(max) ? `an integer in [${min}, ${max}]` : `an integer >= ${min}`,
      v,
    )
  }
  return v
}

export function assertNumberArg(
  op: string,
  arg: string,
  v: unknown,
  min = -Infinity,
  max = Infinity,
): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw argumentError(op, arg, `a finite number in [${min}, ${max}]`, v)
  }
  return v
}

export function assertOneOf<T extends string>(op: string, arg: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw argumentError(op, arg, allowed.map((a) => `'${a}'`).join(' | '), v)
  return v as T
}
