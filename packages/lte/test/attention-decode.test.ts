import { attention, dispose, linear, memory, Rng, slice, type Tensor, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  attentionCacheTensors,
  attentionDecode,
  cachedPositions,
  createAttentionCache,
} from '../src/attention/decode-cache.js'
import {
  type AttentionConfig,
  attentionForward,
  attentionProjections,
  initAttention,
} from '../src/attention/layer.js'
import { scorerForward } from '../src/attention/scorer.js'
import { mergeHeads } from '../src/nn/functional.js'

const dtype = 'float64' as const
const base: AttentionConfig = {
  kind: 'lte',
  dModel: 16,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 4,
  ropeBase: 10000,
  sinks: 2,
  window: 6,
  poolSize: 64,
  threshold: 0.5,
  l1Weight: 0.01,
  scorer: { hidden: 8, layers: 3, kernelSize: 3, dilation: 2 },
}

const stepInput = (x: Tensor, t: number) => slice(x, [0, t, 0], [x.shape[0], 1, x.shape[2]])

/** The policy the cache implements, simulated on the host from the full forward's scores. */
function simulateRetained(r: Float64Array, T: number, c: AttentionConfig, bh: number): number[][] {
  const pool: { pos: number; score: number }[] = []
  const sets: number[][] = []
  for (let t = 0; t < T; t++) {
    const set: number[] = []
    for (let j = 0; j < Math.min(c.sinks, t); j++) set.push(j)
    for (let j = Math.max(c.sinks, t - c.window); j < t; j++) set.push(j)
    for (const e of pool) set.push(e.pos)
    sets.push(set.sort((a, b) => a - b))
    const j = t - c.window
    if (j < c.sinks) continue
    const score = r[bh * T + j]
    if (!(score > c.threshold)) continue
    if (pool.length < c.poolSize) pool.push({ pos: j, score })
    else {
      let lo = 0
      for (let e = 1; e < pool.length; e++) if (pool[e].score < pool[lo].score) lo = e
      if (score > pool[lo].score) pool[lo] = { pos: j, score }
    }
  }
  return sets
}

describe('attention decode with the constant-size cache (float64, CPU)', () => {
  for (const kind of ['lte', 'swa', 'full'] as const) {
    it(`${kind}: decode equals the full forward when nothing is evicted for capacity`, async () => {
      const live = memory().liveTensors
      const c = { ...base, kind }
      const rng = new Rng(11)
      const p = initAttention(c, rng, dtype)
      const T = 30
      const x = rng.normal([2, T, 16], 0, 1, { dtype })
      const { y, scores, penalty } = attentionForward(c, p, x, { training: false })
      const ref = (await y.data()) as Float64Array
      const cache = createAttentionCache(c, 2, dtype)
      let err = 0
      const bytes: number[] = []
      for (let t = 0; t < T; t++) {
        const xt = stepInput(x, t)
        const yt = attentionDecode(c, p, cache, xt)
        const got = (await yt.data()) as Float64Array
        for (let b = 0; b < 2; b++)
          for (let d = 0; d < 16; d++)
            err = Math.max(err, Math.abs(got[b * 16 + d] - ref[(b * T + t) * 16 + d]))
        dispose([xt, yt])
        bytes.push(memory().liveBytes)
      }
      expect(err).toBeLessThan(1e-12)
      if (kind === 'full') expect(bytes[T - 1]).toBeGreaterThan(bytes[1])
      else expect(new Set(bytes).size, 'cache bytes per step').toBe(1)
      dispose([y, scores, penalty, p, x, attentionCacheTensors(cache)])
      expect(memory().liveTensors).toBe(live)
    })
  }

  it('lte with a small pool: retains what the policy says and attends to exactly those tokens', async () => {
    const live = memory().liveTensors
    const c = { ...base, poolSize: 3 }
    const rng = new Rng(12)
    const p = initAttention(c, rng, dtype)
    const T = 40
    const B = 2
    const x = rng.normal([B, T, 16], 0, 1, { dtype })
    const scores = scorerForward(c.scorer, p.lte_scorer!, x)
    const r = (await scores.data()) as Float64Array
    scores.dispose()
    const kept = r.filter((s) => s > 0.5).length
    // Enough kept tokens that the pool of 3 overflows, and enough evicted that eviction matters.
    expect(kept).toBeGreaterThan(8)
    expect(kept).toBeLessThan(r.length - 8)
    const { q, k, v } = attentionProjections(c, p, x)
    const cache = createAttentionCache(c, B, dtype)
    const N = c.sinks + c.window + c.poolSize
    let err = 0
    for (let t = 0; t < T; t++) {
      const pos = await cachedPositions(cache)
      const keep = new Uint8Array(B * c.numKvHeads * (t + 1))
      for (let bh = 0; bh < B * c.numKvHeads; bh++) {
        const held = [...pos.subarray(bh * N, (bh + 1) * N)].filter((x) => x >= 0).sort((a, b) => a - b)
        expect(held, `t=${t} bh=${bh}`).toEqual(simulateRetained(r, T, c, bh)[t])
        for (const j of held) keep[bh * (t + 1) + j] = 1
        keep[bh * (t + 1) + t] = 1
      }
      // Expected: attention of query t over exactly the retained keys of the full sequence.
      const qt = slice(q, [0, 0, t, 0], [B, c.numHeads, 1, c.headDim])
      const kt = slice(k, [0, 0, 0, 0], [B, c.numKvHeads, t + 1, c.headDim])
      const vt = slice(v, [0, 0, 0, 0], [B, c.numKvHeads, t + 1, c.headDim])
      const keepT = tensor(keep, [B, c.numKvHeads, t + 1], { dtype: 'bool' })
      const expectedHeads = attention(qt, kt, vt, { keep: keepT })
      const xt = stepInput(x, t)
      const yt = attentionDecode(c, p, cache, xt)
      const merged = mergeHeads(expectedHeads)
      const expected = linear(merged, p.o_proj.weight)
      const a = (await yt.data()) as Float64Array
      const e = (await expected.data()) as Float64Array
      for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - e[i]))
      dispose([qt, kt, vt, keepT, expectedHeads, xt, yt, merged, expected])
    }
    expect(err).toBeLessThan(1e-12)
    dispose([p, x, q, k, v, attentionCacheTensors(cache)])
    expect(memory().liveTensors).toBe(live)
  })
})
