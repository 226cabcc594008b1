import type { DType } from './dtype.js'

/** Base class of every error attnkit throws on purpose. */
export class AttnkitError extends Error {
  override name = 'AttnkitError'
}

/** A tensor argument had the wrong shape. */
export class ShapeError extends AttnkitError {
  override name = 'ShapeError'
}

/** A tensor argument had the wrong dtype. */
export class DTypeError extends AttnkitError {
  override name = 'DTypeError'
}

/** A non-tensor argument (an attribute) was out of range or of the wrong kind. */
export class ArgumentError extends AttnkitError {
  override name = 'ArgumentError'
}

/** A backend could not start or cannot run what was asked. */
export class BackendError extends AttnkitError {
  override name = 'BackendError'
}

/** A tensor was used after it was disposed. */
export class DisposedError extends AttnkitError {
  override name = 'DisposedError'
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

export function shapeError(op: string, arg: string, expected: string, actual: readonly number[]): ShapeError {
  return new ShapeError(`${op}: argument '${arg}' expected shape ${expected}, got ${fmtShape(actual)}`)
}

export function dtypeError(op: string, arg: string, expected: string, actual: DType): DTypeError {
  return new DTypeError(`${op}: argument '${arg}' expected dtype ${expected}, got ${actual}`)
}

export function argumentError(op: string, arg: string, expected: string, actual: unknown): ArgumentError {
  return new ArgumentError(`${op}: argument '${arg}' expected ${expected}, got ${formatValue(actual)}`)
}

function formatValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatValue).join(', ')}]`
  if (typeof v === 'string') return JSON.stringify(v)
  return String(v)
}
