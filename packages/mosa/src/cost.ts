import {
  ArgumentError,
  addCosts,
  attentionBackwardCost,
  attentionCost,
  byteSize,
  type Cost,
  type DType,
  elementwiseCost,
  kvCacheBytes,
  matmulCost,
  scaleCost,
  ZERO_COST,
} from '@attnkit/core'
import { type MosaConfig, type ResolvedConfig, resolveConfig, selectedTokens } from './config.js'

export interface CostOptions {
  seqLen: number
  /** Default 1. */
  batch?: number
  /** Element type of activations and weights (default: the config's dtype). */
  dtype?: DType
  /** Tokens each MoSA head's decode cache holds (default k = seqLen / sparsity). */
  cacheCapacity?: number
}

export interface MosaCostBreakdown {
  /** Dense heads: Q/K/V projections, RoPE, causal attention, output projection. */
  dense: Cost
  /** Router logits, sigmoid and top-k selection of the MoSA heads. */
  routing: Cost
  /** MoSA heads' Q/K/V projections of the selected rows (with the row gather) and RoPE. */
  sparseProjections: Cost
  /** MoSA heads' attention among their k tokens, causal by position. */
  sparseAttention: Cost
  /** Score scaling, per-head output projection and the scatter-add back to T rows. */
  sparseOutput: Cost
}

export interface MosaCost extends Cost {
  /** Tokens per MoSA head. */
  k: number
  /** Forward plus backward (matmuls 3x, attention 1 + 2.5x, the rest 2x the forward). */
  trainingFlops: number
  breakdown: MosaCostBreakdown
  /** The forward cost of one MoSA head (routing included): O(k^2 + T). */
  perSparseHead: Cost
  /** Decode cache of a sequence of seqLen tokens (dense K/V + MoSA heads' capped caches). */
  kvCacheBytes: number
  /** kvCacheBytes / seqLen. */
  kvCacheBytesPerToken: number
}

interface Parts {
  dense: Cost
  denseTraining: number
  head: Cost
  headTraining: number
  headParts: Omit<MosaCostBreakdown, 'dense'>
}

function parts(c: ResolvedConfig, T: number, B: number, dtype: DType): Parts {
  const D = c.headDim
  const C = c.dModel
  const Hd = c.denseHeads
  const k = selectedTokens(T, c.sparsity)
  const rope = (n: number) => (c.ropeBase > 0 ? elementwiseCost(n, dtype, 1, 6) : ZERO_COST)
  let dense = ZERO_COST
  let denseTraining = 0
  if (Hd > 0) {
    const proj = addCosts(matmulCost(B * T, 3 * Hd * D, C, dtype), matmulCost(B * T, C, Hd * D, dtype))
    const shape = { batch: B, qHeads: Hd, kvHeads: Hd, qLen: T, kLen: T, headDim: D, causal: true }
    const attn = attentionCost(shape, dtype)
    const small = rope(2 * B * Hd * T * D)
    dense = addCosts(proj, attn, small)
    denseTraining = 3 * proj.flops + attn.flops + attentionBackwardCost(shape, dtype).flops + 2 * small.flops
  }
  // One MoSA head over the batch.
  const routing = addCosts(
    matmulCost(B * T, 1, C, dtype),
    { flops: B * T, bytes: B * T * byteSize(dtype) + B * k * 4 }, // top-k: a pass over the scores
    elementwiseCost(B * k, dtype, 1, 4),
  )
  const sparseProjections = addCosts(matmulCost(k, 3 * D, C, dtype, B), rope(2 * B * k * D))
  const shape = { batch: B, qHeads: 1, kvHeads: 1, qLen: k, kLen: k, headDim: D, causal: true }
  const sparseAttention = attentionCost(shape, dtype)
  const sparseOutput = addCosts(
    elementwiseCost(B * k * D, dtype),
    matmulCost(k, C, D, dtype, B),
    elementwiseCost(B * k * C, dtype), // scatter-add
  )
  const head = addCosts(routing, sparseProjections, sparseAttention, sparseOutput)
  const gemms = matmulCost(B * T, 1, C, dtype).flops + matmulCost(k, 3 * D, C, dtype, B).flops
  const gemmsOut = matmulCost(k, C, D, dtype, B).flops
  const attnTraining = sparseAttention.flops + attentionBackwardCost(shape, dtype).flops
  const headTraining =
    3 * (gemms + gemmsOut) + attnTraining + 2 * (head.flops - gemms - gemmsOut - sparseAttention.flops)
  return {
    dense,
    denseTraining,
    head,
    headTraining,
    headParts: { routing, sparseProjections, sparseAttention, sparseOutput },
  }
}

function options(op: string, opts: CostOptions): { T: number; B: number } {
  const T = opts?.seqLen
  const B = opts?.batch ?? 1
  if (!Number.isInteger(T) || T < 1)
    throw new ArgumentError(`${op}: argument 'seqLen' expected an integer >= 1, got ${T}`)
  if (!Number.isInteger(B) || B < 1)
    throw new ArgumentError(`${op}: argument 'batch' expected an integer >= 1, got ${B}`)
  return { T, B }
}

/**
 * FLOPs and bytes of the layer's forward pass over a sequence (each tensor read or written
 * once), the training estimate, and the bytes of its decode cache after seqLen tokens.
 */
export function cost(config: MosaConfig, opts: CostOptions): MosaCost {
  const c = resolveConfig(config)
  const { T, B } = options('mosa.cost', opts)
  const dtype = opts.dtype ?? c.dtype
  const p = parts(c, T, B, dtype)
  const Hs = c.sparseHeads
  const breakdown: MosaCostBreakdown = {
    dense: p.dense,
    routing: scaleCost(p.headParts.routing, Hs),
    sparseProjections: scaleCost(p.headParts.sparseProjections, Hs),
    sparseAttention: scaleCost(p.headParts.sparseAttention, Hs),
    sparseOutput: scaleCost(p.headParts.sparseOutput, Hs),
  }
  const merge = c.denseHeads > 0 && Hs > 0 ? elementwiseCost(B * T * c.dModel, dtype) : ZERO_COST
  const total = addCosts(...Object.values(breakdown), merge)
  const cacheBytes = decodeCacheBytes(config, { batch: B, maxLen: T, capacity: opts.cacheCapacity, dtype })
  return {
    ...total,
    k: selectedTokens(T, c.sparsity),
    trainingFlops: p.denseTraining + Hs * p.headTraining + 2 * merge.flops,
    breakdown,
    perSparseHead: p.head,
    kvCacheBytes: cacheBytes,
    kvCacheBytesPerToken: cacheBytes / T,
  }
}

/**
 * Bytes of the decode cache (createCache): dense heads keep K and V of every token; each MoSA
 * head keeps K and V of at most `capacity` tokens plus a float32 score and an int32 position each.
 */
export function decodeCacheBytes(
  config: MosaConfig,
  opts: { batch?: number; maxLen: number; capacity?: number; dtype?: DType },
): number {
  const c = resolveConfig(config)
  const B = opts.batch ?? 1
  const dtype = opts.dtype ?? c.dtype
  const capacity = opts.capacity ?? selectedTokens(opts.maxLen, c.sparsity)
  const dense = kvCacheBytes(B * opts.maxLen, 2 * c.denseHeads * c.headDim, dtype)
  const sparse =
    kvCacheBytes(B * capacity, 2 * c.sparseHeads * c.headDim, dtype) + B * c.sparseHeads * capacity * 8
  return dense + sparse
}

export interface MatchedHeadsOptions {
  dModel: number
  headDim: number
  /** Heads of the dense layer to match. */
  heads: number
  /** Dense heads the MoSA layer keeps (default 0). */
  denseHeads?: number
  sparsity: number
  seqLen: number
  /** 'forward' (default) matches forward FLOPs, 'training' forward + backward. */
  flops?: 'forward' | 'training'
  rope?: MosaConfig['rope']
}

/**
 * The paper's compute-matched setting: the number of MoSA heads (with `denseHeads` dense heads
 * kept) whose layer costs no more FLOPs than a dense layer of `heads` heads, from the cost model.
 */
export function computeMatchedHeads(opts: MatchedHeadsOptions): number {
  const keep = opts.denseHeads ?? 0
  if (!Number.isInteger(opts.heads) || opts.heads < 1)
    throw new ArgumentError(
      `computeMatchedHeads: argument 'heads' expected an integer >= 1, got ${opts.heads}`,
    )
  if (!Number.isInteger(keep) || keep < 0 || keep > opts.heads)
    throw new ArgumentError(
      `computeMatchedHeads: argument 'denseHeads' expected an integer in [0, ${opts.heads}], got ${keep}`,
    )
  const base = { dModel: opts.dModel, headDim: opts.headDim, sparsity: opts.sparsity, rope: opts.rope }
  const c = resolveConfig({ ...base, denseHeads: opts.heads, sparseHeads: 0 })
  const training = opts.flops === 'training'
  const full = parts(c, opts.seqLen, 1, 'float32')
  const kept = parts({ ...c, denseHeads: keep }, opts.seqLen, 1, 'float32')
  const budget = training ? full.denseTraining - kept.denseTraining : full.dense.flops - kept.dense.flops
  const perHead = training ? full.headTraining : full.head.flops
  return Math.max(0, Math.floor(budget / perHead))
}
