import {
  add,
  cast,
  div,
  exp,
  fmtShape,
  greater,
  logicalAnd,
  logicalOr,
  matmul,
  max,
  minimum,
  mul,
  reshape,
  ShapeError,
  stopGradient,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  where,
} from '@attnkit/core'
import { assertShapeArg } from '../validate.js'
import { isStructural, type KeepRuleConfig } from './keep-rule.js'

/**
 * Causal LTE sparse attention composed of core ops, for training: the hard keep decision
 * (r > threshold) in the forward, the straight-through gradient to the scores in the backward.
 *
 * Every query-key pair gets a mask m_ij: 1 for sinks and the window, and for the other causal
 * pairs ste_j = hard_j + (r_j - stopGradient(r_j)) (value hard_j in {0, 1}, gradient 1 w.r.t.
 * r_j). Attention weights are p_ij = m_ij e_ij / sum_j' m_ij' e_ij' with e_ij = exp(l_ij - l_max),
 * which in value is exactly softmax over the kept keys (core's keep-mask attention gives the
 * same numbers), while dLoss/dr_j = sum_i dLoss/dm_ij: the gradient the loss would have if the
 * mask were continuous at its hard value. Evicted keys therefore still learn whether keeping
 * them would have helped. l_max is the maximum over the kept keys; exponents are capped at 30
 * so evicted keys with much larger logits cannot overflow (their gradient is then understated).
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
  const G = Hq / Hk
  if (!Number.isInteger(G))
    throw new ShapeError(
      `${op}: argument 'q' needs a multiple of k's ${Hk} heads, got shape ${fmtShape(q.shape)}`,
    )
  const Dv = v.shape[3]
  const structural = new Uint8Array(T * T)
  const causal = new Uint8Array(T * T)
  for (let i = 0; i < T; i++) {
    for (let j = 0; j <= i; j++) {
      causal[i * T + j] = 1
      structural[i * T + j] = isStructural(i, j, rule) ? 1 : 0
    }
  }
  return tidy(() => {
    const structuralT = tensor(structural, [T, T], { dtype: 'bool', backend: q.backend })
    const causalT = tensor(causal, [T, T], { dtype: 'bool', backend: q.backend })
    const logits = mul(
      matmul(reshape(q, [B, Hk, G, T, D]), reshape(k, [B, Hk, 1, T, D]), { transposeB: true }),
      scale,
    )
    const hard = reshape(greater(r, rule.threshold), [B, Hk, 1, 1, T])
    const rb = reshape(r, [B, Hk, 1, 1, T])
    const ste = add(cast(hard, r.dtype), sub(rb, stopGradient(rb)))
    const mask = where(causalT, where(structuralT, 1, ste), 0)
    const visible = logicalAnd(causalT, logicalOr(structuralT, hard))
    const lmax = stopGradient(max(where(visible, logits, Number.NEGATIVE_INFINITY), -1, { keepDims: true }))
    const weights = mul(exp(minimum(sub(logits, lmax), 30)), mask)
    const probs = div(weights, sum(weights, -1, { keepDims: true }))
    return reshape(matmul(probs, reshape(v, [B, Hk, 1, T, Dv])), [B, Hq, T, Dv])
  })
}
