import { attention, dispose, keyVisible, memory, Rng, type Tensor, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { coreWindow, isKept, type KeepRuleConfig } from '../src/attention/keep-rule.js'
import { lteAttention } from '../src/attention/layer.js'
import { steSparseAttention } from '../src/attention/ste-attention.js'
import { maxNormErr } from './helpers.js'

/** Softmax attention over exactly the keys isKept() lists, in float64 loops. */
function directSparseAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  r: Tensor,
  rule: KeepRuleConfig,
): Float64Array {
  const [B, H, T, D] = q.shape
  const Hk = k.shape[1]
  const Dv = v.shape[3]
  const [qv, kv, vv, rv] = [q, k, v, r].map((t) => t.dataSync() as Float64Array)
  const out = new Float64Array(B * H * T * Dv)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hk))
      for (let i = 0; i < T; i++) {
        const kept: number[] = []
        for (let j = 0; j < T; j++) if (isKept(i, j, rv[(b * Hk + hk) * T + j], rule)) kept.push(j)
        const logits = kept.map((j) => {
          let s = 0
          for (let d = 0; d < D; d++)
            s += qv[((b * H + h) * T + i) * D + d] * kv[((b * Hk + hk) * T + j) * D + d]
          return s / Math.sqrt(D)
        })
        const m = Math.max(...logits)
        const e = logits.map((l) => Math.exp(l - m))
        const z = e.reduce((a, x) => a + x, 0)
        for (let x = 0; x < kept.length; x++)
          for (let d = 0; d < Dv; d++)
            out[((b * H + h) * T + i) * Dv + d] += (e[x] / z) * vv[((b * Hk + hk) * T + kept[x]) * Dv + d]
      }
    }
  return out
}

describe('keep rule', () => {
  it("core's selectors with window = w + 1 reproduce the paper's set definition exactly", () => {
    for (const rule of [
      { sinks: 0, window: 1, threshold: 0.5 },
      { sinks: 2, window: 3, threshold: 0.5 },
      { sinks: 4, window: 6, threshold: 0.5 },
    ])
      for (let i = 0; i < 20; i++)
        for (let j = 0; j < 20; j++)
          for (const r of [0.2, 0.5, 0.7]) {
            const core = keyVisible(i, j, r > rule.threshold, {
              causal: true,
              window: coreWindow(rule.window),
              sinks: rule.sinks,
            })
            expect(core, `i=${i} j=${j} r=${r} ${JSON.stringify(rule)}`).toBe(isKept(i, j, r, rule))
          }
  })

  it('the layer attention (core keep mask) and the STE composition equal the direct set definition', async () => {
    const live = memory().liveTensors
    const rng = new Rng(3)
    const dtype = 'float64' as const
    const [B, H, Hk, T, D] = [2, 4, 2, 23, 8]
    const q = rng.normal([B, H, T, D], 0, 1, { dtype })
    const k = rng.normal([B, Hk, T, D], 0, 1, { dtype })
    const v = rng.normal([B, Hk, T, 6], 0, 1, { dtype })
    const r = rng.uniform([B, Hk, T], 0, 1, { dtype })
    const rule = { sinks: 2, window: 4, threshold: 0.5 }
    const direct = tensor(directSparseAttention(q, k, v, r, rule), [B, H, T, 6], { dtype })
    const viaCore = lteAttention(q, k, v, r, rule)
    const viaSte = steSparseAttention(q, k, v, r, rule)
    expect(await maxNormErr(viaCore, direct)).toBeLessThan(1e-13)
    expect(await maxNormErr(viaSte, direct)).toBeLessThan(1e-13)
    // Sanity: the rule matters (dense causal attention differs).
    const dense = attention(q, k, v, { causal: true })
    expect(await maxNormErr(dense, direct)).toBeGreaterThan(1e-3)
    dispose([q, k, v, r, direct, viaCore, viaSte, dense])
    expect(memory().liveTensors).toBe(live)
  })
})
