import type { Backend } from '../backend.js'
import { DTYPES, type DType, toHostArray } from '../dtype.js'
import { ENGINE } from '../engine.js'
import { argumentError, ShapeError } from '../errors.js'
import { assertValidShape, type Shape, sizeOf } from '../shape.js'
import type { NestedArray, Tensor } from '../tensor.js'
import { assertTensor, run1 } from './validate.js'

export interface CreateOptions {
  dtype?: DType
  /** Backend to place the tensor on (default: the active backend). */
  backend?: Backend
}

function assertDTypeName(op: string, dtype: unknown): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType)) throw argumentError(op, 'dtype', DTYPES.join(' | '), dtype)
}

function inferShape(values: NestedArray | ArrayLike<number>): number[] {
  const shape: number[] = []
  let v: unknown = values
  while (Array.isArray(v)) {
    shape.push(v.length)
    v = v[0]
  }
  if (shape.length === 0 && ArrayBuffer.isView(values)) shape.push((values as ArrayLike<number>).length)
  return shape
}

function flatten(values: NestedArray, shape: readonly number[], out: number[], depth = 0): void {
  if (depth === shape.length) {
    if (typeof values !== 'number' && typeof values !== 'boolean') {
      throw new ShapeError(`tensor: ragged nested array (expected a number at depth ${depth})`)
    }
    out.push(Number(values))
    return
  }
  if (!Array.isArray(values) || values.length !== shape[depth]) {
    throw new ShapeError(`tensor: ragged nested array (expected length ${shape[depth]} at depth ${depth})`)
  }
  for (const v of values) flatten(v, shape, out, depth + 1)
}

function defaultDType(values: unknown): DType {
  if (values instanceof Int32Array) return 'int32'
  if (values instanceof Uint32Array) return 'uint32'
  if (values instanceof Uint8Array) return 'bool'
  return 'float32'
}

/**
 * Creates a tensor from a number, a nested array or a typed array. `shape` defaults to the
 * nesting of `values`; the dtype to float32 (int32/uint32/bool for those typed arrays).
 */
export function tensor(
  values: NestedArray | ArrayLike<number>,
  shape?: Shape,
  opts: CreateOptions | DType = {},
): Tensor {
  const o: CreateOptions = typeof opts === 'string' ? { dtype: opts } : opts
  const dtype = o.dtype ?? defaultDType(values)
  assertDTypeName('tensor', dtype)
  let flat: ArrayLike<number>
  if (typeof values === 'number') flat = [values]
  else if (ArrayBuffer.isView(values)) flat = values as ArrayLike<number>
  else if (Array.isArray(values)) {
    const s = inferShape(values)
    const out: number[] = []
    flatten(values as NestedArray, s, out)
    flat = out
    shape ??= s
  } else throw argumentError('tensor', 'values', 'a number, nested array or typed array', typeof values)
  shape ??= typeof values === 'number' ? [] : [flat.length]
  assertValidShape('tensor', shape)
  if (sizeOf(shape) !== flat.length) {
    throw new ShapeError(
      `tensor: ${flat.length} values do not fill shape [${shape.join(', ')}] (${sizeOf(shape)} elements)`,
    )
  }
  return ENGINE.fromHost(toHostArray(dtype, flat), shape, dtype, o.backend)
}

export function scalar(value: number, opts: CreateOptions | DType = {}): Tensor {
  return tensor(value, [], opts)
}

export function full(shape: Shape, value: number, opts: CreateOptions | DType = {}): Tensor {
  const o: CreateOptions = typeof opts === 'string' ? { dtype: opts } : opts
  const dtype = o.dtype ?? 'float32'
  assertDTypeName('full', dtype)
  assertValidShape('full', shape)
  if (o.backend) {
    return ENGINE.runKernelOn(o.backend, 'fill', { shape: [...shape], dtype, value })
  }
  return run1('fill', {}, { shape: [...shape], dtype, value })
}

export function zeros(shape: Shape, opts: CreateOptions | DType = {}): Tensor {
  return full(shape, 0, opts)
}

export function ones(shape: Shape, opts: CreateOptions | DType = {}): Tensor {
  return full(shape, 1, opts)
}

export function zerosLike(x: Tensor): Tensor {
  assertTensor('zerosLike', 'x', x)
  return full(x.shape, 0, { dtype: x.dtype, backend: x.backend })
}

export function onesLike(x: Tensor): Tensor {
  assertTensor('onesLike', 'x', x)
  return full(x.shape, 1, { dtype: x.dtype, backend: x.backend })
}

/** [start, start + step, ...) up to (not including) stop; int32 by default. */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions | DType = {}): Tensor {
  const o: CreateOptions = typeof opts === 'string' ? { dtype: opts } : opts
  if (stop === undefined) {
    stop = start
    start = 0
  }
  if (step === 0) throw argumentError('arange', 'step', 'a non-zero number', step)
  const n = Math.max(0, Math.ceil((stop - start) / step))
  const values = Array.from({ length: n }, (_, i) => start + i * step)
  return tensor(values, [n], { dtype: o.dtype ?? 'int32', backend: o.backend })
}

/** Copies a tensor to another backend (a new tensor; the original stays). */
export async function toBackend(x: Tensor, backend: Backend | string): Promise<Tensor> {
  assertTensor('toBackend', 'x', x)
  const target = typeof backend === 'string' ? await ENGINE.backend(backend) : backend
  if (target === x.backend) return ENGINE.makeTensor(x, x.backend)
  const values = await x.data()
  return ENGINE.fromHost(values, x.shape, x.dtype, target)
}

/** Synchronous toBackend, for backends that can read synchronously (CPU, CUDA). */
export function toBackendSync(x: Tensor, backend: Backend | string): Tensor {
  assertTensor('toBackendSync', 'x', x)
  const target = typeof backend === 'string' ? ENGINE.backendSync(backend) : backend
  if (target === x.backend) return ENGINE.makeTensor(x, x.backend)
  return ENGINE.fromHost(x.dataSync(), x.shape, x.dtype, target)
}
