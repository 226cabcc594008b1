import { attention, linear, reshape, ShapeError, type Tensor, transpose } from '@attnkit/core'
import { type ResolvedTpaConfig, resolveConfig, type TpaConfig } from './config.js'
import { computeFactors, disposeFactors, type Factors, materializeHeads } from './factors.js'
import { assertParams, configOf, type TpaParams } from './params.js'

export interface ForwardOptions {
  /** Causal masking by position (default true). */
  causal?: boolean
  /** Token positions for RoPE and the causal mask: int32 [T] or [B, T] (default 0..T-1). */
  positions?: Tensor
  /** The layer's config; default: the one init() / loadParams() attached to params. */
  config?: TpaConfig | ResolvedTpaConfig
}

/** The config to run params with: opts.config, else the one attached to params. */
export function configFor(params: TpaParams, config: TpaConfig | ResolvedTpaConfig | undefined, op: string) {
  const c = config ?? configOf(params)
  if (!c)
    throw new ShapeError(
      `${op}: no config: pass opts.config, or params made by init() / loadParams() (which remember theirs)`,
    )
  return resolveConfig(c)
}

export function assertInput(c: ResolvedTpaConfig, x: Tensor, op: string, rank: 2 | 3 = 3): void {
  if (!x || typeof x !== 'object' || !('shape' in x))
    throw new ShapeError(`${op}: argument 'x' expected a tensor, got ${String(x)}`)
  const ok = x.shape.length === rank && x.shape[rank - 1] === c.dModel
  if (!ok) {
    const want = rank === 3 ? `[batch, seq, ${c.dModel}]` : `[batch, ${c.dModel}]`
    throw new ShapeError(`${op}: argument 'x' expected shape ${want}, got [${x.shape.join(', ')}]`)
  }
  if (x.dtype !== c.dtype)
    throw new ShapeError(`${op}: argument 'x' expected dtype ${c.dtype} (the config's), got ${x.dtype}`)
}

/** Attention over materialised heads, then the output projection: [B, T, dModel]. */
export function attendAndProject(
  params: TpaParams,
  c: ResolvedTpaConfig,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { causal: boolean; qPositions?: Tensor; kPositions?: Tensor },
): Tensor {
  const [B, , T] = q.shape
  const o = attention(q, k, v, opts)
  const oT = transpose(o, [0, 2, 1, 3])
  o.dispose()
  const flat = reshape(oT, [B, T, c.heads * c.headDim])
  oT.dispose()
  const y = linear(flat, params.c_proj)
  flat.dispose()
  return y
}

/**
 * The full layer over a sequence (training and prefill without a cache): x [B, T, dModel] ->
 * [B, T, dModel]. Differentiable with core's valueAndGrad.
 */
export function forward(params: TpaParams, x: Tensor, opts: ForwardOptions = {}): Tensor {
  const c = configFor(params, opts.config, 'tpa.forward')
  assertParams(c, params, 'tpa.forward')
  assertInput(c, x, 'tpa.forward')
  const factors = computeFactors(params, c, x, opts.positions ?? 0)
  try {
    return attendFactors(params, c, factors, {
      causal: opts.causal ?? true,
      qPositions: opts.positions,
      kPositions: opts.positions,
    })
  } finally {
    disposeFactors(factors)
  }
}

export function attendFactors(
  params: TpaParams,
  c: ResolvedTpaConfig,
  f: Factors,
  opts: { causal: boolean; qPositions?: Tensor; kPositions?: Tensor },
): Tensor {
  const q = materializeHeads(f.q)
  const k = materializeHeads(f.k)
  const v = materializeHeads(f.v)
  try {
    return attendAndProject(params, c, q, k, v, opts)
  } finally {
    q.dispose()
    k.dispose()
    v.dispose()
  }
}
