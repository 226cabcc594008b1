import { dispose, memory, Rng, reshape, slice, type Tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  createCache,
  decode,
  forward,
  init,
  prefill,
  recordLayout,
  resolveConfig,
  type TpaConfig,
} from '../src/index.js'
import { maxAbs, maxAbsDiff } from './reference.js'

const F64 = 'float64' as const

const CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 12, heads: 4, headDim: 6, dtype: F64 },
  {
    variant: 'tpa',
    dModel: 10,
    heads: 3,
    headDim: 8,
    qRank: 2,
    kRank: 1,
    vRank: 3,
    dtype: F64,
    rope: { direction: -1 },
  },
  { variant: 'tpa-kvonly', dModel: 12, heads: 4, headDim: 6, dtype: F64 },
  { variant: 'mha', dModel: 12, heads: 4, headDim: 6, dtype: F64 },
  { variant: 'gqa', dModel: 12, heads: 4, kvHeads: 2, headDim: 6, dtype: F64 },
  { variant: 'mqa', dModel: 12, heads: 4, headDim: 6, dtype: F64 },
]

function row(y: Tensor, t: number): Tensor {
  const [B, , D] = y.shape
  return slice(y, [0, t, 0], [B, 1, D])
}

describe('decode over a prompt equals the full forward, position by position (float64, CPU)', () => {
  for (const config of CONFIGS) {
    it(`${config.variant}${config.qRank ? ` R=${config.qRank}/${config.kRank}/${config.vRank}` : ''}`, async () => {
      const before = memory().liveTensors
      const c = resolveConfig(config)
      const rng = new Rng(21)
      const params = init(c, rng)
      const B = 2
      const T = 9
      const x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
      const full = forward(params, x)
      // tailCapacity 3: the tail is written into the store after tokens 3, 6 and 9.
      const cache = createCache(c, { batch: B, maxLen: 12, tailCapacity: 3 })
      expect(cache.store.shape).toEqual([B, 12, recordLayout(c).size])
      for (let t = 0; t < T; t++) {
        const xt = row(x, t)
        const yt = decode(params, cache, xt)
        const want = row(full, t)
        const got = await yt.data()
        expect(maxAbs(got)).toBeGreaterThan(1e-3)
        expect(maxAbsDiff(got, await want.data())).toBeLessThan(1e-12)
        expect(cache.length).toBe(t + 1)
        expect(cache.storeLength).toBe(3 * Math.floor((t + 1) / 3))
        dispose([xt, yt, want])
      }
      cache.dispose()
      dispose([params, x, full])
      expect(memory().liveTensors).toBe(before)
    })
  }

  it('prefill then decode (and [B, dModel] inputs) equal the full forward', async () => {
    const c = resolveConfig(CONFIGS[0])
    const rng = new Rng(22)
    const params = init(c, rng)
    const B = 3
    const T = 8
    const x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
    const full = forward(params, x)
    using cache = createCache(c, { batch: B, maxLen: T, tailCapacity: 4 })
    // Two prefill chunks: the second attends over the first through the cache.
    const first = slice(x, [0, 0, 0], [B, 3, c.dModel])
    const second = slice(x, [0, 3, 0], [B, 2, c.dModel])
    const y1 = prefill(params, cache, first)
    const y2 = prefill(params, cache, second)
    const want1 = slice(full, [0, 0, 0], [B, 3, c.dModel])
    const want2 = slice(full, [0, 3, 0], [B, 2, c.dModel])
    expect(maxAbsDiff(await y1.data(), await want1.data())).toBeLessThan(1e-12)
    expect(maxAbsDiff(await y2.data(), await want2.data())).toBeLessThan(1e-12)
    for (let t = 5; t < T; t++) {
      const xt3 = row(x, t)
      const xt = reshape(xt3, [B, c.dModel])
      const yt = decode(params, cache, xt)
      expect(yt.shape).toEqual([B, c.dModel])
      const want = row(full, t)
      expect(maxAbsDiff(await yt.data(), await want.data())).toBeLessThan(1e-12)
      dispose([xt3, xt, yt, want])
    }
    const extra = row(x, 0)
    expect(() => decode(params, cache, extra)).toThrow(/full: holds 8 of maxLen 8/)
    dispose([params, x, full, first, second, y1, y2, want1, want2, extra])
  })
})
