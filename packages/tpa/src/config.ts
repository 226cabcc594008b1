import { ArgumentError, type DType, isFloat } from '@attnkit/core'

/**
 * - `tpa`: Q, K and V are all contextual tensor products (the T6 model).
 * - `tpa-kvonly`: Q from a plain projection, K and V contextual tensor products.
 * - `mha`, `gqa`, `mqa`: the non-contextual special cases. K and V are rank-G products whose
 *   head factor A is a constant (G times the one-hot of each head's group), so B is exactly the
 *   usual per-group key/value projection; G = heads (MHA), kvHeads (GQA) or 1 (MQA).
 */
export type TpaVariant = 'tpa' | 'tpa-kvonly' | 'mha' | 'mqa' | 'gqa'

export const VARIANTS: readonly TpaVariant[] = ['tpa', 'tpa-kvonly', 'mha', 'mqa', 'gqa']

export interface RopeConfig {
  /** Frequency base (default 10000). */
  base?: number
  /** Leading features of the head dimension that rotate (even; default headDim). */
  rotaryDim?: number
  /**
   * 1 (default): rotate-half as GPT-NeoX / Llama / core's `rope` write it
   * (y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin). -1: the opposite angle, as the T6 reference
   * code (modded-nanogpt's `Rotary`) writes it (y1 = x1 cos + x2 sin, y2 = -x1 sin + x2 cos).
   */
  direction?: 1 | -1
}

export interface TpaConfig {
  /** Model width: x is [batch, seq, dModel]. */
  dModel: number
  /** Query heads h. */
  heads: number
  /** Head dimension d_h. */
  headDim: number
  /** Default 'tpa'. */
  variant?: TpaVariant
  /** R_Q (variant 'tpa' only; default 6). */
  qRank?: number
  /** R_K ('tpa' and 'tpa-kvonly'; default 2). */
  kRank?: number
  /** R_V ('tpa' and 'tpa-kvonly'; default 2). */
  vRank?: number
  /** Key/value heads G (variant 'gqa' only; a divisor of heads). */
  kvHeads?: number
  /** Rotary embedding on the B factors of Q and K (default on, base 10000); false turns it off. */
  rope?: RopeConfig | false
  /** Parameter and cache dtype (default float32). */
  dtype?: DType
}

/**
 * How one of Q, K, V is built from a token x:
 * - contextual: A = W_A x viewed [h, R], B = W_B x viewed [R, d_h], value (1/R) A^T B;
 * - fixed: B = W x viewed [G, d_h] and A the constant G * onehot(group(head)), so head i gets
 *   B[group(i)] with group(i) = floor(i / (h / G)).
 */
export interface FactorSpec {
  kind: 'contextual' | 'fixed'
  /** R for contextual factors, G for fixed ones. */
  rank: number
}

export interface ResolvedRope {
  base: number
  rotaryDim: number
  direction: 1 | -1
}

export interface ResolvedTpaConfig {
  variant: TpaVariant
  dModel: number
  heads: number
  headDim: number
  q: FactorSpec
  k: FactorSpec
  v: FactorSpec
  rope: ResolvedRope | null
  dtype: DType
}

/** Where each factor sits in one cached token's record (elements). Absent A: a fixed factor. */
export interface RecordLayout {
  aK: { offset: number; length: number } | null
  bK: { offset: number; length: number }
  aV: { offset: number; length: number } | null
  bV: { offset: number; length: number }
  /** Elements per token per layer. */
  size: number
}

function positiveInt(arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ArgumentError(`tpa config: '${arg}' expected a positive integer, got ${String(v)}`)
  return v
}

function notFor(variant: TpaVariant, config: TpaConfig, ...args: (keyof TpaConfig)[]): void {
  for (const a of args) {
    if (config[a] !== undefined)
      throw new ArgumentError(
        `tpa config: '${a}' does not apply to variant '${variant}' (it fixes that rank itself), got ${String(config[a])}`,
      )
  }
}

/** Validates a config and fills in the defaults; every function of the package starts here. */
export function resolveConfig(config: TpaConfig | ResolvedTpaConfig): ResolvedTpaConfig {
  if (isResolved(config)) return config
  if (config === null || typeof config !== 'object')
    throw new ArgumentError(`tpa config: expected an object, got ${String(config)}`)
  const dModel = positiveInt('dModel', config.dModel)
  const heads = positiveInt('heads', config.heads)
  const headDim = positiveInt('headDim', config.headDim)
  const variant = config.variant ?? 'tpa'
  if (!VARIANTS.includes(variant))
    throw new ArgumentError(
      `tpa config: 'variant' expected one of ${VARIANTS.join(', ')}, got ${String(variant)}`,
    )
  const dtype = config.dtype ?? 'float32'
  if (!isFloat(dtype)) throw new ArgumentError(`tpa config: 'dtype' expected a float dtype, got ${dtype}`)

  const fixedQ: FactorSpec = { kind: 'fixed', rank: heads }
  let q: FactorSpec
  let k: FactorSpec
  let v: FactorSpec
  switch (variant) {
    case 'tpa':
      notFor(variant, config, 'kvHeads')
      q = { kind: 'contextual', rank: positiveInt('qRank', config.qRank ?? 6) }
      k = { kind: 'contextual', rank: positiveInt('kRank', config.kRank ?? 2) }
      v = { kind: 'contextual', rank: positiveInt('vRank', config.vRank ?? 2) }
      break
    case 'tpa-kvonly':
      notFor(variant, config, 'kvHeads', 'qRank')
      q = fixedQ
      k = { kind: 'contextual', rank: positiveInt('kRank', config.kRank ?? 2) }
      v = { kind: 'contextual', rank: positiveInt('vRank', config.vRank ?? 2) }
      break
    case 'mha':
    case 'mqa':
    case 'gqa': {
      notFor(variant, config, 'qRank', 'kRank', 'vRank')
      if (variant !== 'gqa') notFor(variant, config, 'kvHeads')
      const groups =
        variant === 'mha' ? heads : variant === 'mqa' ? 1 : positiveInt('kvHeads', config.kvHeads)
      if (heads % groups !== 0)
        throw new ArgumentError(`tpa config: 'kvHeads' expected a divisor of heads (${heads}), got ${groups}`)
      q = fixedQ
      k = { kind: 'fixed', rank: groups }
      v = { kind: 'fixed', rank: groups }
      break
    }
  }

  let rope: ResolvedRope | null = null
  if (config.rope !== false) {
    const r = config.rope ?? {}
    const rotaryDim = r.rotaryDim ?? headDim
    if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim > headDim || rotaryDim % 2 !== 0)
      throw new ArgumentError(
        `tpa config: 'rope.rotaryDim' expected an even integer in [2, ${headDim}], got ${String(rotaryDim)}`,
      )
    const base = r.base ?? 10000
    if (!(typeof base === 'number' && base > 1))
      throw new ArgumentError(`tpa config: 'rope.base' expected a number > 1, got ${String(base)}`)
    const direction = r.direction ?? 1
    if (direction !== 1 && direction !== -1)
      throw new ArgumentError(`tpa config: 'rope.direction' expected 1 or -1, got ${String(direction)}`)
    rope = { base, rotaryDim, direction }
  }
  const resolved: ResolvedTpaConfig = { variant, dModel, heads, headDim, q, k, v, rope, dtype }
  RESOLVED.add(resolved)
  return resolved
}

const RESOLVED = new WeakSet<object>()

function isResolved(c: object): c is ResolvedTpaConfig {
  return RESOLVED.has(c)
}

/** Heads of the materialised K and V: h for contextual factors, G for fixed ones. */
export function kvHeadsOf(c: ResolvedTpaConfig): number {
  return c.k.kind === 'fixed' ? c.k.rank : c.heads
}

/** The cache record: [A_K | B_K (rotated) | A_V | B_V], each flattened row-major; fixed factors store no A. */
export function recordLayout(c: ResolvedTpaConfig): RecordLayout {
  let offset = 0
  const take = (length: number) => {
    const s = { offset, length }
    offset += length
    return s
  }
  const aK = c.k.kind === 'contextual' ? take(c.heads * c.k.rank) : null
  const bK = take(c.k.rank * c.headDim)
  const aV = c.v.kind === 'contextual' ? take(c.heads * c.v.rank) : null
  const bV = take(c.v.rank * c.headDim)
  return { aK, bK, aV, bV, size: offset }
}
