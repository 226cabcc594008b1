import {
  add,
  arange,
  attentionWithLse,
  type Backend,
  cast,
  dispose,
  exp,
  fmtShape,
  greater,
  greaterEqual,
  less,
  logicalAnd,
  matmul,
  minimum,
  mul,
  reshape,
  ShapeError,
  stopGradient,
  sub,
  type Tensor,
  tidy,
  where,
} from '@attnkit/core'
import { assertShapeArg } from '../validate.js'
import { coreWindow, type KeepRuleConfig } from './keep-rule.js'

/**
 * Causal LTE sparse attention for training: the hard keep decision (r > threshold) in the
 * forward, the straight-through gradient to the scores in the backward.
 *
 * The estimator: every non-structural causal pair (i, j) (neither sink nor window) is weighted
 * by a mask m_ij whose value is hard_j in {0, 1} and whose gradient w.r.t. r_j is 1; sinks and
 * the window have m_ij = 1. With p_ij = m_ij e_ij / sum_j' m_ij' e_ij', the output is exactly
 * softmax attention over the kept keys, and dLoss/dr_j = sum_i dLoss/dm_ij: the gradient the
 * loss would have if the mask were continuous at its hard value, so evicted keys still learn
 * whether keeping them would have helped. That derivative is
 *
 *   dLoss/dm_ij = P_ij (dO_i . (v_j - o_i)),  P_ij = exp(l_ij - lse_i),
 *
 * with lse_i the log-sum-exp over query i's kept keys (for an evicted key P_ij is the weight it
 * would get relative to the kept ones; exponents are capped at EXPONENT_CAP so a key with a
 * much larger logit cannot overflow, understating its gradient).
 *
 * So the output is core's fused attention with the keep mask (values, and gradients to q, k, v)
 * plus a carrier that is zero in value and whose only gradient is the one above, into r:
 * f_i = sum_j M_ij P_ij r_j (v_j - o_i) over the non-structural causal pairs M, with P, v, o
 * held constant; out = o + (f - stopGradient(f)). The carrier costs two [T, T] matmuls and a
 * few elementwise passes forward and two matmuls backward, instead of differentiating a
 * dozen [T, T] elementwise ops. It is computed in float32 (float64 for float64 inputs) so the
 * capped exponents cannot overflow 16-bit types.
 *
 * q [B, Hq, T, D], k [B, Hk, T, D], v [B, Hk, T, Dv], r [B, Hk, T] -> [B, Hq, T, Dv].
 * Memory is O(T^2) per head: this path is for training lengths, not long-context inference.
 */
export function steSparseAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  r: Tensor,
  rule: KeepRuleConfig,
  scale = 1 / Math.sqrt(q.shape[3]),
): Tensor {
  const op = 'steSparseAttention'
  const [B, Hq, T, D] = q.shape
  const Hk = k.shape[1]
  assertShapeArg(op, 'k', k, [B, null, T, D], ['B', 'Hk', 'T', 'D'])
  assertShapeArg(op, 'v', v, [B, Hk, T, null], ['B', 'Hk', 'T', 'Dv'])
  assertShapeArg(op, 'r', r, [B, Hk, T], ['B', 'Hk', 'T'])
  if (!Number.isInteger(Hq / Hk))
    throw new ShapeError(
      `${op}: argument 'q' needs a multiple of k's ${Hk} heads, got shape ${fmtShape(q.shape)}`,
    )
  return tidy(() => {
    const { out, lse } = attentionWithLse(q, k, v, {
      causal: true,
      window: coreWindow(rule.window),
      sinks: rule.sinks,
      keep: greater(r, rule.threshold),
      scale,
    })
    return add(out, cast(scoreGradientCarrier(q, k, v, r, out, lse, rule, scale), out.dtype))
  })
}

/** Exponent cap of the evicted keys' weights relative to the kept ones (e^30 ~ 1e13). */
const EXPONENT_CAP = 30

/** f - stopGradient(f) (see steSparseAttention): zero, carrying the estimator's gradient into r. */
function scoreGradientCarrier(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  r: Tensor,
  o: Tensor,
  lse: Tensor,
  rule: KeepRuleConfig,
  scale: number,
): Tensor {
  const [B, Hq, T, D] = q.shape
  const Hk = k.shape[1]
  const G = Hq / Hk
  const Dv = v.shape[3]
  const dtype = q.dtype === 'float64' ? 'float64' : 'float32'
  const constant = (t: Tensor, shape: number[]) => reshape(cast(stopGradient(t), dtype), shape)
  // The [B, Hk, G, T, T] intermediates are the large ones: each is freed as soon as it is used.
  const logits = matmul(mul(constant(q, [B, Hk, G, T, D]), scale), constant(k, [B, Hk, 1, T, D]), {
    transposeB: true,
  })
  const shifted = sub(logits, constant(lse, [B, Hk, G, T, 1]))
  logits.dispose()
  const capped = minimum(shifted, EXPONENT_CAP)
  shifted.dispose()
  const weight = exp(capped)
  capped.dispose()
  const pairs = nonStructuralPairs(T, rule, q.backend)
  const masked = where(pairs, weight, 0)
  dispose([weight, pairs])
  const r5 = reshape(cast(r, dtype), [B, Hk, 1, T, 1])
  const f = sub(
    matmul(masked, mul(r5, constant(v, [B, Hk, 1, T, Dv]))),
    mul(constant(o, [B, Hk, G, T, Dv]), matmul(masked, r5)),
  )
  return reshape(sub(f, stopGradient(f)), [B, Hq, T, Dv])
}

/** Bool [T, T]: query i, key j with s <= j < i - w (causal, neither sink nor window). */
function nonStructuralPairs(T: number, rule: KeepRuleConfig, backend: Backend): Tensor {
  return tidy(() => {
    const i = reshape(arange(0, T, 1, { dtype: 'int32', backend }), [T, 1])
    const j = reshape(arange(0, T, 1, { dtype: 'int32', backend }), [1, T])
    return logicalAnd(greaterEqual(j, rule.sinks), less(j, sub(i, rule.window)))
  })
}
