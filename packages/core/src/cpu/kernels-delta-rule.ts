import { registerCoreKernel } from '../registry.js'
import type { CpuBackend } from './cpu-backend.js'

/** Views of one head's slices: q, k [T, Dk], v [T, Dv], g, beta [T]. */
interface Head {
  q: ArrayLike<number>
  k: ArrayLike<number>
  v: ArrayLike<number>
  g: ArrayLike<number>
  beta: ArrayLike<number>
  qo: number
  vo: number
  to: number
}

/** One recurrent step on S [Dk, Dv] in place; returns nothing, writes o_t (scaled q) into out. */
function recurrentStep(S: Float64Array, h: Head, t: number, Dk: number, Dv: number, u: Float64Array): void {
  const a = Math.exp(h.g[h.to + t])
  const bt = h.beta[h.to + t]
  const ko = h.qo + t * Dk
  const vo = h.vo + t * Dv
  u.fill(0)
  for (let i = 0; i < Dk; i++) {
    const ki = h.k[ko + i]
    for (let j = 0; j < Dv; j++) u[j] += ki * S[i * Dv + j]
  }
  for (let i = 0; i < Dk; i++) {
    const c = bt * h.k[ko + i]
    for (let j = 0; j < Dv; j++) S[i * Dv + j] = a * S[i * Dv + j] + c * (h.v[vo + j] - a * u[j])
  }
}

function readOut(
  S: Float64Array,
  h: Head,
  t: number,
  Dk: number,
  Dv: number,
  scale: number,
  out: Float64Array,
  oo: number,
): void {
  const qo = h.qo + t * Dk
  for (let j = 0; j < Dv; j++) {
    let s = 0
    for (let i = 0; i < Dk; i++) s += h.q[qo + i] * S[i * Dv + j]
    out[oo + j] = scale * s
  }
}

/**
 * One chunk in the WY / UT-transform form. With gamma the in-chunk cumulative log decay and
 * L[t][s] = beta_t exp(gamma_t - gamma_s) k_t.k_s (s < t), T = (I + L)^-1 gives
 *   W = T (beta V) - T (beta exp(gamma) K) S0,
 *   O = scale [exp(gamma) Q S0 + (M o Q K^T) W],  M[t][s] = exp(gamma_t - gamma_s) (s <= t),
 *   S1 = exp(gamma_n) S0 + (exp(gamma_n - gamma) K)^T W.
 */
function chunk(
  S: Float64Array,
  h: Head,
  t0: number,
  n: number,
  Dk: number,
  Dv: number,
  scale: number,
  out: Float64Array,
  outBase: number,
): void {
  const gamma = new Float64Array(n)
  let acc = 0
  for (let t = 0; t < n; t++) {
    acc += h.g[h.to + t0 + t]
    gamma[t] = acc
  }
  const beta = (t: number) => h.beta[h.to + t0 + t]
  const kAt = (t: number, i: number) => h.k[h.qo + (t0 + t) * Dk + i]
  const qAt = (t: number, i: number) => h.q[h.qo + (t0 + t) * Dk + i]
  const vAt = (t: number, j: number) => h.v[h.vo + (t0 + t) * Dv + j]
  const kk = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    for (let s = 0; s <= t; s++) {
      let d = 0
      for (let i = 0; i < Dk; i++) d += kAt(t, i) * kAt(s, i)
      kk[t * n + s] = d
    }
  }
  // T = (I + L)^-1 by forward substitution, row by row.
  const T = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    T[t * n + t] = 1
    for (let s = 0; s < t; s++) {
      let v = 0
      for (let r = s; r < t; r++) v -= beta(t) * Math.exp(gamma[t] - gamma[r]) * kk[t * n + r] * T[r * n + s]
      T[t * n + s] = v
    }
  }
  // RHS = beta (V - exp(gamma) K S0); W = T RHS (identical to U - Wk S0).
  const rhs = new Float64Array(n * Dv)
  for (let t = 0; t < n; t++) {
    const gt = Math.exp(gamma[t])
    for (let j = 0; j < Dv; j++) {
      let ks = 0
      for (let i = 0; i < Dk; i++) ks += kAt(t, i) * S[i * Dv + j]
      rhs[t * Dv + j] = beta(t) * (vAt(t, j) - gt * ks)
    }
  }
  const W = new Float64Array(n * Dv)
  for (let t = 0; t < n; t++) {
    for (let s = 0; s <= t; s++) {
      const c = T[t * n + s]
      if (c === 0) continue
      for (let j = 0; j < Dv; j++) W[t * Dv + j] += c * rhs[s * Dv + j]
    }
  }
  for (let t = 0; t < n; t++) {
    const gt = Math.exp(gamma[t])
    const oo = outBase + (t0 + t) * Dv
    for (let j = 0; j < Dv; j++) {
      let s0 = 0
      for (let i = 0; i < Dk; i++) s0 += qAt(t, i) * S[i * Dv + j]
      out[oo + j] = gt * s0
    }
    for (let s = 0; s <= t; s++) {
      let qk = 0
      for (let i = 0; i < Dk; i++) qk += qAt(t, i) * kAt(s, i)
      const c = Math.exp(gamma[t] - gamma[s]) * qk
      for (let j = 0; j < Dv; j++) out[oo + j] += c * W[s * Dv + j]
    }
    for (let j = 0; j < Dv; j++) out[oo + j] *= scale
  }
  const gn = gamma[n - 1]
  for (let i = 0; i < Dk * Dv; i++) S[i] *= Math.exp(gn)
  for (let s = 0; s < n; s++) {
    const c = Math.exp(gn - gamma[s])
    for (let i = 0; i < Dk; i++) {
      const ki = c * kAt(s, i)
      for (let j = 0; j < Dv; j++) S[i * Dv + j] += ki * W[s * Dv + j]
    }
  }
}

export function registerDeltaRuleKernels(): void {
  registerCoreKernel<'gatedDeltaRule', CpuBackend>('gatedDeltaRule', 'cpu', ({ inputs, attrs, backend }) => {
    const { q, k, v, g, beta, state } = inputs
    const [B, H, T, Dk] = q.shape
    const Dv = v.shape[3]
    const vq = backend.values(q)
    const vk = backend.values(k)
    const vv = backend.values(v)
    const vg = backend.values(g)
    const vb = backend.values(beta)
    const vs = state ? backend.values(state) : undefined
    const outAcc = new Float64Array(B * H * T * Dv)
    const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
    const finalState = backend.alloc(stateDType, B * H * Dk * Dv)
    const u = new Float64Array(Dv)
    for (let bh = 0; bh < B * H; bh++) {
      const h: Head = { q: vq, k: vk, v: vv, g: vg, beta: vb, qo: bh * T * Dk, vo: bh * T * Dv, to: bh * T }
      // q and k share a layout, so h.qo indexes both.
      const S = new Float64Array(Dk * Dv)
      if (vs) for (let i = 0; i < Dk * Dv; i++) S[i] = vs[bh * Dk * Dv + i]
      if (attrs.mode === 'recurrent') {
        for (let t = 0; t < T; t++) {
          recurrentStep(S, h, t, Dk, Dv, u)
          readOut(S, h, t, Dk, Dv, attrs.scale, outAcc, (bh * T + t) * Dv)
        }
      } else {
        for (let t0 = 0; t0 < T; t0 += attrs.chunkSize) {
          chunk(S, h, t0, Math.min(attrs.chunkSize, T - t0), Dk, Dv, attrs.scale, outAcc, bh * T * Dv)
        }
      }
      finalState.set(S, bh * Dk * Dv)
    }
    const out = backend.alloc(v.dtype, outAcc.length)
    out.set(outAcc)
    return [
      backend.output(out, [B, H, T, Dv], v.dtype),
      backend.output(finalState, [B, H, Dk, Dv], stateDType),
    ]
  })

  // Backpropagation through the recurrence (the function is the same in both modes), with the
  // state checkpointed every chunkSize steps and recomputed inside each chunk.
  registerCoreKernel<'gatedDeltaRuleBackward', CpuBackend>(
    'gatedDeltaRuleBackward',
    'cpu',
    ({ inputs, attrs, backend }) => {
      const { q, k, v, g, beta, state, dout, dFinalState } = inputs
      const [B, H, T, Dk] = q.shape
      const Dv = v.shape[3]
      const C = attrs.chunkSize
      const vq = backend.values(q)
      const vk = backend.values(k)
      const vv = backend.values(v)
      const vg = backend.values(g)
      const vb = backend.values(beta)
      const vs = state ? backend.values(state) : undefined
      const vdo = backend.values(dout)
      const vdS = dFinalState ? backend.values(dFinalState) : undefined
      const dq = new Float64Array(vq.length)
      const dk = new Float64Array(vk.length)
      const dv = new Float64Array(vv.length)
      const dg = new Float64Array(vg.length)
      const db = new Float64Array(vb.length)
      const dstate = new Float64Array(B * H * Dk * Dv)
      const u = new Float64Array(Dv)
      const du = new Float64Array(Dv)
      const dr = new Float64Array(Dv)
      const r = new Float64Array(Dv)
      for (let bh = 0; bh < B * H; bh++) {
        const h: Head = { q: vq, k: vk, v: vv, g: vg, beta: vb, qo: bh * T * Dk, vo: bh * T * Dv, to: bh * T }
        const nChunks = Math.ceil(T / C)
        const checkpoints: Float64Array[] = []
        const S = new Float64Array(Dk * Dv)
        if (vs) for (let i = 0; i < Dk * Dv; i++) S[i] = vs[bh * Dk * Dv + i]
        for (let c = 0; c < nChunks; c++) {
          checkpoints.push(S.slice())
          for (let t = c * C; t < Math.min(T, (c + 1) * C); t++) recurrentStep(S, h, t, Dk, Dv, u)
        }
        const dS = new Float64Array(Dk * Dv)
        if (vdS) for (let i = 0; i < Dk * Dv; i++) dS[i] = vdS[bh * Dk * Dv + i]
        for (let c = nChunks - 1; c >= 0; c--) {
          const t0 = c * C
          const n = Math.min(T, t0 + C) - t0
          // states[s] = S before step t0 + s; states[n] = S after the chunk.
          const states: Float64Array[] = [checkpoints[c]]
          for (let s = 0; s < n; s++) {
            const next = states[s].slice()
            recurrentStep(next, h, t0 + s, Dk, Dv, u)
            states.push(next)
          }
          for (let s = n - 1; s >= 0; s--) {
            const t = t0 + s
            const Sprev = states[s]
            const Snew = states[s + 1]
            const qo = h.qo + t * Dk
            const vo = h.vo + t * Dv
            const doo = (bh * T + t) * Dv
            // o = S_new^T (scale q)
            for (let i = 0; i < Dk; i++) {
              let acc = 0
              for (let j = 0; j < Dv; j++) {
                dS[i * Dv + j] += attrs.scale * vq[qo + i] * vdo[doo + j]
                acc += Snew[i * Dv + j] * vdo[doo + j]
              }
              dq[qo + i] += attrs.scale * acc
            }
            const a = Math.exp(vg[h.to + t])
            const bt = vb[h.to + t]
            u.fill(0)
            for (let i = 0; i < Dk; i++) for (let j = 0; j < Dv; j++) u[j] += vk[qo + i] * Sprev[i * Dv + j]
            for (let j = 0; j < Dv; j++) r[j] = vv[vo + j] - a * u[j]
            // S_new = a S_prev + beta k r^T
            dr.fill(0)
            let dbeta = 0
            let da = 0
            for (let i = 0; i < Dk; i++) {
              let dki = 0
              for (let j = 0; j < Dv; j++) {
                const d = dS[i * Dv + j]
                dr[j] += bt * vk[qo + i] * d
                dbeta += vk[qo + i] * d * r[j]
                dki += bt * d * r[j]
                da += d * Sprev[i * Dv + j]
              }
              dk[qo + i] += dki
            }
            for (let j = 0; j < Dv; j++) {
              dv[vo + j] += dr[j]
              da -= dr[j] * u[j]
              du[j] = -a * dr[j]
            }
            // u = S_prev^T k
            for (let i = 0; i < Dk; i++) {
              let dki = 0
              for (let j = 0; j < Dv; j++) {
                dki += Sprev[i * Dv + j] * du[j]
                dS[i * Dv + j] = a * dS[i * Dv + j] + vk[qo + i] * du[j]
              }
              dk[qo + i] += dki
            }
            db[h.to + t] += dbeta
            dg[h.to + t] += da * a
          }
        }
        dstate.set(dS, bh * Dk * Dv)
      }
      const wrap = (acc: Float64Array, shape: readonly number[], dtype = q.dtype) => {
        const o = backend.alloc(dtype, acc.length)
        o.set(acc)
        return backend.output(o, shape, dtype)
      }
      const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
      return [
        wrap(dq, q.shape),
        wrap(dk, k.shape),
        wrap(dv, v.shape),
        wrap(dg, g.shape),
        wrap(db, beta.shape),
        wrap(dstate, [B, H, Dk, Dv], stateDType),
      ]
    },
  )
}
