import { ArgumentError, type DType } from '@attnkit/core'

/** Rotary embedding of the heads' queries and keys, by each token's original position. */
export interface MosaRope {
  /** Frequency base (default 10000). Every feature of the head rotates (rotate-half layout). */
  base?: number
}

/**
 * A MoSA layer: `denseHeads` ordinary causal heads plus `sparseHeads` MoSA heads, each of which
 * routes the sequence through its own router and attends among the top `T / sparsity` tokens.
 */
export interface MosaConfig {
  /** Model width (input and output features). */
  dModel: number
  /** Features per head (queries, keys and values). */
  headDim: number
  /** Dense causal heads (may be 0). */
  denseHeads: number
  /** MoSA heads (may be 0). */
  sparseHeads: number
  /** Each MoSA head keeps k = max(1, floor(T / sparsity)) of the T tokens (sparsity >= 1). */
  sparsity: number
  /** RoPE on queries and keys (default on, base 10000); false turns it off. */
  rope?: boolean | MosaRope
  /** Parameter dtype for init (default float32). */
  dtype?: DType
}

export interface ResolvedConfig {
  dModel: number
  headDim: number
  denseHeads: number
  sparseHeads: number
  sparsity: number
  /** RoPE base, or 0 when RoPE is off. */
  ropeBase: number
  dtype: DType
}

function positiveInt(arg: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new ArgumentError(
      `mosa config: argument '${arg}' expected an integer >= ${min}, got ${JSON.stringify(v)}`,
    )
  }
  return v
}

/** Validates a config and fills in defaults; every error names the field and what it expected. */
export function resolveConfig(config: MosaConfig): ResolvedConfig {
  if (config === null || typeof config !== 'object') {
    throw new ArgumentError(`mosa config: expected an object, got ${String(config)}`)
  }
  const dModel = positiveInt('dModel', config.dModel, 1)
  const headDim = positiveInt('headDim', config.headDim, 2)
  if (headDim % 2 !== 0 && config.rope !== false) {
    throw new ArgumentError(
      `mosa config: argument 'headDim' expected an even number when RoPE is on, got ${headDim}`,
    )
  }
  const denseHeads = positiveInt('denseHeads', config.denseHeads, 0)
  const sparseHeads = positiveInt('sparseHeads', config.sparseHeads, 0)
  if (denseHeads + sparseHeads === 0) {
    throw new ArgumentError("mosa config: arguments 'denseHeads' + 'sparseHeads' expected >= 1, got 0")
  }
  const sparsity = config.sparsity
  if (typeof sparsity !== 'number' || !Number.isFinite(sparsity) || sparsity < 1) {
    throw new ArgumentError(
      `mosa config: argument 'sparsity' expected a number >= 1, got ${JSON.stringify(sparsity)}`,
    )
  }
  let ropeBase = 0
  if (config.rope !== false) {
    const base = typeof config.rope === 'object' ? (config.rope.base ?? 10000) : 10000
    if (typeof base !== 'number' || !(base > 1)) {
      throw new ArgumentError(`mosa config: argument 'rope.base' expected a number > 1, got ${String(base)}`)
    }
    ropeBase = base
  }
  const dtype = config.dtype ?? 'float32'
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(dtype)) {
    throw new ArgumentError(`mosa config: argument 'dtype' expected a floating dtype, got ${dtype}`)
  }
  return { dModel, headDim, denseHeads, sparseHeads, sparsity, ropeBase, dtype }
}

/** Tokens each MoSA head selects from a sequence of T: max(1, floor(T / sparsity)), at most T. */
export function selectedTokens(seqLen: number, sparsity: number): number {
  return Math.min(seqLen, Math.max(1, Math.floor(seqLen / sparsity)))
}
