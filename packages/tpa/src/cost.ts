import {
  ArgumentError,
  addCosts,
  attentionCost,
  byteSize,
  type Cost,
  type DType,
  elementwiseCost,
  kvCacheBytes,
  matmulCost,
} from '@attnkit/core'
import { kvHeadsOf, type ResolvedTpaConfig, recordLayout, resolveConfig, type TpaConfig } from './config.js'
import { paramSpecs } from './params.js'

export interface CostOptions {
  /** Sequence length (forward) and context length (decode). */
  seqLen: number
  batch?: number
  /** Default: the config's dtype. */
  dtype?: DType
  /** Forward causal masking (default true). */
  causal?: boolean
  /** Layers, for the KV-cache totals (default 1). */
  layers?: number
}

export interface KvCacheCost {
  /** Values per token per layer: TPA's (R_K + R_V)(h + d_h) (no A for fixed factors), MHA's 2 h d_h. */
  valuesPerToken: { tpa: number; mha: number }
  bytesPerToken: { tpa: number; mha: number }
  /** For seqLen tokens x batch x layers. */
  bytes: { tpa: number; mha: number }
  /** MHA bytes over TPA bytes. */
  ratio: number
}

export interface TpaCost {
  /** The whole layer over seqLen tokens: projections, factor products, RoPE, attention, output projection. */
  forward: Cost
  /** One decode step at context seqLen: projections, the query's factor product, factor-space attention, output projection. */
  decodeStep: Cost
  /** The factor-space attention of one decode step alone (the fused kernel's work: it reads the whole cache). */
  decodeAttention: Cost
  kvCache: KvCacheCost
}

function projectionCost(c: ResolvedTpaConfig, tokens: number, dtype: DType): Cost {
  return addCosts(...paramSpecs(c).map((s) => matmulCost(tokens, s.shape[0], s.shape[1], dtype)))
}

/** (1/R) A^T B per token for each contextual factor in `which`. */
function productCost(c: ResolvedTpaConfig, tokens: number, dtype: DType, which: ('q' | 'k' | 'v')[]): Cost {
  const parts = which
    .filter((w) => c[w].kind === 'contextual')
    .map((w) => matmulCost(c.heads, c.headDim, c[w].rank, dtype, tokens))
  return addCosts(...parts)
}

function ropeCost(c: ResolvedTpaConfig, tokens: number, dtype: DType): Cost {
  if (!c.rope) return { flops: 0, bytes: 0 }
  const n = tokens * (c.q.rank + c.k.rank) * c.headDim
  return elementwiseCost(n, dtype, 1, 3)
}

/** FLOPs and bytes of TPA for a config at a sequence / context length, and its KV-cache size against MHA's. */
export function cost(config: TpaConfig | ResolvedTpaConfig, opts: CostOptions): TpaCost {
  const c = resolveConfig(config)
  const L = opts?.seqLen
  if (!Number.isInteger(L) || L <= 0)
    throw new ArgumentError(`tpa.cost: 'seqLen' expected a positive integer, got ${String(L)}`)
  const B = opts.batch ?? 1
  if (!Number.isInteger(B) || B <= 0)
    throw new ArgumentError(`tpa.cost: 'batch' expected a positive integer, got ${String(B)}`)
  const layers = opts.layers ?? 1
  const dtype = opts.dtype ?? c.dtype
  const es = byteSize(dtype)
  const { heads: h, headDim: d } = c
  const rec = recordLayout(c).size

  const forward = addCosts(
    projectionCost(c, B * L, dtype),
    productCost(c, B * L, dtype, ['q', 'k', 'v']),
    ropeCost(c, B * L, dtype),
    attentionCost(
      {
        batch: B,
        qHeads: h,
        kvHeads: kvHeadsOf(c),
        qLen: L,
        kLen: L,
        headDim: d,
        causal: opts.causal ?? true,
      },
      dtype,
    ),
  )

  const RK = c.k.rank
  const RV = c.v.rank
  // q . B_K (R_K dots of d), times A_K, softmax, p times A_V, then against B_V.
  const attnFlops = B * L * h * (2 * RK * d + 2 * RK + 5 + 2 * RV + 2 * RV * d)
  const decodeAttention: Cost = { flops: attnFlops, bytes: B * (L * rec + 2 * h * d) * es }
  const decodeStep = addCosts(
    projectionCost(c, B, dtype),
    productCost(c, B, dtype, ['q']),
    ropeCost(c, B, dtype),
    decodeAttention,
  )

  const mhaValues = 2 * h * d
  const kvCache: KvCacheCost = {
    valuesPerToken: { tpa: rec, mha: mhaValues },
    bytesPerToken: { tpa: rec * es, mha: mhaValues * es },
    bytes: {
      tpa: kvCacheBytes(L * B, rec, dtype, layers),
      mha: kvCacheBytes(L * B, mhaValues, dtype, layers),
    },
    ratio: mhaValues / rec,
  }
  return { forward, decodeStep, decodeAttention, kvCache }
}
