import { add, dispose, linear, mean, memory, mul, Rng, sum, type Tensor, valueAndGrad } from '@attnkit/core'
import { numericGradient } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { isStructural, type KeepRuleConfig } from '../src/attention/keep-rule.js'
import {
  type AttentionConfig,
  attentionForward,
  attentionProjections,
  initAttention,
  keepRuleOf,
} from '../src/attention/layer.js'
import { scorerForward } from '../src/attention/scorer.js'
import { steSparseAttention } from '../src/attention/ste-attention.js'
import { mergeHeads } from '../src/nn/functional.js'

const dtype = 'float64' as const

/**
 * sum(out * w) of attention with a continuous mask m [B, Hk, T] on the non-structural causal
 * pairs (1 on sinks and window), in float64 loops: the function whose derivative at m = hard(r)
 * the straight-through estimator must return.
 */
function relaxedLoss(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  w: Float64Array,
  m: Float64Array,
  dims: number[],
  rule: KeepRuleConfig,
): number {
  const [B, H, Hk, T, D, Dv] = dims
  let loss = 0
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hk))
      for (let i = 0; i < T; i++) {
        const e: number[] = []
        for (let j = 0; j <= i; j++) {
          let s = 0
          for (let d = 0; d < D; d++)
            s += q[((b * H + h) * T + i) * D + d] * k[((b * Hk + hk) * T + j) * D + d]
          const mij = isStructural(i, j, rule) ? 1 : m[(b * Hk + hk) * T + j]
          e.push(mij * Math.exp(s / Math.sqrt(D)))
        }
        const z = e.reduce((a, x) => a + x, 0)
        for (let d = 0; d < Dv; d++) {
          let o = 0
          for (let j = 0; j <= i; j++) o += (e[j] / z) * v[((b * Hk + hk) * T + j) * Dv + d]
          loss += o * w[((b * H + h) * T + i) * Dv + d]
        }
      }
    }
  return loss
}

describe('straight-through estimator and L1 penalty', () => {
  it('dLoss/dr equals the derivative of the relaxed-mask loss at the hard mask', async () => {
    const live = memory().liveTensors
    const rng = new Rng(5)
    const dims = [1, 4, 2, 17, 4, 3]
    const [B, H, Hk, T, D, Dv] = dims
    const rule = { sinks: 1, window: 3, threshold: 0.5 }
    const q = rng.normal([B, H, T, D], 0, 1, { dtype })
    const k = rng.normal([B, Hk, T, D], 0, 1, { dtype })
    const v = rng.normal([B, Hk, T, Dv], 0, 1, { dtype })
    const w = rng.normal([B, H, T, Dv], 0, 1, { dtype })
    const r = rng.uniform([B, Hk, T], 0.05, 0.95, { dtype })
    const { value, grads } = valueAndGrad((p: { r: Tensor }) =>
      sum(mul(steSparseAttention(q, k, v, p.r, rule), w)),
    )({ r })
    const [qv, kv, vv, wv, rv] = [q, k, v, w, r].map((t) => t.dataSync() as Float64Array)
    const hard = rv.map((x) => (x > 0.5 ? 1 : 0))
    expect(await value.item()).toBeCloseTo(relaxedLoss(qv, kv, vv, wv, hard, dims, rule), 12)
    const g = grads.r.dataSync()
    let nonzeroEvicted = 0
    for (let j = 0; j < hard.length; j++) {
      const up = hard.slice()
      const down = hard.slice()
      up[j] += 1e-6
      down[j] -= 1e-6
      const numeric =
        (relaxedLoss(qv, kv, vv, wv, up, dims, rule) - relaxedLoss(qv, kv, vv, wv, down, dims, rule)) / 2e-6
      expect(Math.abs(g[j] - numeric), `r[${j}]`).toBeLessThan(1e-7 + 1e-6 * Math.abs(numeric))
      if (hard[j] === 0 && Math.abs(g[j]) > 1e-6) nonzeroEvicted++
    }
    // Evicted tokens (outside sinks and window) receive a learning signal too.
    expect(nonzeroEvicted).toBeGreaterThan(0)
    dispose([q, k, v, w, r, value, grads])
    expect(memory().liveTensors).toBe(live)
  })

  it('gradients w.r.t. q, k, v of the STE attention match finite differences', () => {
    const live = memory().liveTensors
    const rng = new Rng(6)
    const rule = { sinks: 1, window: 2, threshold: 0.5 }
    const params = {
      q: rng.normal([1, 2, 9, 3], 0, 1, { dtype }),
      k: rng.normal([1, 1, 9, 3], 0, 1, { dtype }),
      v: rng.normal([1, 1, 9, 2], 0, 1, { dtype }),
    }
    const r = rng.uniform([1, 1, 9], 0, 1, { dtype })
    const w = rng.normal([1, 2, 9, 2], 0, 1, { dtype })
    const f = (p: Record<string, Tensor>) => sum(mul(steSparseAttention(p.q, p.k, p.v, r, rule), w))
    const { value, grads } = valueAndGrad(f)(params)
    const numeric = numericGradient(f, params)
    for (const name of ['q', 'k', 'v'] as const) {
      const a = grads[name].dataSync()
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(a[i] - numeric[name][i]), `${name}[${i}]`).toBeLessThan(1e-7)
    }
    dispose([params, r, w, value, grads])
    expect(memory().liveTensors).toBe(live)
  })

  it('an LTE layer sends the scorer the STE gradient plus the L1 gradient', () => {
    const live = memory().liveTensors
    const rng = new Rng(7)
    const cfg: AttentionConfig = {
      kind: 'lte',
      dModel: 8,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 4,
      ropeBase: 10000,
      sinks: 1,
      window: 6,
      poolSize: 4,
      threshold: 0.5,
      l1Weight: 0.3,
      scorer: { hidden: 5, layers: 3, kernelSize: 3, dilation: 2 },
    }
    const p = initAttention(cfg, rng, dtype)
    const x = rng.normal([1, 16, 8], 0, 1, { dtype })
    const wy = rng.normal([1, 16, 8], 0, 1, { dtype })
    const loss = (pp: typeof p) => {
      const { y, penalty } = attentionForward(cfg, pp, x)
      return add(sum(mul(y, wy)), penalty!)
    }
    const { value, grads } = valueAndGrad(loss)(p)
    // dLoss/dr with the scorer's output as a free input: STE through attention + l1Weight / N.
    const r0 = scorerForward(cfg.scorer, p.lte_scorer!, x)
    const viaR = valueAndGrad((pr: { r: Tensor }) => {
      const { q, k, v } = attentionProjections(cfg, p, x)
      const o = steSparseAttention(q, k, v, pr.r, keepRuleOf(cfg))
      return add(sum(mul(linear(mergeHeads(o), p.o_proj.weight), wy)), mul(mean(pr.r), cfg.l1Weight))
    })({ r: r0 })
    // The scorer parameters' gradient must be J^T dLoss/dr: finite differences of sum(r(theta) * dLoss/dr).
    const flat: Record<string, Tensor> = {}
    p.lte_scorer!.convs.forEach((c, l) => {
      flat[`w${l}`] = c.weight
      flat[`b${l}`] = c.bias
    })
    const probe = (f: Record<string, Tensor>) =>
      sum(
        mul(
          scorerForward(
            cfg.scorer,
            { convs: [0, 1, 2].map((l) => ({ weight: f[`w${l}`], bias: f[`b${l}`] })) },
            x,
          ),
          viaR.grads.r,
        ),
      )
    const numeric = numericGradient(probe, flat)
    let signal = 0
    grads.lte_scorer!.convs.forEach((c, l) => {
      for (const [name, t] of [
        [`w${l}`, c.weight],
        [`b${l}`, c.bias],
      ] as const) {
        const a = t.dataSync()
        for (let i = 0; i < a.length; i++) {
          expect(Math.abs(a[i] - numeric[name][i]), `${name}[${i}]`).toBeLessThan(
            1e-7 + 1e-6 * Math.abs(numeric[name][i]),
          )
          signal = Math.max(signal, Math.abs(a[i]))
        }
      }
    })
    expect(signal).toBeGreaterThan(1e-4)
    // The L1 term alone: d(l1Weight * mean(r))/dr = l1Weight / N for every score.
    const l1 = valueAndGrad((pr: { r: Tensor }) => mul(mean(pr.r), cfg.l1Weight))({ r: r0 })
    for (const g of l1.grads.r.dataSync()) expect(g).toBeCloseTo(cfg.l1Weight / r0.size, 14)
    dispose([value, grads, r0, viaR, l1])
    dispose([p, x, wy])
    expect(memory().liveTensors).toBe(live)
  })
})
