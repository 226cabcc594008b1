import {
  ArgumentError,
  add,
  arange,
  argmin,
  attention,
  type Backend,
  cast,
  concat,
  equal,
  expandDims,
  fmtShape,
  full,
  gather,
  greater,
  greaterEqual,
  linear,
  logicalAnd,
  matmul,
  min,
  mul,
  reshape,
  rope,
  ShapeError,
  sigmoid,
  type Tensor,
  takeAlongAxis,
  tensor,
  tidy,
  topk,
  transpose,
  where,
  zeros,
} from '@attnkit/core'
import { type MosaConfig, type ResolvedConfig, resolveConfig, selectedTokens } from './config.js'
import { checkInput, forwardWithRouting, type MosaPath } from './forward.js'
import { checkParams, type MosaParams } from './params.js'
import { perHeadIn } from './portable.js'
import { flatRowIndices } from './routing.js'

/**
 * Decode state of one MoSA layer.
 *
 * Expert-choice top-k over a whole sequence is not causal: whether token t is among a head's top
 * k depends on tokens after t. Decoding therefore uses a causal stand-in: each MoSA head has a
 * score threshold per sequence, calibrated on the prefill as the lowest score the head selected
 * there (so it admits about 1/sparsity of the tokens when later scores look like the prefill's).
 * A new token enters head h's cache when its router score clears the threshold; when the cache is
 * full it replaces the lowest-scored entry, and only if it scores higher. A token outside the
 * cache gets nothing from that head, as an unselected token does in the forward pass.
 */
export interface MosaCache {
  readonly config: MosaConfig
  readonly batch: number
  readonly maxLen: number
  /** Tokens each MoSA head can hold. */
  readonly capacity: number
  /** Tokens seen so far (the next token's position). */
  length: number
  /** Dense heads' keys and values [B, Hd, maxLen, D] (RoPE applied). */
  denseK?: Tensor
  denseV?: Tensor
  /** MoSA heads' cached keys and values [B, Hs, capacity, D] (RoPE at the original positions). */
  sparseK?: Tensor
  sparseV?: Tensor
  /** Router score of each cached token, float32 [B, Hs, capacity]; -Infinity marks an empty slot. */
  scores?: Tensor
  /** Original position of each cached token, int32 [B, Hs, capacity]. */
  positions?: Tensor
  /** Admission threshold per sequence and head, float32 [B, Hs] (set by prefill or by hand). */
  thresholds?: Tensor
}

export interface CacheOptions {
  batch: number
  maxLen: number
  /** Tokens per MoSA head (default floor(maxLen / sparsity), at least 1). */
  capacity?: number
  /** Thresholds per head ([Hs] numbers, used for every sequence); default: calibrated by prefill. */
  thresholds?: number[]
  /** Where the cache lives (default: the active backend); x must be on the same backend. */
  backend?: Backend
}

/** An empty cache for up to maxLen tokens. */
export function createCache(config: MosaConfig, opts: CacheOptions): MosaCache {
  const c = resolveConfig(config)
  const B = opts?.batch
  const L = opts?.maxLen
  if (!Number.isInteger(B) || B < 1)
    throw new ArgumentError(`createCache: argument 'batch' expected an integer >= 1, got ${B}`)
  if (!Number.isInteger(L) || L < 1)
    throw new ArgumentError(`createCache: argument 'maxLen' expected an integer >= 1, got ${L}`)
  const capacity = opts.capacity ?? selectedTokens(L, c.sparsity)
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > L) {
    throw new ArgumentError(
      `createCache: argument 'capacity' expected an integer in [1, ${L}], got ${capacity}`,
    )
  }
  const D = c.headDim
  const cache: MosaCache = { config: structuredClone(config), batch: B, maxLen: L, capacity, length: 0 }
  const dtype = c.dtype
  const backend = opts.backend
  if (c.denseHeads > 0) {
    cache.denseK = zeros([B, c.denseHeads, L, D], { dtype, backend })
    cache.denseV = zeros([B, c.denseHeads, L, D], { dtype, backend })
  }
  if (c.sparseHeads > 0) {
    const Hs = c.sparseHeads
    cache.sparseK = zeros([B, Hs, capacity, D], { dtype, backend })
    cache.sparseV = zeros([B, Hs, capacity, D], { dtype, backend })
    cache.scores = full([B, Hs, capacity], Number.NEGATIVE_INFINITY, { dtype: 'float32', backend })
    cache.positions = zeros([B, Hs, capacity], { dtype: 'int32', backend })
    if (opts.thresholds) {
      if (
        opts.thresholds.length !== Hs ||
        opts.thresholds.some((t) => typeof t !== 'number' || Number.isNaN(t))
      ) {
        disposeCache(cache)
        throw new ArgumentError(
          `createCache: argument 'thresholds' expected ${Hs} numbers (one per MoSA head), got ${JSON.stringify(opts.thresholds)}`,
        )
      }
      cache.thresholds = tidy(() =>
        add(
          zeros([B, Hs], { dtype: 'float32', backend }),
          tensor(opts.thresholds!, [Hs], { dtype: 'float32', backend }),
        ),
      )
    }
  }
  return cache
}

/** Frees every tensor of a cache. */
export function disposeCache(cache: MosaCache): void {
  for (const key of [
    'denseK',
    'denseV',
    'sparseK',
    'sparseV',
    'scores',
    'positions',
    'thresholds',
  ] as const) {
    cache[key]?.dispose()
    cache[key] = undefined
  }
}

/** Replaces cache fields with new tensors, freeing the old ones. */
function swap(
  cache: MosaCache,
  next: Partial<
    Record<'denseK' | 'denseV' | 'sparseK' | 'sparseV' | 'scores' | 'positions' | 'thresholds', Tensor>
  >,
): void {
  for (const [key, t] of Object.entries(next) as [keyof typeof next, Tensor][]) {
    cache[key]?.dispose()
    cache[key] = t
  }
}

function headsOf(x: Tensor, w: Tensor, heads: number): Tensor {
  // [B, T, C] x [H*D, C]^T -> [B, H, T, D]
  const [B, T] = x.shape
  return transpose(reshape(linear(x, w), [B, T, heads, w.shape[0] / heads]), [0, 2, 1, 3])
}

/** Writes [B, H, n, D] rows into slots 0..n-1 of a [B, H, S, D] buffer (the rest zeros). */
function padSlots(rows: Tensor, slots: number): Tensor {
  const [B, H, n, D] = rows.shape
  if (n === slots) return rows
  return concat([rows, zeros([B, H, slots - n, D], { dtype: rows.dtype, backend: rows.backend })], 2)
}

/**
 * Runs the full forward over x [B, P, dModel] (the prompt; the cache must be empty), returns its
 * output and fills the cache: dense heads keep every token, each MoSA head keeps the tokens it
 * selected (the top `capacity` of them by score when it selected more), and the thresholds not
 * given to createCache are calibrated to the lowest score each head selected.
 */
export function prefill(
  params: MosaParams,
  cache: MosaCache,
  x: Tensor,
  opts: { path?: MosaPath } = {},
): Tensor {
  const c = resolveConfig(checkParams(params, 'mosa.prefill', cache?.config))
  checkInput(c, params, x, 'mosa.prefill')
  checkCache(c, cache, x.shape[0], 'mosa.prefill')
  const P = x.shape[1]
  if (cache.length !== 0)
    throw new ArgumentError(`mosa.prefill: the cache must be empty, it holds ${cache.length} tokens`)
  if (P > cache.maxLen)
    throw new ArgumentError(`mosa.prefill: prompt length ${P} exceeds the cache's maxLen ${cache.maxLen}`)
  const r = forwardWithRouting(params, x, { ...opts, config: cache.config })
  const next = tidy(() => {
    const out: Parameters<typeof swap>[1] = {}
    if (c.denseHeads > 0) {
      const pos = arange(0, P, 1, { backend: x.backend })
      let k = headsOf(x, params.dense!.k, c.denseHeads)
      if (c.ropeBase > 0) k = rope(k, pos, { base: c.ropeBase })
      out.denseK = padSlots(k, cache.maxLen)
      out.denseV = padSlots(headsOf(x, params.dense!.v, c.denseHeads), cache.maxLen)
    }
    if (c.sparseHeads > 0) {
      let indices = r.indices!
      let scores = r.scores!
      const thresholds = cache.thresholds ?? min(scores, 2)
      if (indices.shape[2] > cache.capacity) {
        // Keep the best `capacity` of the selected tokens, still in position order.
        const best = topk(scores, cache.capacity).indices
        const order = topk(best, cache.capacity, { largest: false }).values
        indices = takeAlongAxis(indices, order, 2)
        scores = takeAlongAxis(scores, order, 2)
      }
      const { k, v } = sparseKeysValues(c, params, x, indices)
      out.sparseK = padSlots(k, cache.capacity)
      out.sparseV = padSlots(v, cache.capacity)
      const n = indices.shape[2]
      const [B, Hs] = indices.shape
      const s32 = scores.dtype === 'float32' ? scores : castF32(scores)
      const rest = [B, Hs, cache.capacity - n]
      const be = x.backend
      out.scores =
        n === cache.capacity
          ? add(s32, 0)
          : concat([s32, full(rest, Number.NEGATIVE_INFINITY, { dtype: 'float32', backend: be })], 2)
      out.positions =
        n === cache.capacity
          ? add(indices, 0)
          : concat([indices, zeros(rest, { dtype: 'int32', backend: be })], 2)
      if (!cache.thresholds)
        out.thresholds = thresholds.dtype === 'float32' ? thresholds : castF32(thresholds)
    }
    return out
  })
  r.indices?.dispose()
  r.scores?.dispose()
  swap(cache, next)
  cache.length = P
  return r.y
}

function castF32(t: Tensor): Tensor {
  return cast(t, 'float32')
}

/** Keys (RoPE at their positions) and values of the selected rows, [B, Hs, n, D]. */
function sparseKeysValues(
  c: ResolvedConfig,
  params: MosaParams,
  x: Tensor,
  indices: Tensor,
): { k: Tensor; v: Tensor } {
  const [B, T, C] = x.shape
  const Hs = c.sparseHeads
  const xs = gather(reshape(x, [B * T, C]), flatRowIndices(indices, T), 0)
  let k = matmul(xs, perHeadIn(params.sparse!.k, Hs), { transposeB: true })
  const v = matmul(xs, perHeadIn(params.sparse!.v, Hs), { transposeB: true })
  if (c.ropeBase > 0) k = rope(k, indices, { base: c.ropeBase })
  return { k, v }
}

function checkCache(c: ResolvedConfig, cache: MosaCache, B: number, op: string): void {
  if (!cache || typeof cache !== 'object' || typeof cache.length !== 'number') {
    throw new ArgumentError(
      `${op}: argument 'cache' expected a MosaCache from createCache, got ${String(cache)}`,
    )
  }
  if (cache.batch !== B)
    throw new ShapeError(`${op}: argument 'x' has batch ${B}, the cache was made for batch ${cache.batch}`)
  const cc = resolveConfig(cache.config)
  if (
    cc.dModel !== c.dModel ||
    cc.headDim !== c.headDim ||
    cc.denseHeads !== c.denseHeads ||
    cc.sparseHeads !== c.sparseHeads
  ) {
    throw new ArgumentError(
      `${op}: argument 'cache' was made for a different config (${JSON.stringify(cache.config)})`,
    )
  }
}

export interface DecodeResult {
  /** Output for the new token, [B, 1, dModel]. */
  y: Tensor
  /** Whether each MoSA head admitted the token, bool [B, Hs] (undefined without MoSA heads). */
  admitted?: Tensor
}

/** One decode step (see MosaCache for the admission rule); the cache is updated in place. */
export function decodeWithInfo(params: MosaParams, cache: MosaCache, xt: Tensor): DecodeResult {
  const c = resolveConfig(checkParams(params, 'mosa.decode', cache?.config))
  const x = xt?.rank === 2 ? reshape(xt, [xt.shape[0], 1, xt.shape[1]]) : xt
  try {
    checkInput(c, params, x, 'mosa.decode')
    if (x.shape[1] !== 1)
      throw new ShapeError(
        `mosa.decode: argument 'xt' expected shape [B, ${c.dModel}] or [B, 1, ${c.dModel}], got ${fmtShape(x.shape)}`,
      )
    checkCache(c, cache, x.shape[0], 'mosa.decode')
    const t = cache.length
    if (t >= cache.maxLen)
      throw new ArgumentError(`mosa.decode: the cache is full (maxLen ${cache.maxLen} tokens)`)
    if (c.sparseHeads > 0 && !cache.thresholds) {
      throw new ArgumentError(
        'mosa.decode: the cache has no thresholds: run prefill first or pass createCache({ thresholds })',
      )
    }
    const B = x.shape[0]
    const D = c.headDim
    const result = tidy(() => {
      const next: Parameters<typeof swap>[1] = {}
      let y: Tensor | undefined
      let admitted: Tensor | undefined
      const backend = x.backend
      const pos = full([1], t, { dtype: 'int32', backend })
      const slots = (n: number) => arange(0, n, 1, { backend })
      const roped = (h: Tensor) => (c.ropeBase > 0 ? rope(h, pos, { base: c.ropeBase }) : h)
      if (c.denseHeads > 0) {
        const w = params.dense!
        const Hd = c.denseHeads
        const slot = reshape(equal(slots(cache.maxLen), t), [1, 1, cache.maxLen, 1])
        next.denseK = where(slot, roped(headsOf(x, w.k, Hd)), cache.denseK!)
        next.denseV = where(slot, headsOf(x, w.v, Hd), cache.denseV!)
        const o = attention(roped(headsOf(x, w.q, Hd)), next.denseK, next.denseV, {
          causal: true,
          qPositions: pos,
          kPositions: slots(cache.maxLen),
        })
        y = linear(reshape(transpose(o, [0, 2, 1, 3]), [B, 1, Hd * D]), w.o)
      }
      if (c.sparseHeads > 0) {
        const w = params.sparse!
        const Hs = c.sparseHeads
        const cap = cache.capacity
        const r = sigmoid(reshape(linear(x, params.router!), [B, Hs])) // [B, Hs]
        const r32 = r.dtype === 'float32' ? r : castF32(r)
        const lowest = min(cache.scores!, 2)
        const slot = argmin(cache.scores!, 2) // empty slots (-inf) first, then the lowest score
        admitted = logicalAnd(greaterEqual(r32, cache.thresholds!), greater(r32, lowest))
        const write = logicalAnd(equal(slots(cap), expandDims(slot, 2)), expandDims(admitted, 2)) // [B, Hs, cap]
        const write4 = expandDims(write, 3)
        next.sparseK = where(write4, roped(headsOf(x, w.k, Hs)), cache.sparseK!)
        next.sparseV = where(write4, headsOf(x, w.v, Hs), cache.sparseV!)
        next.scores = where(write, expandDims(r32, 2), cache.scores!)
        next.positions = where(write, t, cache.positions!)
        const o = attention(roped(headsOf(x, w.q, Hs)), next.sparseK, next.sparseV, {
          causal: true,
          qPositions: pos,
          kPositions: next.positions,
          keep: greater(next.scores, Number.NEGATIVE_INFINITY),
        })
        // Unadmitted tokens get nothing from the head; admitted rows are scaled by their score.
        const gate = mul(r, castLike(admitted, r))
        const scaled = mul(o, reshape(gate, [B, Hs, 1, 1]))
        const ys = linear(reshape(transpose(scaled, [0, 2, 1, 3]), [B, 1, Hs * D]), w.o)
        y = y ? add(y, ys) : ys
      }
      return { y: y!, admitted, next }
    })
    swap(cache, result.next)
    cache.length = t + 1
    return { y: result.y, admitted: result.admitted }
  } finally {
    if (x !== xt) x.dispose()
  }
}

function castLike(b: Tensor, like: Tensor): Tensor {
  return cast(b, like.dtype)
}

/** One decode step: y [B, 1, dModel] for xt [B, dModel] or [B, 1, dModel]; the cache is updated. */
export function decode(params: MosaParams, cache: MosaCache, xt: Tensor): Tensor {
  const r = decodeWithInfo(params, cache, xt)
  r.admitted?.dispose()
  return r.y
}
