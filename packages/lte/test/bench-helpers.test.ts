import { dispose, getBackend, memory, Rng } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  benchDecode,
  benchGdnForwardBackward,
  cachedPositions,
  checkFusedGdn,
  disposeCache,
  fullAttentionModel,
  laLTE,
  type ModelOptions,
  syntheticDecodeCache,
} from '../src/index.js'

const opts: ModelOptions = {
  vocabSize: 32,
  dModel: 16,
  numLayers: 4,
  headDim: 8,
  attentionEvery: 2,
  sinks: 2,
  window: 8,
  poolSize: 6,
  mlpHidden: 16,
  attention: { scorer: { hidden: 4, layers: 3, kernelSize: 3, dilation: 2 } },
}

describe('benchmark helpers (CPU, tiny sizes)', () => {
  it('GDN forward+backward timing reports tokens/s for the fused and portable kernels', async () => {
    const live = memory().liveTensors
    for (const kernel of ['fused', 'portable'] as const) {
      const r = await benchGdnForwardBackward(
        getBackend(),
        { batch: 1, heads: 2, seqLen: 40, headDim: 8, chunkSize: 16 },
        kernel,
        new Rng(1),
        { warmup: 1, iters: 2 },
      )
      expect(r.tokensPerSecond).toBeGreaterThan(0)
      expect(r.cost.flops).toBeGreaterThan(0)
    }
    expect(memory().liveTensors).toBe(live)
  })

  it('synthetic caches at a context: laLTE constant in bytes, full attention linear; decode runs from them', async () => {
    const live = memory().liveTensors
    const rows: Record<string, number[]> = {}
    for (const build of [laLTE, fullAttentionModel]) {
      const model = build(opts)
      const params = model.init(new Rng(2))
      rows[model.config.name] = []
      for (const L of [40, 80, 160]) {
        const cache = syntheticDecodeCache(model, { batch: 1, contextLen: L, rng: new Rng(L) })
        if (model.config.name === 'laLTE') {
          const entry = cache.layers[1]
          if (entry.kind === 'gdn') throw new Error('layer 1 should be attention')
          const pos = [...(await cachedPositions(entry.cache))].slice(0, 16) // KV head 0 of 2
          // Sinks 0..1, the last `window` tokens, and a full pool of earlier positions.
          expect(pos.slice(0, 2)).toEqual([0, 1])
          expect(pos.slice(2, 10).sort((a, b) => a - b)).toEqual(
            Array.from({ length: 8 }, (_, i) => L - 8 + i),
          )
          expect(pos.slice(10).every((p) => p >= 2 && p < L - 8)).toBe(true)
        }
        const r = await benchDecode(getBackend(), model, params, cache, { warmup: 1, iters: 2 })
        expect(r.contextLen).toBe(L)
        expect(r.cacheBytes).toBe(model.cost({ batch: 1, seqLen: 1 }).cacheBytes(cache.position))
        rows[model.config.name].push(r.cacheBytes)
        disposeCache(cache)
      }
      dispose(params)
    }
    expect(new Set(rows.laLTE).size).toBe(1)
    expect(rows.Transformer[2]).toBeGreaterThan(rows.Transformer[1])
    expect(rows.Transformer[1]).toBeGreaterThan(rows.Transformer[0])
    expect(memory().liveTensors).toBe(live)
  })
})

describe('correctness helpers used on the H100', () => {
  it('checkFusedGdn and checkFusedDecodeAttention compare float32 runs with the float64 CPU reference', async () => {
    const live = memory().liveTensors
    const errors = await checkFusedGdn(getBackend(), {
      batch: 1,
      heads: 1,
      seqLen: 70,
      headDim: 8,
      chunkSize: 32,
    })
    expect(Object.keys(errors)).toEqual(['out', 'finalState', 'dq', 'dk', 'dv', 'dg', 'dbeta', 'dstate'])
    for (const [name, e] of Object.entries(errors)) {
      expect(e, name).toBeLessThan(1e-5)
      expect(e, `${name} (float32 rounding must show)`).toBeGreaterThan(0)
    }
    expect(memory().liveTensors).toBe(live)
  })
})
