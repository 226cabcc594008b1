import {
  ArgumentError,
  type Backend,
  byteSize,
  concat,
  getBackend,
  keep,
  ShapeError,
  slice,
  type Tensor,
  tensor,
  zeros,
} from '@attnkit/core'
import {
  type RecordLayout,
  type ResolvedTpaConfig,
  recordLayout,
  resolveConfig,
  type TpaConfig,
} from './config.js'
import { type Impl, useFused } from './impl.js'
import { runCacheWriteKernel } from './kernels/fused.js'
import { CACHE_WRITE_KERNEL } from './kernels/names.js'

export interface CacheOptions {
  batch: number
  /** Capacity in tokens; the store is allocated at this size up front. */
  maxLen: number
  /**
   * Tokens gathered in the tail before they are written into the store (default 64). Each
   * flush rewrites the store's used rows, so the amortised cost per token is about
   * 2 * length / tailCapacity records, on top of the tail copy of up to tailCapacity records.
   */
  tailCapacity?: number
  /** Backend for the cache's buffers (default: the active one). */
  backend?: Backend
  /** How flushes are done: the fused 'tpa.cacheWrite' kernel or core ops (default auto). */
  impl?: Impl
}

/**
 * The factorised KV cache of one layer: per token only A_K, B_K (already rotated), A_V, B_V,
 * i.e. (R_K + R_V)(h + d_h) values instead of MHA's 2 h d_h (fixed factors store no A).
 *
 * Tensors are immutable, so appending cannot write in place. The cache keeps a fixed-capacity
 * store [B, maxLen, record] allocated at creation and a small tail [B, n, record] that grows
 * by one record per decoded token (a copy of at most tailCapacity records). When the tail is
 * full it is written into a new store tensor that replaces the old one: for that one op two
 * stores are alive (portable path: up to three, it slices and concatenates), then memory is
 * back to one store plus an empty tail. The decode kernel reads the store's used rows and the
 * tail in place, so nothing is concatenated per step.
 */
export class TpaCache {
  readonly config: ResolvedTpaConfig
  readonly layout: RecordLayout
  readonly batch: number
  readonly maxLen: number
  readonly tailCapacity: number
  readonly backend: Backend
  readonly impl: Impl
  /** Constant head factors [h, G] (G times the group one-hot) for fixed K / V, else null. */
  readonly aKConst: Tensor | null
  readonly aVConst: Tensor | null
  private _store: Tensor
  private _tail: Tensor | null = null
  private _storeLen = 0
  private disposed = false

  constructor(config: TpaConfig | ResolvedTpaConfig, opts: CacheOptions) {
    const c = resolveConfig(config)
    if (!opts || typeof opts !== 'object')
      throw new ArgumentError(
        `tpa.createCache: argument 'opts' expected { batch, maxLen }, got ${String(opts)}`,
      )
    for (const k of ['batch', 'maxLen'] as const) {
      const v = opts[k]
      if (!Number.isInteger(v) || v <= 0)
        throw new ArgumentError(`tpa.createCache: '${k}' expected a positive integer, got ${String(v)}`)
    }
    const tailCapacity = opts.tailCapacity ?? 64
    if (!Number.isInteger(tailCapacity) || tailCapacity <= 0)
      throw new ArgumentError(
        `tpa.createCache: 'tailCapacity' expected a positive integer, got ${String(tailCapacity)}`,
      )
    this.config = c
    this.layout = recordLayout(c)
    this.batch = opts.batch
    this.maxLen = opts.maxLen
    this.tailCapacity = tailCapacity
    this.backend = opts.backend ?? getBackend()
    this.impl = opts.impl ?? 'auto'
    this._store = keep(
      zeros([this.batch, this.maxLen, this.layout.size], { dtype: c.dtype, backend: this.backend }),
    )
    this.aKConst = c.k.kind === 'fixed' ? keep(groupOneHot(c.heads, c.k.rank, c.dtype, this.backend)) : null
    this.aVConst = c.v.kind === 'fixed' ? keep(groupOneHot(c.heads, c.v.rank, c.dtype, this.backend)) : null
  }

  /** Tokens held. */
  get length(): number {
    return this._storeLen + this.tailLength
  }

  get storeLength(): number {
    return this._storeLen
  }

  get tailLength(): number {
    return this._tail ? this._tail.shape[1] : 0
  }

  /** [B, maxLen, record]; rows at and beyond storeLength hold nothing meaningful. */
  get store(): Tensor {
    this.assertAlive('store')
    return this._store
  }

  /** [B, tailLength, record] or null when empty. */
  get tail(): Tensor | null {
    this.assertAlive('tail')
    return this._tail
  }

  /** Appends records [B, n, record] (see recordLayout); the cache takes no ownership of them. */
  append(records: Tensor): void {
    this.assertAlive('append')
    const { batch: B } = this
    const R = this.layout.size
    const s = records.shape
    if (s.length !== 3 || s[0] !== B || s[2] !== R)
      throw new ShapeError(`tpa cache: records expected shape [${B}, n, ${R}], got [${s.join(', ')}]`)
    if (records.dtype !== this.config.dtype)
      throw new ShapeError(`tpa cache: records expected dtype ${this.config.dtype}, got ${records.dtype}`)
    const n = s[1]
    if (this.length + n > this.maxLen)
      throw new ArgumentError(
        `tpa cache: full: holds ${this.length} of maxLen ${this.maxLen} tokens, cannot append ${n} more (create the cache with a larger maxLen)`,
      )
    if (!this._tail && n >= this.tailCapacity) {
      this.writeStore(records)
      return
    }
    const next = this._tail ? concat([this._tail, records], 1) : concat([records], 1)
    this._tail?.dispose()
    this._tail = keep(next)
    if (this._tail.shape[1] >= this.tailCapacity) this.flush()
  }

  /** Writes the tail into the store (the decode kernel reads both, so this is optional). */
  flush(): void {
    this.assertAlive('flush')
    if (!this._tail) return
    const tail = this._tail
    this._tail = null
    try {
      this.writeStore(tail)
    } finally {
      tail.dispose()
    }
  }

  private writeStore(records: Tensor): void {
    const n = records.shape[1]
    const next = useFused(CACHE_WRITE_KERNEL, this.backend, this.impl, this.config.dtype)
      ? runCacheWriteKernel(this._store, records, this._storeLen)
      : writeRowsPortable(this._store, records, this._storeLen)
    this._store.dispose()
    this._store = keep(next)
    this._storeLen += n
  }

  /** Every cached record in order, [B, length, record] (a new tensor; yours to dispose). */
  records(): Tensor {
    this.assertAlive('records')
    const parts: Tensor[] = []
    if (this._storeLen > 0)
      parts.push(slice(this._store, [0, 0, 0], [this.batch, this._storeLen, this.layout.size]))
    if (this._tail) parts.push(this._tail)
    if (parts.length === 0)
      return zeros([this.batch, 0, this.layout.size], { dtype: this.config.dtype, backend: this.backend })
    const out = concat(parts, 1)
    if (this._storeLen > 0) parts[0].dispose()
    return out
  }

  /** Bytes the cache holds now and per token (the store is allocated at full capacity). */
  bytes(): { allocated: number; used: number; perToken: number } {
    const perToken = this.layout.size * byteSize(this.config.dtype)
    return {
      allocated: perToken * this.batch * (this.maxLen + this.tailLength),
      used: perToken * this.batch * this.length,
      perToken,
    }
  }

  get isDisposed(): boolean {
    return this.disposed
  }

  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this._store.dispose()
    this._tail?.dispose()
    this._tail = null
    this.aKConst?.dispose()
    this.aVConst?.dispose()
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  private assertAlive(op: string): void {
    if (this.disposed) throw new ArgumentError(`tpa cache: ${op}() on a disposed cache`)
  }
}

/** A new store with rows [offset, offset + n) replaced by `records`, from core ops. */
export function writeRowsPortable(store: Tensor, records: Tensor, offset: number): Tensor {
  const [B, cap, R] = store.shape
  const n = records.shape[1]
  const parts: Tensor[] = []
  const owned: Tensor[] = []
  if (offset > 0) owned.push(slice(store, [0, 0, 0], [B, offset, R]))
  if (offset > 0) parts.push(owned[owned.length - 1])
  parts.push(records)
  if (offset + n < cap) {
    owned.push(slice(store, [0, offset + n, 0], [B, cap - offset - n, R]))
    parts.push(owned[owned.length - 1])
  }
  const out = concat(parts, 1)
  for (const t of owned) t.dispose()
  return out
}

/** A[i, g] = G when head i reads group g (g = floor(i / (h / G))), else 0: [h, G]. */
export function groupOneHot(heads: number, groups: number, dtype: Tensor['dtype'], backend: Backend): Tensor {
  const values = new Float64Array(heads * groups)
  const perGroup = heads / groups
  for (let i = 0; i < heads; i++) values[i * groups + Math.floor(i / perGroup)] = groups
  return tensor(values, [heads, groups], { dtype, backend })
}

export function createCache(config: TpaConfig | ResolvedTpaConfig, opts: CacheOptions): TpaCache {
  return new TpaCache(config, opts)
}
