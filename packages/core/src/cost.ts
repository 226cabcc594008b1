/**
 * Cost model: floating-point operations and the fewest bytes an op must move through memory
 * (each input read once, each output written once). The bench divides these by measured time
 * to report achieved FLOP/s and bytes/s, and by the device's peaks for the fractions.
 */
import { byteSize, type DType } from './dtype.js'

export interface Cost {
  flops: number
  bytes: number
}

export const ZERO_COST: Cost = { flops: 0, bytes: 0 }

export function addCosts(...costs: Cost[]): Cost {
  return costs.reduce((a, c) => ({ flops: a.flops + c.flops, bytes: a.bytes + c.bytes }), {
    flops: 0,
    bytes: 0,
  })
}

export function scaleCost(c: Cost, k: number): Cost {
  return { flops: c.flops * k, bytes: c.bytes * k }
}

/** Elementwise op over n outputs with `inputs` operands, `flopsPerElement` each. */
export function elementwiseCost(n: number, dtype: DType, inputs = 2, flopsPerElement = 1): Cost {
  return { flops: n * flopsPerElement, bytes: n * (inputs + 1) * byteSize(dtype) }
}

/** [batch] x [M, K] x [K, N]. */
export function matmulCost(M: number, N: number, K: number, dtype: DType, batch = 1): Cost {
  return { flops: 2 * batch * M * N * K, bytes: batch * (M * K + K * N + M * N) * byteSize(dtype) }
}

export function softmaxCost(rows: number, cols: number, dtype: DType): Cost {
  return { flops: 5 * rows * cols, bytes: 2 * rows * cols * byteSize(dtype) }
}

export function normCost(rows: number, cols: number, dtype: DType): Cost {
  return { flops: 5 * rows * cols, bytes: (2 * rows * cols + cols) * byteSize(dtype) }
}

export interface AttentionShape {
  batch: number
  qHeads: number
  kvHeads: number
  qLen: number
  kLen: number
  headDim: number
  valueDim?: number
  causal?: boolean
  /** Sliding window (0 = none). */
  window?: number
  sinks?: number
  /** Extra visible keys per query beyond window and sinks (e.g. LTE's retained tokens). */
  extraKeysPerQuery?: number
}

/**
 * Query-key pairs that are visible, with queries at positions kLen - qLen + i and keys at
 * 0..kLen-1 (the default alignment of the attention op).
 */
export function visiblePairs(
  s: Pick<AttentionShape, 'qLen' | 'kLen' | 'causal' | 'window' | 'sinks' | 'extraKeysPerQuery'>,
): number {
  const window = s.window ?? 0
  const sinks = s.sinks ?? 0
  let total = 0
  for (let i = 0; i < s.qLen; i++) {
    const qp = s.kLen - s.qLen + i
    const reachable = s.causal ? Math.min(s.kLen, qp + 1) : s.kLen
    if (window <= 0 && !s.extraKeysPerQuery) {
      total += reachable
      continue
    }
    const inWindow = window > 0 ? Math.min(reachable, window) : 0
    const sinkCount = Math.min(sinks, Math.max(0, reachable - inWindow))
    total += Math.min(reachable, inWindow + sinkCount + (s.extraKeysPerQuery ?? 0))
  }
  return total
}

/** Fused attention forward: QK^T and PV over the visible pairs; Q, K, V, O moved once. */
export function attentionCost(s: AttentionShape, dtype: DType): Cost {
  const dv = s.valueDim ?? s.headDim
  const pairs = visiblePairs(s) * s.batch * s.qHeads
  const elem = byteSize(dtype)
  const bytes =
    elem * (s.batch * s.qHeads * s.qLen * (s.headDim + dv) + s.batch * s.kvHeads * s.kLen * (s.headDim + dv))
  return { flops: 2 * pairs * (s.headDim + dv), bytes }
}

/** Attention backward: five pair-sized products (S, dP, dV, dQ, dK) against two forward. */
export function attentionBackwardCost(s: AttentionShape, dtype: DType): Cost {
  const f = attentionCost(s, dtype)
  return { flops: 2.5 * f.flops, bytes: 2 * f.bytes }
}

/** Gated delta rule over a sequence (chunked form), per the WY algorithm's products. */
export function gatedDeltaRuleCost(
  s: { batch: number; heads: number; seqLen: number; keyDim: number; valueDim: number; chunkSize?: number },
  dtype: DType,
): Cost {
  const C = s.chunkSize ?? 64
  const chunks = Math.ceil(s.seqLen / C)
  const { keyDim: dk, valueDim: dv } = s
  // per chunk: KK^T, T solve, T(bV), T(bK)S, QK^T, (QK)W, QS, K^T W
  const perChunk =
    2 *
    (C * C * dk +
      (C * C * C) / 3 +
      C * C * dv +
      C * C * dk +
      C * dk * dv +
      C * C * dk +
      C * C * dv +
      2 * C * dk * dv +
      C * dk * dv)
  const flops = s.batch * s.heads * chunks * perChunk
  const bytes = s.batch * s.heads * s.seqLen * (2 * dk + 2 * dv + 2) * byteSize(dtype)
  return { flops, bytes }
}

/** Bytes of a KV cache holding `tokens` tokens of `valuesPerToken` elements each. */
export function kvCacheBytes(tokens: number, valuesPerToken: number, dtype: DType, layers = 1): number {
  return tokens * valuesPerToken * byteSize(dtype) * layers
}
