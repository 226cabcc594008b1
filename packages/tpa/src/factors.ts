import {
  affine,
  broadcastTo,
  concat,
  linear,
  matmul,
  positionsFor,
  reshape,
  rope,
  runKernel,
  ShapeError,
  type Tensor,
  tensor,
  transpose,
} from '@attnkit/core'
import type { FactorSpec, ResolvedRope, ResolvedTpaConfig } from './config.js'
import type { TpaParams } from './params.js'

/** One of Q, K, V as factors of T tokens: A [B, T, h, R] (contextual only) and B [B, T, R, d_h]. */
export interface Factor {
  spec: FactorSpec
  a: Tensor | null
  b: Tensor
}

export interface Factors {
  q: Factor
  k: Factor
  v: Factor
}

/**
 * Positions for a B factor [B, T, R, d], which rope() reads as [B, H=T, T'=R, D]: the token's
 * position repeated over the R rank rows, shaped [1 | B, T, R].
 */
function factorPositions(b: Tensor, positions: Tensor | number): Tensor {
  const [B, T, R] = b.shape
  if (typeof positions === 'number') {
    const values = new Int32Array(T * R)
    for (let t = 0; t < T; t++) values.fill(positions + t, t * R, (t + 1) * R)
    return tensor(values, [1, T, R], { dtype: 'int32', backend: b.backend })
  }
  const p = positions.shape
  let lead: number
  if (p.length === 1 && p[0] === T) lead = 1
  else if (p.length === 2 && (p[0] === B || p[0] === 1) && p[1] === T) lead = p[0]
  else
    throw new ShapeError(
      `tpa: argument 'positions' expected shape [${T}] or [${B}, ${T}] (int32), got [${p.join(', ')}]`,
    )
  const col = reshape(positions, [lead, T, 1])
  const out = broadcastTo(col, [lead, T, R])
  col.dispose()
  return out
}

/**
 * RoPE on a B factor [B, T, R, d_h]: every rank row of token t turns by t's angles. RoPE acts
 * on the head dimension only, so it commutes with the outer product with A.
 */
export function ropeFactor(b: Tensor, positions: Tensor | number, cfg: ResolvedRope): Tensor {
  const pos = factorPositions(b, positions)
  try {
    if (cfg.direction === 1) return rope(b, pos, { base: cfg.base, rotaryDim: cfg.rotaryDim })
    const [B, T, R] = b.shape
    const full = positionsFor('rope', 'positions', pos, B, T, R)
    const [y] = runKernel(
      'rope',
      { x: b, positions: full },
      { base: cfg.base, rotaryDim: cfg.rotaryDim, inverse: true },
    )
    full.dispose()
    return y
  } finally {
    pos.dispose()
  }
}

function project(
  params: TpaParams,
  which: 'q' | 'k' | 'v',
  spec: FactorSpec,
  c: ResolvedTpaConfig,
  x: Tensor,
): Factor {
  const [B, T] = x.shape
  if (spec.kind === 'contextual') {
    const a2 = linear(x, params[`W_A_${which}`])
    const b2 = linear(x, params[`W_B_${which}`])
    const a = reshape(a2, [B, T, c.heads, spec.rank])
    const b = reshape(b2, [B, T, spec.rank, c.headDim])
    a2.dispose()
    b2.dispose()
    return { spec, a, b }
  }
  const b2 = linear(x, params[`W_${which}`])
  const b = reshape(b2, [B, T, spec.rank, c.headDim])
  b2.dispose()
  return { spec, a: null, b }
}

/**
 * The factors of x [B, T, dModel], with RoPE already applied to the B factors of Q and K at
 * `positions` (a start position, or int32 [T] / [B, T]).
 */
export function computeFactors(
  params: TpaParams,
  c: ResolvedTpaConfig,
  x: Tensor,
  positions: Tensor | number,
  opts: { rope?: boolean } = {},
): Factors {
  const out: Partial<Factors> = {}
  for (const which of ['q', 'k', 'v'] as const) {
    const f = project(params, which, c[which], c, x)
    if (which !== 'v' && c.rope && opts.rope !== false) {
      const rotated = ropeFactor(f.b, positions, c.rope)
      f.b.dispose()
      f.b = rotated
    }
    out[which] = f
  }
  return out as Factors
}

export function disposeFactors(f: Factors): void {
  for (const x of [f.q, f.k, f.v]) {
    x.a?.dispose()
    x.b.dispose()
  }
}

/**
 * Heads for attention, [B, H, T, d_h]: contextual factors give (1/R) A^T B per token (H = h);
 * fixed factors give B itself (H = G), which attention's grouped-query broadcast turns into
 * B[group(head)], exactly what the constant one-hot A would build.
 */
export function materializeHeads(f: Factor): Tensor {
  let btHd: Tensor
  if (f.a) {
    const prod = matmul(f.a, f.b)
    btHd = affine(prod, 1 / f.spec.rank)
    prod.dispose()
  } else btHd = f.b
  const out = transpose(btHd, [0, 2, 1, 3])
  if (btHd !== f.b) btHd.dispose()
  return out
}

/** Cache records [B, T, record] = [A_K | B_K | A_V | B_V] (see recordLayout). */
export function toRecords(f: Factors): Tensor {
  const parts: Tensor[] = []
  for (const x of [f.k, f.v]) {
    const [B, T] = x.b.shape
    if (x.a) parts.push(reshape(x.a, [B, T, -1]))
    parts.push(reshape(x.b, [B, T, -1]))
  }
  const out = concat(parts, 2)
  for (const p of parts) p.dispose()
  return out
}
