import type { DType } from '../dtype.js'

/** Base tolerance of the max-normalised error, per dtype of the computation under test. */
export function baseTolerance(dtype: DType): number {
  switch (dtype) {
    case 'float64':
      return 1e-9
    case 'float32':
      return 3e-5
    case 'float16':
      return 3e-3
    case 'bfloat16':
      return 1.6e-2
    default:
      return 0
  }
}

export interface Comparison {
  /** max |a - r| / max |r| (0 when both are all zero). */
  error: number
  /** Index of the worst element, and its two values. */
  worst?: { index: number; actual: number; expected: number }
  /** A structural problem (length, NaN where the reference has none). */
  problem?: string
}

/** Compares an actual array against a float64 reference, normalising by the reference's max. */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>): Comparison {
  if (actual.length !== expected.length)
    return { error: Number.POSITIVE_INFINITY, problem: `length ${actual.length} != ${expected.length}` }
  let scale = 0
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]
    if (Number.isFinite(e)) scale = Math.max(scale, Math.abs(e))
  }
  let error = 0
  let worst: Comparison['worst']
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]
    const e = expected[i]
    if (Number.isNaN(e) !== Number.isNaN(a))
      return {
        error: Number.POSITIVE_INFINITY,
        problem: `NaN mismatch at ${i}: ${a} vs ${e}`,
        worst: { index: i, actual: a, expected: e },
      }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e && !(Number.isNaN(a) && Number.isNaN(e)))
        return {
          error: Number.POSITIVE_INFINITY,
          problem: `non-finite mismatch at ${i}: ${a} vs ${e}`,
          worst: { index: i, actual: a, expected: e },
        }
      continue
    }
    const d = Math.abs(a - e) / (scale || 1)
    if (d > error) {
      error = d
      worst = { index: i, actual: a, expected: e }
    }
  }
  return { error, worst }
}

/** Exact comparison for integer and bool outputs. */
export function compareExact(actual: ArrayLike<number>, expected: ArrayLike<number>): Comparison {
  if (actual.length !== expected.length)
    return { error: Number.POSITIVE_INFINITY, problem: `length ${actual.length} != ${expected.length}` }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i])
      return {
        error: 1,
        worst: { index: i, actual: actual[i], expected: expected[i] },
        problem: `element ${i}: ${actual[i]} != ${expected[i]}`,
      }
  }
  return { error: 0 }
}
