import {
  add,
  concat,
  conv1d,
  exp,
  hasKernel,
  linear,
  mul,
  neg,
  type Rng,
  reshape,
  rmsNorm,
  sigmoid,
  silu,
  slice,
  softplus,
  type Tensor,
  tensor,
  tidy,
  transpose,
  zeros,
} from '@attnkit/core'
import { headsFirst, l2Normalize, splitHeads } from '../nn/functional.js'
import { constInit, convBound, normalInit, type ParamDType, uniformInit } from '../nn/init.js'
import { assertIntArg, assertNumberArg, assertShapeArg } from '../validate.js'
import { gatedDelta, type KernelChoice } from './delta-rule.js'

/** A Gated DeltaNet layer (Yang et al. 2024, the flash-linear-attention layout). */
export interface GdnConfig {
  dModel: number
  numHeads: number
  /** Key/query head dimension Dk. */
  headKDim: number
  /** Value head dimension Dv. */
  headVDim: number
  /** Short causal depthwise convolution on q, k, v (kernel size; 4 in the paper). */
  convSize: number
  /** Chunk length of the chunkwise form (64). */
  chunkSize: number
  /** Epsilon of the gated output RMSNorm. */
  normEps: number
}

export const GDN_DEFAULTS = { convSize: 4, chunkSize: 64, normEps: 1e-6 } as const

/**
 * Parameters, keyed exactly as PyTorch's flash-linear-attention `GatedDeltaNet` module names
 * them, so a state dict loads unchanged (linear weights [out, in], conv weights [C, 1, K]).
 */
export type GdnParams = {
  q_proj: { weight: Tensor }
  k_proj: { weight: Tensor }
  v_proj: { weight: Tensor }
  /** Decay input: g = -exp(A_log) * softplus(a_proj x + dt_bias). */
  a_proj: { weight: Tensor }
  /** Write strength: beta = sigmoid(b_proj x). */
  b_proj: { weight: Tensor }
  A_log: Tensor
  dt_bias: Tensor
  q_conv1d: { weight: Tensor }
  k_conv1d: { weight: Tensor }
  v_conv1d: { weight: Tensor }
  /** Output gate: o = rmsNorm(o) * silu(g_proj x). */
  g_proj: { weight: Tensor }
  o_norm: { weight: Tensor }
  o_proj: { weight: Tensor }
}

/** What a GDN layer carries between decode steps: constant size. */
export interface GdnState {
  /** Delta-rule state [B, H, Dk, Dv] (float32; float64 for float64 params). */
  S: Tensor
  /** The last convSize - 1 projected inputs of each short convolution, [B, K - 1, channels]. */
  convQ: Tensor
  convK: Tensor
  convV: Tensor
}

export function validateGdnConfig(c: GdnConfig, where = 'gdn'): void {
  for (const k of ['dModel', 'numHeads', 'headKDim', 'headVDim', 'convSize', 'chunkSize'] as const)
    assertIntArg(where, k, c[k], 1)
  assertNumberArg(where, 'normEps', c.normEps, 0)
}

export function initGdn(c: GdnConfig, rng: Rng, dtype: ParamDType = 'float32', outStd = 0.02): GdnParams {
  validateGdnConfig(c)
  const { dModel: D, numHeads: H, headKDim: Dk, headVDim: Dv, convSize: K } = c
  const lin = (out: number, inp: number, std = 0.02) => ({ weight: normalInit(rng, [out, inp], std, dtype) })
  const conv = (ch: number) => ({ weight: uniformInit(rng, [ch, 1, K], convBound(1, K), dtype) })
  // As flash-linear-attention: A ~ U(0, 16), dt ~ logU(1e-3, 1e-1) stored through softplus^-1.
  const a = rng.uniformArray(H)
  const u = rng.uniformArray(H)
  const aLog = new Float64Array(H)
  const dtBias = new Float64Array(H)
  for (let h = 0; h < H; h++) {
    aLog[h] = Math.log(Math.max(16 * a[h], 1e-4))
    const dt = Math.max(Math.exp(Math.log(1e-3) + u[h] * (Math.log(1e-1) - Math.log(1e-3))), 1e-4)
    dtBias[h] = dt + Math.log(-Math.expm1(-dt))
  }
  const fromHost = (values: Float64Array) => tensor(values, [values.length], { dtype })
  return {
    q_proj: lin(H * Dk, D),
    k_proj: lin(H * Dk, D),
    v_proj: lin(H * Dv, D),
    a_proj: lin(H, D),
    b_proj: lin(H, D),
    A_log: fromHost(aLog),
    dt_bias: fromHost(dtBias),
    q_conv1d: conv(H * Dk),
    k_conv1d: conv(H * Dk),
    v_conv1d: conv(H * Dv),
    g_proj: lin(H * Dv, D),
    o_norm: { weight: constInit([Dv], 1, dtype) },
    o_proj: lin(D, H * Dv, outStd),
  }
}

export interface GdnForwardOptions {
  /** Carried state (decode after a prefill, or a long sequence in pieces). */
  state?: GdnState
  /** Also return the state after the last token (for decoding after this prefill). */
  returnState?: boolean
  kernel?: KernelChoice
  /** 'chunked' (default) or 'recurrent' (token by token; the reference). */
  mode?: 'chunked' | 'recurrent'
}

/** x [B, T, dModel] -> y [B, T, dModel] (and the final state when asked). */
export function gdnForward(
  c: GdnConfig,
  p: GdnParams,
  x: Tensor,
  opts: GdnForwardOptions = {},
): { y: Tensor; state?: GdnState } {
  assertShapeArg('gdnForward', 'x', x, [null, null, c.dModel], ['B', 'T', 'dModel'])
  const [B, T] = x.shape
  const K = c.convSize
  let state: GdnState | undefined
  const y = tidy(() => {
    const qp = linear(x, p.q_proj.weight)
    const kp = linear(x, p.k_proj.weight)
    const vp = linear(x, p.v_proj.weight)
    // The short convolutions see the carried tail of earlier inputs (zeros at the start).
    const conv = (proj: Tensor, w: Tensor, tail: Tensor | undefined) => {
      const padded = tail ? concat([tail, proj], 1) : proj
      const out = conv1d(padded, w, undefined, {
        padding: tail ? 'valid' : 'causal',
        groups: proj.shape[2],
      })
      return silu(out)
    }
    const q = l2Normalize(splitHeads(conv(qp, p.q_conv1d.weight, opts.state?.convQ), c.numHeads))
    const k = l2Normalize(splitHeads(conv(kp, p.k_conv1d.weight, opts.state?.convK), c.numHeads))
    const v = splitHeads(conv(vp, p.v_conv1d.weight, opts.state?.convV), c.numHeads)
    const beta = headsFirst(sigmoid(linear(x, p.b_proj.weight)))
    const g = headsFirst(mul(neg(exp(p.A_log)), softplus(add(linear(x, p.a_proj.weight), p.dt_bias))))
    const { out, state: S } = gatedDelta(q, k, v, g, beta, {
      initialState: opts.state?.S,
      chunkSize: c.chunkSize,
      mode: opts.mode ?? 'chunked',
      kernel: opts.kernel,
    })
    // Gated RMSNorm per head over Dv, then the output projection.
    const o = transpose(out, [0, 2, 1, 3])
    const gate = reshape(linear(x, p.g_proj.weight), [B, T, c.numHeads, c.headVDim])
    const gated = mul(rmsNorm(o, p.o_norm.weight, c.normEps), silu(gate))
    const y = linear(reshape(gated, [B, T, c.numHeads * c.headVDim]), p.o_proj.weight)
    if (opts.returnState) {
      const tail = (proj: Tensor, prev: Tensor | undefined) => {
        const all = prev ? concat([prev, proj], 1) : proj
        const n = all.shape[1]
        if (n >= K - 1) return slice(all, [0, n - (K - 1), 0], [B, K - 1, all.shape[2]])
        return concat([zeros([B, K - 1 - n, all.shape[2]], all.dtype), all], 1)
      }
      state = {
        S,
        convQ: tail(qp, opts.state?.convQ),
        convK: tail(kp, opts.state?.convK),
        convV: tail(vp, opts.state?.convV),
      }
      return [y, state] as const
    }
    return [y] as const
  })
  return { y: y[0], state }
}

/** A zero decode state for `batch` sequences (the state dtype follows the params: float64 or float32). */
export function createGdnState(c: GdnConfig, batch: number, paramDType: ParamDType = 'float32'): GdnState {
  const sd = paramDType === 'float64' ? 'float64' : 'float32'
  const tail = (ch: number) => zeros([batch, c.convSize - 1, ch], paramDType)
  return {
    S: zeros([batch, c.numHeads, c.headKDim, c.headVDim], sd),
    convQ: tail(c.numHeads * c.headKDim),
    convK: tail(c.numHeads * c.headKDim),
    convV: tail(c.numHeads * c.headVDim),
  }
}

/** One decode step: xt [B, 1, dModel] -> y [B, 1, dModel]; `state` is replaced in place. */
export function gdnDecode(c: GdnConfig, p: GdnParams, state: GdnState, xt: Tensor): Tensor {
  assertShapeArg('gdnDecode', 'xt', xt, [state.S.shape[0], 1, c.dModel], ['B', '1', 'dModel'])
  // Core's recurrent kernel where the backend has it (one launch); else the fused chunkwise
  // programs, which for one token compute exactly the recurrent step.
  const mode = hasKernel('gatedDeltaRule', xt.backend.name) ? 'recurrent' : 'chunked'
  const { y, state: next } = gdnForward(c, p, xt, { state, returnState: true, mode })
  for (const k of ['S', 'convQ', 'convK', 'convV'] as const) {
    state[k].dispose()
    state[k] = next![k]
  }
  return y
}
