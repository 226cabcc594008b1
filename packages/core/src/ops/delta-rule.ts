import { ENGINE } from '../engine.js'
import { argumentError, fmtShape, ShapeError } from '../errors.js'
import type { DeltaRuleAttrs } from '../kernel-contract.js'
import { registerGradient } from '../registry.js'
import type { Tensor } from '../tensor.js'
import { assertFloat, assertInt, assertSameDType, assertShape, assertTensor } from './validate.js'

export interface DeltaRuleOptions {
  /** State carried in from earlier tokens, [B, H, Dk, Dv] (float32). Zeros when absent. */
  initialState?: Tensor
  /** Multiplies q (default 1/sqrt(Dk)). */
  scale?: number
  /** 'chunked' (WY form, for sequences) or 'recurrent' (step by step; decode and reference). */
  mode?: 'chunked' | 'recurrent'
  chunkSize?: number
}

/**
 * The gated delta rule (Gated DeltaNet, Yang et al. 2024). Per head, with state S [Dk, Dv]:
 *   S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T (scale q_t)
 * q, k [B, H, T, Dk] (normalise k to unit length for stability), v [B, H, T, Dv],
 * g [B, H, T] (log decay, <= 0), beta [B, H, T] in (0, 1).
 * Returns o [B, H, T, Dv] and the final state [B, H, Dk, Dv] (float32, float64 for float64).
 */
export function gatedDeltaRule(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: DeltaRuleOptions = {},
): { out: Tensor; state: Tensor } {
  const op = 'gatedDeltaRule'
  for (const [name, t] of Object.entries({ q, k, v, g, beta })) assertTensor(op, name, t)
  assertFloat(op, 'q', q)
  for (const [name, t] of Object.entries({ k, v, g, beta })) assertSameDType(op, 'q', q, name, t)
  if (q.rank !== 4)
    throw new ShapeError(`${op}: argument 'q' expected shape [B, H, T, Dk], got ${fmtShape(q.shape)}`)
  const [B, H, T, Dk] = q.shape
  assertShape(op, 'k', k, [B, H, T, Dk], ['B', 'H', 'T', 'Dk'])
  assertShape(op, 'v', v, [B, H, T, null], ['B', 'H', 'T', 'Dv'])
  const Dv = v.shape[3]
  assertShape(op, 'g', g, [B, H, T], ['B', 'H', 'T'])
  assertShape(op, 'beta', beta, [B, H, T], ['B', 'H', 'T'])
  const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
  if (opts.initialState) {
    assertTensor(op, 'initialState', opts.initialState)
    assertShape(op, 'initialState', opts.initialState, [B, H, Dk, Dv], ['B', 'H', 'Dk', 'Dv'])
    if (opts.initialState.dtype !== stateDType) {
      throw argumentError(op, 'initialState', `dtype ${stateDType}`, opts.initialState.dtype)
    }
  }
  const mode = opts.mode ?? 'chunked'
  if (mode !== 'chunked' && mode !== 'recurrent')
    throw argumentError(op, 'mode', "'chunked' | 'recurrent'", mode)
  const attrs: DeltaRuleAttrs = {
    scale: opts.scale ?? 1 / Math.sqrt(Dk),
    mode,
    chunkSize: assertInt(op, 'chunkSize', opts.chunkSize ?? 64, 1),
  }
  const [out, state] = ENGINE.runKernel(op, { q, k, v, g, beta, state: opts.initialState }, attrs)
  return { out, state }
}

registerGradient<DeltaRuleAttrs>({
  kernelName: 'gatedDeltaRule',
  saveInputs: ['q', 'k', 'v', 'g', 'beta', 'state'],
  gradFunc: ({ dys, inputs, attrs }) => {
    const [dq, dk, dv, dg, dbeta, dstate] = ENGINE.runKernel(
      'gatedDeltaRuleBackward',
      {
        q: inputs.q as Tensor,
        k: inputs.k as Tensor,
        v: inputs.v as Tensor,
        g: inputs.g as Tensor,
        beta: inputs.beta as Tensor,
        state: inputs.state as Tensor | undefined,
        dout: dys[0],
        dFinalState: dys[1],
      },
      attrs,
    )
    const hasState = inputs.state !== undefined
    if (!hasState) dstate.dispose()
    return { q: dq, k: dk, v: dv, g: dg, beta: dbeta, state: hasState ? dstate : undefined }
  },
})
