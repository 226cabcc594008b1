/**
 * The chunkwise-parallel gated delta rule, forward and backward, on one head in float64.
 *
 * This is the algorithm the WGSL and CUDA kernels implement (same quantities, same order), written
 * plainly so it can be checked against backpropagation through the recurrence at float64
 * precision. Conventions follow core's `gatedDeltaRule`: state S [Dk, Dv],
 *   S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T (scale q_t).
 *
 * Per chunk of n tokens with entry state S0 and gamma_t = g_0 + ... + g_t (in-chunk log decay):
 *   L[t][s] = beta_t exp(gamma_t - gamma_s) k_t.k_s (s < t),   Tm = (I + L)^-1   (UT transform)
 *   U  = Tm diag(beta) V,   Wk = Tm diag(beta exp(gamma)) K,   W = U - Wk S0
 *   O  = scale [diag(exp gamma) Q S0 + (M o Q K^T) W],   M[t][s] = exp(gamma_t - gamma_s) (s <= t)
 *   S1 = exp(gamma_last) S0 + (diag(exp(gamma_last - gamma)) K)^T W
 * The backward walks the chunks in reverse carrying dS (the gradient of the chunk's exit state)
 * and differentiates these formulas in closed form (see `chunkBackward`).
 */

/** One head's inputs: q, k [T, Dk], v [T, Dv], g, beta [T], as flat views with offsets. */
export interface HeadView {
  q: ArrayLike<number>
  k: ArrayLike<number>
  v: ArrayLike<number>
  g: ArrayLike<number>
  beta: ArrayLike<number>
  /** Offset of this head's q/k rows (they share a layout). */
  qk: number
  /** Offset of this head's v rows. */
  vo: number
  /** Offset of this head's g/beta entries. */
  go: number
  T: number
  Dk: number
  Dv: number
}

/** Quantities of one chunk that depend only on the chunk's inputs (not on the entry state). */
interface ChunkPrep {
  n: number
  gamma: Float64Array
  /** kk[t * n + s] = k_t . k_s for s <= t. */
  kk: Float64Array
  /** Tm = (I + L)^-1, lower triangular with a unit diagonal, [n, n]. */
  Tm: Float64Array
  /** U = Tm diag(beta) V, [n, Dv]. */
  U: Float64Array
  /** Wk = Tm diag(beta exp(gamma)) K, [n, Dk]. */
  Wk: Float64Array
}

function prepareChunk(h: HeadView, t0: number, n: number): ChunkPrep {
  const { Dk, Dv } = h
  const gamma = new Float64Array(n)
  let acc = 0
  for (let t = 0; t < n; t++) {
    acc += h.g[h.go + t0 + t]
    gamma[t] = acc
  }
  const kk = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    const kt = h.qk + (t0 + t) * Dk
    for (let s = 0; s <= t; s++) {
      const ks = h.qk + (t0 + s) * Dk
      let d = 0
      for (let i = 0; i < Dk; i++) d += h.k[kt + i] * h.k[ks + i]
      kk[t * n + s] = d
    }
  }
  // Forward substitution, row by row: Tm[t][s] = -sum_{s <= r < t} L[t][r] Tm[r][s].
  const Tm = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    Tm[t * n + t] = 1
    const bt = h.beta[h.go + t0 + t]
    for (let s = 0; s < t; s++) {
      let x = 0
      for (let r = s; r < t; r++) x -= bt * Math.exp(gamma[t] - gamma[r]) * kk[t * n + r] * Tm[r * n + s]
      Tm[t * n + s] = x
    }
  }
  const U = new Float64Array(n * Dv)
  const Wk = new Float64Array(n * Dk)
  for (let t = 0; t < n; t++) {
    for (let s = 0; s <= t; s++) {
      const c = Tm[t * n + s]
      const bs = h.beta[h.go + t0 + s]
      const vs = h.vo + (t0 + s) * Dv
      const ks = h.qk + (t0 + s) * Dk
      for (let j = 0; j < Dv; j++) U[t * Dv + j] += c * bs * h.v[vs + j]
      const ce = c * bs * Math.exp(gamma[s])
      for (let i = 0; i < Dk; i++) Wk[t * Dk + i] += ce * h.k[ks + i]
    }
  }
  return { n, gamma, kk, Tm, U, Wk }
}

/** W = U - Wk S0, [n, Dv]. */
function newValues(p: ChunkPrep, S0: Float64Array, Dk: number, Dv: number): Float64Array {
  const W = p.U.slice()
  for (let t = 0; t < p.n; t++) {
    for (let i = 0; i < Dk; i++) {
      const w = p.Wk[t * Dk + i]
      if (w === 0) continue
      for (let j = 0; j < Dv; j++) W[t * Dv + j] -= w * S0[i * Dv + j]
    }
  }
  return W
}

/** S <- exp(gamma_last) S + (diag(exp(gamma_last - gamma)) K)^T W, in place. */
function advanceState(h: HeadView, t0: number, p: ChunkPrep, W: Float64Array, S: Float64Array): void {
  const { Dk, Dv } = h
  const gl = p.gamma[p.n - 1]
  const eg = Math.exp(gl)
  for (let x = 0; x < Dk * Dv; x++) S[x] *= eg
  for (let s = 0; s < p.n; s++) {
    const c = Math.exp(gl - p.gamma[s])
    const ks = h.qk + (t0 + s) * Dk
    for (let i = 0; i < Dk; i++) {
      const ki = c * h.k[ks + i]
      for (let j = 0; j < Dv; j++) S[i * Dv + j] += ki * W[s * Dv + j]
    }
  }
}

/** Forward over all chunks of one head: writes o [T, Dv] at `out[oo..]`, updates S in place. */
export function chunkedForwardHead(
  h: HeadView,
  S: Float64Array,
  scale: number,
  C: number,
  out: Float64Array,
  oo: number,
): void {
  const { Dk, Dv } = h
  for (let t0 = 0; t0 < h.T; t0 += C) {
    const p = prepareChunk(h, t0, Math.min(C, h.T - t0))
    const W = newValues(p, S, Dk, Dv)
    for (let t = 0; t < p.n; t++) {
      const qt = h.qk + (t0 + t) * Dk
      const row = oo + (t0 + t) * Dv
      const eg = Math.exp(p.gamma[t])
      for (let j = 0; j < Dv; j++) {
        let x = 0
        for (let i = 0; i < Dk; i++) x += h.q[qt + i] * S[i * Dv + j]
        out[row + j] = eg * x
      }
      for (let s = 0; s <= t; s++) {
        const ks = h.qk + (t0 + s) * Dk
        let qk = 0
        for (let i = 0; i < Dk; i++) qk += h.q[qt + i] * h.k[ks + i]
        const c = Math.exp(p.gamma[t] - p.gamma[s]) * qk
        for (let j = 0; j < Dv; j++) out[row + j] += c * W[s * Dv + j]
      }
      for (let j = 0; j < Dv; j++) out[row + j] *= scale
    }
    advanceState(h, t0, p, W, S)
  }
}

/** Gradient buffers of one head, written at the same offsets as the inputs. */
export interface HeadGrads {
  dq: Float64Array
  dk: Float64Array
  dv: Float64Array
  dg: Float64Array
  dbeta: Float64Array
}

/**
 * Backward over all chunks of one head. `S0` is the initial state (not modified), `dS` holds the
 * gradient of the final state on entry and of the initial state on return; `dout` [T, Dv] at `oo`.
 */
export function chunkedBackwardHead(
  h: HeadView,
  S0: Float64Array,
  dS: Float64Array,
  scale: number,
  C: number,
  dout: ArrayLike<number>,
  oo: number,
  grads: HeadGrads,
): void {
  const { Dk, Dv } = h
  // Entry state of every chunk (the kernels keep these in a [chunks, Dk, Dv] buffer too).
  const entry: Float64Array[] = []
  const S = S0.slice()
  for (let t0 = 0; t0 < h.T; t0 += C) {
    entry.push(S.slice())
    const p = prepareChunk(h, t0, Math.min(C, h.T - t0))
    advanceState(h, t0, p, newValues(p, S, Dk, Dv), S)
  }
  for (let c = entry.length - 1; c >= 0; c--) {
    const t0 = c * C
    chunkBackward(h, t0, Math.min(C, h.T - t0), entry[c], dS, scale, dout, oo, grads)
  }
}

/** Differentiates one chunk; dS is the exit-state gradient on entry, the entry-state gradient on return. */
function chunkBackward(
  h: HeadView,
  t0: number,
  n: number,
  S0: Float64Array,
  dS: Float64Array,
  scale: number,
  dout: ArrayLike<number>,
  oo: number,
  grads: HeadGrads,
): void {
  const { Dk, Dv } = h
  const p = prepareChunk(h, t0, n)
  const { gamma, kk, Tm } = p
  const W = newValues(p, S0, Dk, Dv)
  const gl = gamma[n - 1]
  const q = (t: number, i: number) => h.q[h.qk + (t0 + t) * Dk + i]
  const k = (t: number, i: number) => h.k[h.qk + (t0 + t) * Dk + i]
  const v = (t: number, j: number) => h.v[h.vo + (t0 + t) * Dv + j]
  const beta = (t: number) => h.beta[h.go + t0 + t]
  const dO = (t: number, j: number) => dout[oo + (t0 + t) * Dv + j]
  const dqAt = h.qk + t0 * Dk
  const dvAt = h.vo + t0 * Dv
  const dgamma = new Float64Array(n)

  // P[t][s] = M[t][s] q_t.k_s and dOW[t][s] = dO_t . W_s for s <= t.
  const P = new Float64Array(n * n)
  const dOW = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    for (let s = 0; s <= t; s++) {
      let qk = 0
      for (let i = 0; i < Dk; i++) qk += q(t, i) * k(s, i)
      P[t * n + s] = Math.exp(gamma[t] - gamma[s]) * qk
      let d = 0
      for (let j = 0; j < Dv; j++) d += dO(t, j) * W[s * Dv + j]
      dOW[t * n + s] = d
    }
  }

  // dW = scale P^T dO + diag(exp(gl - gamma)) K dS1.
  const dW = new Float64Array(n * Dv)
  for (let s = 0; s < n; s++) {
    const decay = Math.exp(gl - gamma[s])
    for (let j = 0; j < Dv; j++) {
      let x = 0
      for (let t = s; t < n; t++) x += P[t * n + s] * dO(t, j)
      let y = 0
      for (let i = 0; i < Dk; i++) y += k(s, i) * dS[i * Dv + j]
      dW[s * Dv + j] = scale * x + decay * y
    }
  }

  // Output terms: dQ, dK, dgamma.
  for (let t = 0; t < n; t++) {
    const eg = Math.exp(gamma[t])
    let qsdo = 0
    for (let i = 0; i < Dk; i++) {
      let x = 0
      for (let j = 0; j < Dv; j++) x += dO(t, j) * S0[i * Dv + j]
      qsdo += q(t, i) * x
      let y = 0
      for (let s = 0; s <= t; s++) y += Math.exp(gamma[t] - gamma[s]) * dOW[t * n + s] * k(s, i)
      grads.dq[dqAt + t * Dk + i] += scale * (eg * x + y)
    }
    dgamma[t] += scale * eg * qsdo
    for (let s = 0; s <= t; s++) {
      const e = scale * dOW[t * n + s] * P[t * n + s]
      dgamma[t] += e
      dgamma[s] -= e
    }
  }
  for (let s = 0; s < n; s++) {
    const decay = Math.exp(gl - gamma[s])
    let cs = 0
    for (let i = 0; i < Dk; i++) {
      let x = 0
      for (let t = s; t < n; t++) x += Math.exp(gamma[t] - gamma[s]) * dOW[t * n + s] * q(t, i)
      let y = 0
      for (let j = 0; j < Dv; j++) y += W[s * Dv + j] * dS[i * Dv + j]
      grads.dk[dqAt + s * Dk + i] += scale * x + decay * y
      cs += k(s, i) * y
    }
    // The exit state's K^T W term: d/dgamma of exp(gl - gamma_s).
    dgamma[n - 1] += decay * cs
    dgamma[s] -= decay * cs
  }
  let s0dS = 0
  for (let x = 0; x < Dk * Dv; x++) s0dS += S0[x] * dS[x]
  dgamma[n - 1] += Math.exp(gl) * s0dS

  // dWk = -dW S0^T; then through U = Tm beta V and Wk = Tm beta exp(gamma) K:
  // X = Tm^T dU, Y = Tm^T dWk, dTm[t][s] = beta_s (dU_t . v_s + exp(gamma_s) dWk_t . k_s).
  const dWk = new Float64Array(n * Dk)
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < Dk; i++) {
      let x = 0
      for (let j = 0; j < Dv; j++) x += dW[t * Dv + j] * S0[i * Dv + j]
      dWk[t * Dk + i] = -x
    }
  }
  const dTm = new Float64Array(n * n)
  for (let t = 0; t < n; t++) {
    for (let s = 0; s <= t; s++) {
      let a = 0
      for (let j = 0; j < Dv; j++) a += dW[t * Dv + j] * v(s, j)
      let b = 0
      for (let i = 0; i < Dk; i++) b += dWk[t * Dk + i] * k(s, i)
      dTm[t * n + s] = beta(s) * (a + Math.exp(gamma[s]) * b)
    }
  }
  for (let s = 0; s < n; s++) {
    const bs = beta(s)
    const es = Math.exp(gamma[s])
    let dbeta = 0
    for (let j = 0; j < Dv; j++) {
      let x = 0
      for (let t = s; t < n; t++) x += Tm[t * n + s] * dW[t * Dv + j]
      grads.dv[dvAt + s * Dv + j] += bs * x
      dbeta += v(s, j) * x
    }
    let ky = 0
    for (let i = 0; i < Dk; i++) {
      let y = 0
      for (let t = s; t < n; t++) y += Tm[t * n + s] * dWk[t * Dk + i]
      grads.dk[dqAt + s * Dk + i] += bs * es * y
      ky += k(s, i) * y
    }
    grads.dbeta[h.go + t0 + s] += dbeta + es * ky
    dgamma[s] += bs * es * ky
  }

  // Tm = (I + L)^-1: dL = -Tm^T dTm Tm^T on the strict lower triangle.
  const A = new Float64Array(n * n) // A = Tm^T dTm
  for (let r = 0; r < n; r++) {
    for (let s = 0; s <= r; s++) {
      let x = 0
      for (let t = r; t < n; t++) x += Tm[t * n + r] * dTm[t * n + s]
      A[r * n + s] = x
    }
  }
  for (let t = 1; t < n; t++) {
    const bt = beta(t)
    for (let s = 0; s < t; s++) {
      // (A Tm^T)[t][s] = sum_r A[t][r] Tm[s][r], with r <= s (Tm lower) and r <= t (A lower).
      let x = 0
      for (let r = 0; r <= s; r++) x += A[t * n + r] * Tm[s * n + r]
      const dL = -x
      const decay = Math.exp(gamma[t] - gamma[s])
      const L = bt * decay * kk[t * n + s]
      grads.dbeta[h.go + t0 + t] += dL * decay * kk[t * n + s]
      dgamma[t] += dL * L
      dgamma[s] -= dL * L
      const dkk = dL * bt * decay
      for (let i = 0; i < Dk; i++) {
        grads.dk[dqAt + t * Dk + i] += dkk * k(s, i)
        grads.dk[dqAt + s * Dk + i] += dkk * k(t, i)
      }
    }
  }

  // gamma_t = g_0 + ... + g_t, so dg_r = sum_{t >= r} dgamma_t.
  let run = 0
  for (let t = n - 1; t >= 0; t--) {
    run += dgamma[t]
    grads.dg[h.go + t0 + t] += run
  }

  // Entry-state gradient: exp(gl) dS1 + scale Q^T diag(exp gamma) dO - Wk^T dW.
  const dS0 = new Float64Array(Dk * Dv)
  const eg = Math.exp(gl)
  for (let i = 0; i < Dk; i++) {
    for (let j = 0; j < Dv; j++) {
      let x = eg * dS[i * Dv + j]
      for (let t = 0; t < n; t++) {
        x += scale * Math.exp(gamma[t]) * q(t, i) * dO(t, j) - p.Wk[t * Dk + i] * dW[t * Dv + j]
      }
      dS0[i * Dv + j] = x
    }
  }
  dS.set(dS0)
}
