import { dispose, memory, mul, Rng, slice, sum, type Tensor, valueAndGrad } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { createGdnState, type GdnConfig, gdnDecode, gdnForward, initGdn } from '../src/gdn/layer.js'
import { maxNormErr } from './helpers.js'

const cfg: GdnConfig = {
  dModel: 12,
  numHeads: 2,
  headKDim: 4,
  headVDim: 5,
  convSize: 4,
  chunkSize: 8,
  normEps: 1e-6,
}

describe('GDN layer (float64, CPU)', () => {
  it('chunkwise forward and backward equal the recurrent reference, through every parameter', async () => {
    const live = memory().liveTensors
    const rng = new Rng(1)
    const p = initGdn(cfg, rng, 'float64')
    const x = rng.normal([2, 21, 12], 0, 1, { dtype: 'float64' })
    const w = rng.normal([2, 21, 12], 0, 1, { dtype: 'float64' })
    const loss = (mode: 'chunked' | 'recurrent', kernel: 'fused' | 'portable') => (pp: typeof p) =>
      sum(mul(gdnForward(cfg, pp, x, { mode, kernel }).y, w))
    const a = valueAndGrad(loss('chunked', 'fused'))(p)
    const b = valueAndGrad(loss('recurrent', 'portable'))(p)
    expect(await maxNormErr(a.value, b.value)).toBeLessThan(1e-12)
    const ga = a.grads as unknown as Record<string, Tensor | { weight: Tensor }>
    const gb = b.grads as unknown as Record<string, Tensor | { weight: Tensor }>
    for (const name of Object.keys(ga)) {
      const ta = 'weight' in ga[name] ? (ga[name] as { weight: Tensor }).weight : (ga[name] as Tensor)
      const tb = 'weight' in gb[name] ? (gb[name] as { weight: Tensor }).weight : (gb[name] as Tensor)
      expect(await maxNormErr(ta, tb), name).toBeLessThan(1e-11)
    }
    dispose([a, b, p, x, w])
    expect(memory().liveTensors).toBe(live)
  })

  it('decoding token by token equals the full forward, with constant state size', async () => {
    const live = memory().liveTensors
    const rng = new Rng(2)
    const p = initGdn(cfg, rng, 'float64')
    const T = 13
    const x = rng.normal([2, T, 12], 0, 1, { dtype: 'float64' })
    const full = gdnForward(cfg, p, x).y
    const state = createGdnState(cfg, 2, 'float64')
    const ys = (await full.data()) as Float64Array
    let err = 0
    const sizes = new Set<number>()
    for (let t = 0; t < T; t++) {
      const before = memory().liveBytes
      const xt = slice(x, [0, t, 0], [2, 1, 12])
      const yt = gdnDecode(cfg, p, state, xt)
      const yv = (await yt.data()) as Float64Array
      for (let i = 0; i < 24; i++)
        err = Math.max(err, Math.abs(yv[i] - ys[(Math.floor(i / 12) * T + t) * 12 + (i % 12)]))
      dispose([xt, yt])
      sizes.add(memory().liveBytes - before)
    }
    expect(err).toBeLessThan(1e-12)
    expect([...sizes]).toEqual([0])
    dispose([p, x, full, state])
    expect(memory().liveTensors).toBe(live)
  })
})
