import {
  affine,
  linear,
  matmul,
  mul,
  reshape,
  ShapeError,
  slice,
  softmax,
  sum,
  type Tensor,
  transpose,
} from '@attnkit/core'
import type { TpaCache } from './cache.js'
import type { ResolvedTpaConfig } from './config.js'
import { computeFactors, disposeFactors, type Factor, materializeHeads, toRecords } from './factors.js'
import { assertInput, attendAndProject, attendFactors } from './forward.js'
import { assertImpl, type Impl, useFused } from './impl.js'
import { fusedDecodeUnsupported, fusedFactorAttention } from './kernels/fused.js'
import { DECODE_PARTIAL_KERNEL } from './kernels/names.js'
import { assertParams, configOf, type TpaParams } from './params.js'

export interface DecodeOptions {
  /** 'fused': the factor-space kernel (error if unavailable); 'portable': core ops; default auto. */
  impl?: Impl
}

/** The factors of records [B, T, record]: A [B, T, h, R] (null when fixed) and B [B, T, R, d_h]. */
export function splitRecords(
  records: Tensor,
  cache: TpaCache,
): { aK: Tensor | null; bK: Tensor; aV: Tensor | null; bV: Tensor } {
  const c = cache.config
  const [B, T] = records.shape
  const { layout } = cache
  const take = (seg: { offset: number; length: number }, shape: number[]) => {
    const flat = slice(records, [0, 0, seg.offset], [B, T, seg.length])
    const out = reshape(flat, shape)
    flat.dispose()
    return out
  }
  return {
    aK: layout.aK ? take(layout.aK, [B, T, c.heads, c.k.rank]) : null,
    bK: take(layout.bK, [B, T, c.k.rank, c.headDim]),
    aV: layout.aV ? take(layout.aV, [B, T, c.heads, c.v.rank]) : null,
    bV: take(layout.bV, [B, T, c.v.rank, c.headDim]),
  }
}

/**
 * Factor-space decode attention from core ops (the portable reference of the fused kernel):
 * scores s[i, j] = (1/R_K) sum_r A_K[j, i, r] (q_i . B_K[j, r]), softmax over j, then
 * o_i = (1/R_V) sum_{j, r} p_ij A_V[j, i, r] B_V[j, r, :]. K and V are never materialised;
 * fixed factors use the cache's constant A. q [B, h, d_h] -> [B, h, d_h].
 */
export function portableFactorAttention(q: Tensor, cache: TpaCache): Tensor {
  const c = cache.config
  const [B, H, D] = q.shape
  const records = cache.records()
  const f = splitRecords(records, cache)
  records.dispose()
  const T = f.bK.shape[1]
  const owned: Tensor[] = []
  const own = (t: Tensor) => {
    owned.push(t)
    return t
  }
  try {
    const q4 = own(reshape(q, [B, 1, H, D]))
    // [B, T, h, R_K]: every head's query against every rank row of B_K.
    const qb = own(matmul(q4, f.bK, { transposeB: true }))
    const aK = f.aK ?? cache.aKConst!
    const scores = own(sum(own(mul(qb, aK)), -1))
    const scaled = own(affine(scores, 1 / Math.sqrt(D) / c.k.rank))
    const p = own(softmax(own(transpose(scaled, [0, 2, 1])), -1))
    const pT = own(reshape(own(transpose(p, [0, 2, 1])), [B, T, H, 1]))
    const aV = f.aV ?? cache.aVConst!
    const w = own(mul(pT, aV))
    const wFlat = own(reshape(own(transpose(w, [0, 2, 1, 3])), [B, H, T * c.v.rank]))
    const bV = own(reshape(f.bV, [B, T * c.v.rank, D]))
    const o = own(matmul(wFlat, bV))
    return affine(o, 1 / c.v.rank)
  } finally {
    for (const t of owned) t.dispose()
    for (const t of [f.aK, f.bK, f.aV, f.bV]) t?.dispose()
  }
}

/** Decode attention for q [B, h, d_h] over everything in the cache: fused when available. */
export function factorAttention(q: Tensor, cache: TpaCache, opts: DecodeOptions = {}): Tensor {
  const impl = assertImpl(opts.impl, 'tpa.factorAttention')
  const c = cache.config
  const want = [cache.batch, c.heads, c.headDim]
  if (q.shape.length !== 3 || q.shape.some((d, i) => d !== want[i]))
    throw new ShapeError(
      `tpa.factorAttention: argument 'q' expected shape [${want.join(', ')}], got [${q.shape.join(', ')}]`,
    )
  if (cache.length === 0)
    throw new ShapeError('tpa.factorAttention: the cache is empty (append or prefill first)')
  const fused = useFused(DECODE_PARTIAL_KERNEL, cache.backend, impl, c.dtype, () =>
    fusedDecodeUnsupported(cache),
  )
  return fused ? fusedFactorAttention(q, cache) : portableFactorAttention(q, cache)
}

function queryHeads(f: Factor, B: number, c: ResolvedTpaConfig): Tensor {
  const heads = materializeHeads(f)
  const q = reshape(heads, [B, c.heads, c.headDim])
  heads.dispose()
  return q
}

function checkCache(params: TpaParams, cache: TpaCache, op: string): ResolvedTpaConfig {
  if (!cache || typeof cache !== 'object' || !('layout' in cache))
    throw new ShapeError(`${op}: argument 'cache' expected a cache from createCache(), got ${String(cache)}`)
  const c = cache.config
  const own = configOf(params)
  if (
    own &&
    (own.variant !== c.variant ||
      own.heads !== c.heads ||
      own.headDim !== c.headDim ||
      own.dModel !== c.dModel)
  )
    throw new ShapeError(
      `${op}: the cache was made for variant '${c.variant}' (h=${c.heads}, d_h=${c.headDim}, dModel=${c.dModel}) but params for '${own.variant}' (h=${own.heads}, d_h=${own.headDim}, dModel=${own.dModel})`,
    )
  assertParams(c, params, op)
  return c
}

/**
 * One decode step: xt [B, dModel] (or [B, 1, dModel]) at position cache.length. Appends the
 * token's factors to the cache (which owns them), attends over the whole cache in factor space
 * and returns the layer output shaped like xt (yours to dispose).
 */
export function decode(params: TpaParams, cache: TpaCache, xt: Tensor, opts: DecodeOptions = {}): Tensor {
  const op = 'tpa.decode'
  const c = checkCache(params, cache, op)
  const rank = xt?.shape?.length === 3 ? 3 : 2
  assertInput(c, xt, op, rank)
  const B = xt.shape[0]
  if (B !== cache.batch || (rank === 3 && xt.shape[1] !== 1))
    throw new ShapeError(
      `${op}: argument 'xt' expected shape [${cache.batch}, ${c.dModel}] or [${cache.batch}, 1, ${c.dModel}], got [${xt.shape.join(', ')}]`,
    )
  const x3 = reshape(xt, [B, 1, c.dModel])
  const f = computeFactors(params, c, x3, cache.length)
  x3.dispose()
  let o: Tensor
  try {
    const records = toRecords(f)
    try {
      cache.append(records)
    } finally {
      records.dispose()
    }
    const q = queryHeads(f.q, B, c)
    try {
      o = factorAttention(q, cache, opts)
    } finally {
      q.dispose()
    }
  } finally {
    disposeFactors(f)
  }
  const o3 = reshape(o, [B, 1, c.heads * c.headDim])
  o.dispose()
  const y = linear(o3, params.c_proj)
  o3.dispose()
  if (rank === 3) return y
  const y2 = reshape(y, [B, c.dModel])
  y.dispose()
  return y2
}

/**
 * Runs x [B, T, dModel] at positions cache.length.. cache.length + T - 1, appending its factors
 * to the cache; attention covers the cached tokens and x (causal). Returns [B, T, dModel].
 */
export function prefill(params: TpaParams, cache: TpaCache, x: Tensor): Tensor {
  const op = 'tpa.prefill'
  const c = checkCache(params, cache, op)
  assertInput(c, x, op)
  if (x.shape[0] !== cache.batch)
    throw new ShapeError(
      `${op}: argument 'x' expected batch ${cache.batch} (the cache's), got [${x.shape.join(', ')}]`,
    )
  const start = cache.length
  const f = computeFactors(params, c, x, start)
  try {
    const records = toRecords(f)
    try {
      cache.append(records)
    } finally {
      records.dispose()
    }
    if (start === 0) return attendFactors(params, c, f, { causal: true })
    return attendWithCache(params, c, f, cache)
  } finally {
    disposeFactors(f)
  }
}

function attendWithCache(params: TpaParams, c: ResolvedTpaConfig, f: { q: Factor }, cache: TpaCache): Tensor {
  const records = cache.records()
  const parts = splitRecords(records, cache)
  records.dispose()
  const k = materializeHeads({ spec: c.k, a: parts.aK, b: parts.bK })
  const v = materializeHeads({ spec: c.v, a: parts.aV, b: parts.bV })
  const q = materializeHeads(f.q)
  for (const t of [parts.aK, parts.bK, parts.aV, parts.bV]) t?.dispose()
  try {
    // Default positions line the last query up with the last key: queries sit at start..start+T-1.
    return attendAndProject(params, c, q, k, v, { causal: true })
  } finally {
    q.dispose()
    k.dispose()
    v.dispose()
  }
}
