import { describe, expect, it } from 'vitest'
import {
  attention,
  attentionCost,
  conv1d,
  dispose,
  gatedDeltaRule,
  keyVisible,
  layerNorm,
  matmul,
  Rng,
  rope,
  type Tensor,
  tensor,
  visiblePairs,
} from '../src/index.js'

// The CPU kernels against the maths written out directly from each op's definition, in float64.
const rng = new Rng(2024)
const f64 = (shape: number[], scale = 1) => {
  const n = shape.reduce((a, b) => a * b, 1)
  const v = rng.normalArray(n).map((x) => x * scale)
  return { t: tensor(v, shape, 'float64'), v }
}
function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  let s = 0
  for (let i = 0; i < b.length; i++) s = Math.max(s, Math.abs(b[i]))
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m / (s || 1)
}

describe('CPU reference against direct definitions (float64)', () => {
  it('matmul = triple loop, all transposes, broadcast batch', () => {
    for (const [tA, tB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      const [B, M, K, N] = [3, 7, 5, 6]
      const a = f64(tA ? [B, K, M] : [B, M, K])
      const b = f64(tB ? [1, N, K] : [1, K, N])
      const out = matmul(a.t, b.t, { transposeA: tA, transposeB: tB })
      const expect_ = new Float64Array(B * M * N)
      for (let bb = 0; bb < B; bb++)
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let s = 0
            for (let k = 0; k < K; k++) {
              const av = tA ? a.v[bb * K * M + k * M + i] : a.v[bb * M * K + i * K + k]
              const bv = tB ? b.v[j * K + k] : b.v[k * N + j]
              s += av * bv
            }
            expect_[(bb * M + i) * N + j] = s
          }
      expect(maxRelErr(out.dataSync(), expect_)).toBeLessThan(1e-14)
      dispose([a.t, b.t, out])
    }
  })

  it('attention = softmax(q k^T * scale + mask) v with the selection rule written out', () => {
    const [B, Hq, Hk, T, D] = [2, 4, 2, 9, 5]
    const q = f64([B, Hq, T, D])
    const k = f64([B, Hk, T, D])
    const v = f64([B, Hk, T, D])
    const keepV = rng.uniformArray(B * Hk * T).map((u) => (u < 0.3 ? 1 : 0))
    const keep = tensor(keepV, [B, Hk, T], 'bool')
    const configs = [
      { causal: false, window: 0, sinks: 0, useKeep: false },
      { causal: true, window: 0, sinks: 0, useKeep: false },
      { causal: true, window: 3, sinks: 2, useKeep: false },
      { causal: true, window: 2, sinks: 1, useKeep: true },
      { causal: false, window: 0, sinks: 2, useKeep: true },
    ]
    for (const c of configs) {
      const out = attention(q.t, k.t, v.t, {
        causal: c.causal,
        window: c.window,
        sinks: c.sinks,
        keep: c.useKeep ? keep : undefined,
      })
      const ref = new Float64Array(B * Hq * T * D)
      for (let b = 0; b < B; b++)
        for (let h = 0; h < Hq; h++) {
          const hk = Math.floor(h / (Hq / Hk))
          for (let i = 0; i < T; i++) {
            const visible: number[] = []
            for (let j = 0; j < T; j++) {
              // The set definition: future keys hidden when causal; with a selector, a key must be
              // in the window, a sink, or kept.
              if (c.causal && j > i) continue
              const anySelector = c.window > 0 || c.useKeep
              const selected =
                !anySelector ||
                (c.window > 0 && Math.abs(i - j) < c.window) ||
                j < c.sinks ||
                (c.useKeep && keepV[(b * Hk + hk) * T + j] === 1)
              if (selected) visible.push(j)
            }
            const s = visible.map((j) => {
              let d = 0
              for (let x = 0; x < D; x++)
                d += q.v[((b * Hq + h) * T + i) * D + x] * k.v[((b * Hk + hk) * T + j) * D + x]
              return d / Math.sqrt(D)
            })
            const m = Math.max(...s)
            const p = s.map((x) => Math.exp(x - m))
            const z = p.reduce((a, x) => a + x, 0)
            for (let x = 0; x < D; x++) {
              let o = 0
              visible.forEach((j, n) => {
                o += (p[n] / z) * v.v[((b * Hk + hk) * T + j) * D + x]
              })
              ref[((b * Hq + h) * T + i) * D + x] = visible.length ? o : 0
            }
          }
        }
      expect(maxRelErr(out.dataSync(), ref), JSON.stringify(c)).toBeLessThan(1e-13)
      out.dispose()
    }
    dispose([q.t, k.t, v.t, keep])
  })

  it('gated delta rule (both modes) = the recurrence with explicit matrices', () => {
    const [B, H, T, Dk, Dv] = [1, 2, 13, 4, 3]
    const q = f64([B, H, T, Dk])
    const kRaw = rng.normalArray(B * H * T * Dk)
    for (let r = 0; r < B * H * T; r++) {
      let n = 0
      for (let i = 0; i < Dk; i++) n += kRaw[r * Dk + i] ** 2
      for (let i = 0; i < Dk; i++) kRaw[r * Dk + i] /= Math.sqrt(n)
    }
    const k = tensor(kRaw, [B, H, T, Dk], 'float64')
    const v = f64([B, H, T, Dv])
    const gV = rng.uniformArray(B * H * T).map((u) => -0.6 * u - 0.01)
    const bV = rng.uniformArray(B * H * T).map((u) => 0.05 + 0.9 * u)
    const g = tensor(gV, [B, H, T], 'float64')
    const beta = tensor(bV, [B, H, T], 'float64')
    const scale = 0.7
    // Direct: S = a (I - b k k^T) S + b k v^T with S [Dk, Dv], o = S^T (scale q).
    const refOut = new Float64Array(B * H * T * Dv)
    const refState = new Float64Array(B * H * Dk * Dv)
    for (let bh = 0; bh < B * H; bh++) {
      let S = Array.from({ length: Dk }, () => new Array<number>(Dv).fill(0))
      for (let t = 0; t < T; t++) {
        const kt = Array.from({ length: Dk }, (_, i) => kRaw[(bh * T + t) * Dk + i])
        const vt = Array.from({ length: Dv }, (_, j) => v.v[(bh * T + t) * Dv + j])
        const a = Math.exp(gV[bh * T + t])
        const bt = bV[bh * T + t]
        const P = Array.from({ length: Dk }, (_, i) =>
          Array.from({ length: Dk }, (_, j) => a * ((i === j ? 1 : 0) - bt * kt[i] * kt[j])),
        )
        S = P.map((row, i) =>
          Array.from(
            { length: Dv },
            (_, j) => row.reduce((s, pij, l) => s + pij * S[l][j], 0) + bt * kt[i] * vt[j],
          ),
        )
        for (let j = 0; j < Dv; j++) {
          let o = 0
          for (let i = 0; i < Dk; i++) o += S[i][j] * scale * q.v[(bh * T + t) * Dk + i]
          refOut[(bh * T + t) * Dv + j] = o
        }
      }
      for (let i = 0; i < Dk; i++) for (let j = 0; j < Dv; j++) refState[bh * Dk * Dv + i * Dv + j] = S[i][j]
    }
    for (const mode of ['recurrent', 'chunked'] as const) {
      for (const chunkSize of mode === 'chunked' ? [1, 4, 5, 64] : [64]) {
        const r = gatedDeltaRule(q.t, k, v.t, g, beta, { mode, chunkSize, scale })
        expect(maxRelErr(r.out.dataSync(), refOut), `${mode}/${chunkSize}`).toBeLessThan(1e-12)
        expect(maxRelErr(r.state.dataSync(), refState), `${mode}/${chunkSize}`).toBeLessThan(1e-12)
        dispose(r)
      }
    }
    dispose([q.t, k, v.t, g, beta])
  })

  it('conv1d = direct cross-correlation over a padded input', () => {
    const [B, T, Cin, Cout, K, dil, groups] = [2, 9, 4, 6, 3, 2, 2]
    const x = f64([B, T, Cin])
    const w = f64([Cout, Cin / groups, K])
    const bias = f64([Cout])
    const padL = dil * (K - 1)
    const out = conv1d(x.t, w.t, bias.t, { padding: 'causal', dilation: dil, groups })
    const ref = new Float64Array(B * T * Cout)
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let co = 0; co < Cout; co++) {
          const g = Math.floor(co / (Cout / groups))
          let s = bias.v[co]
          for (let kk = 0; kk < K; kk++) {
            const src = t - padL + kk * dil
            if (src < 0) continue
            for (let c = 0; c < Cin / groups; c++)
              s += w.v[(co * (Cin / groups) + c) * K + kk] * x.v[(b * T + src) * Cin + g * (Cin / groups) + c]
          }
          ref[(b * T + t) * Cout + co] = s
        }
    expect(out.shape).toEqual([B, T, Cout])
    expect(maxRelErr(out.dataSync(), ref)).toBeLessThan(1e-14)
    dispose([x.t, w.t, bias.t, out])
  })

  it('rope = rotating (x_i, x_{i+d/2}) pairs as complex numbers by pos * base^(-2i/d)', () => {
    const [B, H, T, D] = [1, 2, 4, 6]
    const x = f64([B, H, T, D])
    const posV = [3, 17, 0, 1000]
    const pos = tensor(posV, [T], 'int32')
    const out = rope(x.t, pos, { base: 100 })
    const ref = new Float64Array(x.v.length)
    for (let r = 0; r < B * H * T; r++) {
      const p = posV[r % T]
      for (let i = 0; i < D / 2; i++) {
        const th = p * 100 ** ((-2 * i) / D)
        const [re, im] = [x.v[r * D + i], x.v[r * D + i + D / 2]]
        ref[r * D + i] = re * Math.cos(th) - im * Math.sin(th)
        ref[r * D + i + D / 2] = re * Math.sin(th) + im * Math.cos(th)
      }
    }
    expect(maxRelErr(out.dataSync(), ref)).toBeLessThan(1e-12)
    dispose([x.t, pos, out])
  })

  it('layerNorm = (x - mean) / sqrt(var + eps) * w + b', () => {
    const x = f64([3, 8], 3)
    const w = f64([8])
    const b = f64([8])
    const out = layerNorm(x.t, w.t, b.t, 1e-5)
    const ref = new Float64Array(24)
    for (let r = 0; r < 3; r++) {
      const row = x.v.slice(r * 8, r * 8 + 8)
      const mu = row.reduce((s, v) => s + v, 0) / 8
      const va = row.reduce((s, v) => s + (v - mu) ** 2, 0) / 8
      for (let j = 0; j < 8; j++) ref[r * 8 + j] = ((row[j] - mu) / Math.sqrt(va + 1e-5)) * w.v[j] + b.v[j]
    }
    expect(maxRelErr(out.dataSync(), ref)).toBeLessThan(1e-14)
    dispose([x.t, w.t, b.t, out])
  })

  it('the cost model counts exactly the pairs the attention rule makes visible', () => {
    for (const s of [
      { qLen: 7, kLen: 7, causal: true },
      { qLen: 1, kLen: 30, causal: true },
      { qLen: 12, kLen: 12, causal: true, window: 4, sinks: 2 },
      { qLen: 5, kLen: 9, causal: false },
    ]) {
      let brute = 0
      for (let i = 0; i < s.qLen; i++)
        for (let j = 0; j < s.kLen; j++) {
          if (
            keyVisible(s.kLen - s.qLen + i, j, undefined, {
              causal: s.causal,
              window: s.window ?? 0,
              sinks: s.sinks ?? 0,
            })
          )
            brute++
        }
      expect(visiblePairs(s), JSON.stringify(s)).toBe(brute)
    }
    const c = attentionCost(
      { batch: 1, qHeads: 8, kvHeads: 8, qLen: 512, kLen: 512, headDim: 64, causal: true },
      'float32',
    )
    expect(c.flops).toBe(((2 * (512 * 513)) / 2) * 8 * 128)
  })
})

void ({} as Tensor)
