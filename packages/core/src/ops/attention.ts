import { ENGINE } from '../engine.js'
import { argumentError, fmtShape, ShapeError } from '../errors.js'
import type { AttentionAttrs } from '../kernel-contract.js'
import { registerGradient } from '../registry.js'
import type { Tensor } from '../tensor.js'
import { broadcastTo, stopGradient } from './reduce.js'
import { defaultPositions, positionsFor } from './rope.js'
import { reshape } from './shape-ops.js'
import { assertDType, assertFloat, assertInt, assertSameDType, assertTensor } from './validate.js'

export interface AttentionOptions {
  /** Multiplies q.k (default 1/sqrt(D)). */
  scale?: number
  /** Key j is visible to query i only when kPos[j] <= qPos[i]. */
  causal?: boolean
  /**
   * Query positions, int32 [Tq], [B, Tq] or [B, Hq, Tq]. Default: Tk - Tq + i, so the last query
   * lines up with the last key (prefill: 0..T-1; decode: the newest position).
   */
  qPositions?: Tensor
  /** Key positions, int32 [Tk], [B, Tk] or [B, Hk, Tk]. Default 0..Tk-1. */
  kPositions?: Tensor
  /** Sliding window: keys with |qPos - kPos| < window are selected. 0 = no window. */
  window?: number
  /** Keys with kPos < sinks are always selected (with a window or keep mask). */
  sinks?: number
  /** Per-key keep mask, bool [Tk], [B, Tk] or [B, Hk, Tk]: selected keys beyond window and sinks. */
  keep?: Tensor
}

/**
 * Fused scaled-dot-product attention with explicit positions; one primitive for dense, MoSA's
 * selected tokens and LTE's retained tokens.
 *
 * q [B, Hq, Tq, D], k [B, Hk, Tk, D], v [B, Hk, Tk, Dv], Hq a multiple of Hk (grouped-query).
 * A key is *selected* when no selector is given (window 0, no keep mask), or when it is in the
 * window, a sink, or kept; it is *visible* when selected and (if causal) not in the future.
 * Rows with no visible key give zeros. Returns [B, Hq, Tq, Dv].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const { out, lse } = attentionWithLse(q, k, v, opts)
  lse.dispose()
  return out
}

/**
 * attention() plus the log-sum-exp of each query's scores, [B, Hq, Tq] (float32; -Infinity
 * where no key is visible). The lse carries no gradient.
 */
export function attentionWithLse(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): { out: Tensor; lse: Tensor } {
  const op = 'attention'
  assertTensor(op, 'q', q)
  assertTensor(op, 'k', k)
  assertTensor(op, 'v', v)
  assertFloat(op, 'q', q)
  assertSameDType(op, 'q', q, 'k', k)
  assertSameDType(op, 'q', q, 'v', v)
  if (q.rank !== 4)
    throw new ShapeError(`${op}: argument 'q' expected shape [B, Hq, Tq, D], got ${fmtShape(q.shape)}`)
  const [B, Hq, Tq, D] = q.shape
  if (k.rank !== 4 || k.shape[0] !== B || k.shape[3] !== D) {
    throw new ShapeError(`${op}: argument 'k' expected shape [${B}, Hk, Tk, ${D}], got ${fmtShape(k.shape)}`)
  }
  const [, Hk, Tk] = k.shape
  if (Hq % Hk !== 0)
    throw new ShapeError(
      `${op}: query heads (${Hq}) must be a multiple of key/value heads (${Hk}); got k ${fmtShape(k.shape)}`,
    )
  if (v.rank !== 4 || v.shape[0] !== B || v.shape[1] !== Hk || v.shape[2] !== Tk) {
    throw new ShapeError(
      `${op}: argument 'v' expected shape [${B}, ${Hk}, ${Tk}, Dv], got ${fmtShape(v.shape)}`,
    )
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D)
  if (!Number.isFinite(scale)) throw argumentError(op, 'scale', 'a finite number', scale)
  const window = assertInt(op, 'window', opts.window ?? 0, 0)
  const sinks = assertInt(op, 'sinks', opts.sinks ?? 0, 0)
  const attrs: AttentionAttrs = { scale, causal: opts.causal ?? false, window, sinks }

  const owned: Tensor[] = []
  const qRaw = opts.qPositions ?? defaultPositions(Tq, q, Tk - Tq)
  const kRaw = opts.kPositions ?? defaultPositions(Tk, q)
  if (!opts.qPositions) owned.push(qRaw)
  if (!opts.kPositions) owned.push(kRaw)
  const qPos = positionsFor(op, 'qPositions', qRaw, B, Hq, Tq)
  const kPos = positionsFor(op, 'kPositions', kRaw, B, Hk, Tk)
  owned.push(qPos, kPos)
  let keep: Tensor | undefined
  if (opts.keep) {
    keep = keepMaskFor(op, opts.keep, B, Hk, Tk)
    owned.push(keep)
  }
  try {
    const [out, lseRaw] = ENGINE.runKernel(op, { q, k, v, qPos, kPos, keep }, attrs)
    const lse = stopGradient(lseRaw)
    lseRaw.dispose()
    return { out, lse }
  } finally {
    for (const t of owned) t.dispose()
  }
}

function keepMaskFor(op: string, keep: Tensor, B: number, H: number, T: number): Tensor {
  assertTensor(op, 'keep', keep)
  assertDType(op, 'keep', keep, 'bool')
  const s = keep.shape
  let as3: Tensor
  if (s.length === 1 && s[0] === T) as3 = reshape(keep, [1, 1, T])
  else if (s.length === 2 && (s[0] === B || s[0] === 1) && s[1] === T) as3 = reshape(keep, [s[0], 1, T])
  else if (s.length === 3 && (s[0] === B || s[0] === 1) && (s[1] === H || s[1] === 1) && s[2] === T)
    as3 = reshape(keep, s)
  else
    throw new ShapeError(
      `${op}: argument 'keep' expected shape [${T}], [${B}, ${T}] or [${B}, ${H}, ${T}] (bool), got ${fmtShape(s)}`,
    )
  if (as3.shape[0] === B && as3.shape[1] === H) return as3
  // bool has no arithmetic broadcast; go through uint32 and back.
  const asInt = ENGINE.runKernel('cast', { x: as3 }, { dtype: 'int32' })[0]
  const wide = broadcastTo(asInt, [B, H, T])
  const out = ENGINE.runKernel('cast', { x: wide }, { dtype: 'bool' })[0]
  for (const t of [as3, asInt, wide]) t.dispose()
  return out
}

registerGradient<AttentionAttrs>({
  kernelName: 'attention',
  saveInputs: ['q', 'k', 'v', 'qPos', 'kPos', 'keep'],
  saveOutputs: true,
  nonDifferentiableInputs: ['qPos', 'kPos', 'keep'],
  gradFunc: ({ dys, inputs, outputs, attrs }) => {
    const [dq, dk, dv] = ENGINE.runKernel(
      'attentionBackward',
      {
        q: inputs.q as Tensor,
        k: inputs.k as Tensor,
        v: inputs.v as Tensor,
        out: outputs[0],
        lse: outputs[1],
        dout: dys[0],
        qPos: inputs.qPos as Tensor,
        kPos: inputs.kPos as Tensor,
        keep: inputs.keep as Tensor | undefined,
      },
      attrs,
    )
    return { q: dq, k: dk, v: dv }
  },
})
