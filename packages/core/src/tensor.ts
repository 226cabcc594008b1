import type { Backend, DataId, TensorInfo } from './backend.js'
import type { DType, TypedArray } from './dtype.js'
import { ArgumentError, DisposedError, fmtShape } from './errors.js'
import { type Shape, sizeOf } from './shape.js'

/** The part of the engine a tensor talks to; kept as an interface so tensor.ts has no import cycle. */
export interface TensorOwner {
  disposeTensor(t: Tensor): void
}

let nextTensorId = 0

export type NestedArray = number | NestedArray[]

/**
 * An immutable n-dimensional array living on one backend. Free it with `dispose()` (or
 * `using t = ...`), or create it inside `tidy()` which frees everything not returned.
 */
export class Tensor implements TensorInfo {
  readonly id: number = nextTensorId++
  readonly size: number
  private disposed = false

  constructor(
    readonly dataId: DataId,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly backend: Backend,
    private readonly owner: TensorOwner,
  ) {
    this.size = sizeOf(shape)
  }

  get rank(): number {
    return this.shape.length
  }

  get isDisposed(): boolean {
    return this.disposed
  }

  /** Reads the elements back (16-bit floats as float32, bool as 0/1 bytes). */
  async data(): Promise<TypedArray> {
    this.assertAlive('data')
    return this.backend.read(this.dataId)
  }

  /** Synchronous read-back; WebGPU cannot do this and says so. */
  dataSync(): TypedArray {
    this.assertAlive('dataSync')
    return this.backend.readSync(this.dataId)
  }

  /** Reads back as nested JS arrays. */
  async array(): Promise<NestedArray> {
    return nest(await this.data(), this.shape)
  }

  arraySync(): NestedArray {
    return nest(this.dataSync(), this.shape)
  }

  /** The single element of a size-1 tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ArgumentError(`item(): tensor has ${this.size} elements, expected 1`)
    return (await this.data())[0]
  }

  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.owner.disposeTensor(this)
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  assertAlive(op: string): void {
    if (this.disposed) {
      throw new DisposedError(`${op}: tensor #${this.id} ${fmtShape(this.shape)} ${this.dtype} was disposed`)
    }
  }

  toString(): string {
    return `Tensor(#${this.id}, ${fmtShape(this.shape)}, ${this.dtype}, ${this.backend.name}${this.disposed ? ', disposed' : ''})`
  }
}

function nest(values: ArrayLike<number>, shape: Shape): NestedArray {
  if (shape.length === 0) return values[0]
  const build = (offset: number, dim: number): NestedArray[] => {
    const n = shape[dim]
    const stride = sizeOf(shape.slice(dim + 1))
    const out: NestedArray[] = []
    for (let i = 0; i < n; i++) {
      out.push(dim === shape.length - 1 ? values[offset + i] : build(offset + i * stride, dim + 1))
    }
    return out
  }
  return build(0, 0)
}

/** Tensors nested in arrays and plain objects, as params and grads are. */
export type TensorTree =
  | Tensor
  | undefined
  | null
  | readonly TensorTree[]
  | { readonly [key: string]: TensorTree }

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor
}

export function flattenTree(tree: unknown, out: Tensor[] = []): Tensor[] {
  if (tree instanceof Tensor) out.push(tree)
  else if (Array.isArray(tree)) for (const t of tree) flattenTree(t, out)
  else if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype) {
    for (const v of Object.values(tree)) flattenTree(v, out)
  }
  return out
}

/** Rebuilds a tree of the same structure, mapping each tensor. */
export function mapTree<T>(tree: unknown, fn: (t: Tensor) => T): unknown {
  if (tree instanceof Tensor) return fn(tree)
  if (Array.isArray(tree)) return tree.map((t) => mapTree(t, fn))
  if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype) {
    const out: Record<string | symbol, unknown> = Object.fromEntries(
      Object.entries(tree).map(([k, v]) => [k, mapTree(v, fn)]),
    )
    // Symbol keys hold metadata beside the tensors (e.g. a layer's config): kept as they are.
    for (const k of Object.getOwnPropertySymbols(tree))
      if (Object.prototype.propertyIsEnumerable.call(tree, k)) out[k] = (tree as Record<symbol, unknown>)[k]
    return out
  }
  return tree
}
