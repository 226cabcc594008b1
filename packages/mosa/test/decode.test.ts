import { dispose, memory, slice, type Tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  createCache,
  decode,
  decodeCacheBytes,
  decodeWithInfo,
  disposeCache,
  evaluateDecode,
  forward,
  type MosaConfig,
  prefill,
  withConfig,
} from '../src/index.js'
import { problem, relError } from './helpers.js'
import { hostParams } from './reference.js'

const config: MosaConfig = {
  dModel: 12,
  headDim: 4,
  denseHeads: 1,
  sparseHeads: 3,
  sparsity: 4,
  dtype: 'float64',
}

function rows(y: Tensor, from: number, to: number): Float64Array {
  const [B, T, C] = y.shape
  const v = y.dataSync()
  const out: number[] = []
  for (let b = 0; b < B; b++)
    for (let t = from; t < to; t++) for (let c = 0; c < C; c++) out.push(v[(b * T + t) * C + c])
  return Float64Array.from(out)
}

function decodeAll(
  p: ReturnType<typeof problem>,
  P: number,
  cacheOpts: { capacity?: number; thresholds?: number[] },
) {
  const { B, T, x, params } = p
  const C = p.config.dModel
  const cache = createCache(p.config, { batch: B, maxLen: T, ...cacheOpts })
  const prompt = slice(x, [0, 0, 0], [B, P, C])
  const yPrefill = prefill(params, cache, prompt)
  const steps: Float64Array[] = []
  const admitted: number[][] = []
  for (let t = P; t < T; t++) {
    const xt = slice(x, [0, t, 0], [B, 1, C])
    const r = decodeWithInfo(params, cache, xt)
    steps.push(Float64Array.from(r.y.dataSync()))
    admitted.push(Array.from(r.admitted?.dataSync() ?? []))
    dispose([xt, r])
  }
  dispose([prompt])
  // steps[t][b*C + c] -> [B, T-P, C]
  const y = new Float64Array(B * (T - P) * C)
  steps.forEach((s, i) => {
    for (let b = 0; b < B; b++) y.set(s.subarray(b * C, (b + 1) * C), (b * (T - P) + i) * C)
  })
  return { cache, yPrefill, y, admitted }
}

describe('decode', () => {
  it('with every token admitted and room for all (k = T), decode reproduces the full forward', () => {
    const cfg = { ...config, sparsity: 1 }
    const p = problem(cfg, 2, 12, 3)
    const live = memory().liveTensors
    const { cache, yPrefill, y } = decodeAll(p, 5, { thresholds: [0, 0, 0] })
    const yFull = forward(p.params, p.x, { path: 'portable' })
    expect(relError(y, rows(yFull, 5, 12))).toBeLessThan(1e-12)
    expect(relError(yPrefill.dataSync(), rows(yFull, 0, 5))).toBeLessThan(1e-12)
    dispose([yFull, yPrefill])
    disposeCache(cache)
    expect(memory().liveTensors).toBe(live)
    dispose([p.params, p.x])
  })

  it('a threshold no score clears leaves only the dense heads', () => {
    const p = problem(config, 2, 10, 4)
    const { cache, y, admitted } = decodeAll(p, 4, { thresholds: [1.5, 1.5, 1.5] })
    expect(admitted.flat().every((a) => a === 0)).toBe(true)
    const denseOnly = forward(withConfig({ ...config, sparseHeads: 0 }, { dense: p.params.dense }), p.x, {
      path: 'portable',
    })
    expect(relError(y, rows(denseOnly, 4, 10))).toBeLessThan(1e-12)
    denseOnly.dispose()
    disposeCache(cache)
    dispose([p.params, p.x])
  })

  it('a full cache keeps the highest scores seen (lowest-score eviction)', () => {
    const p = problem({ ...config, denseHeads: 0 }, 2, 14, 5)
    const { cache, admitted } = decodeAll(p, 3, { capacity: 2, thresholds: [0, 0, 0] })
    // Router scores from the host parameters, independently of the package.
    const hp = hostParams(p.params)
    const C = config.dModel
    const scores = cache.scores!.dataSync()
    const positions = cache.positions!.dataSync()
    for (let b = 0; b < 2; b++) {
      for (let h = 0; h < 3; h++) {
        const r = Array.from({ length: 14 }, (_, t) => {
          let s = 0
          for (let c = 0; c < C; c++) s += hp.router![h * C + c] * p.xHost[(b * 14 + t) * C + c]
          return 1 / (1 + Math.exp(-s))
        })
        // The prefill keeps its top-1 (k = floor(3/4) = 1), then every token competes for 2 slots.
        const prefillBest = [0, 1, 2].sort((i, j) => r[j] - r[i] || i - j)[0]
        const candidates = [prefillBest, ...Array.from({ length: 11 }, (_, i) => i + 3)]
        const best = candidates.sort((i, j) => r[j] - r[i] || i - j).slice(0, 2)
        const slots = [0, 1].map((s) => positions[(b * 3 + h) * 2 + s])
        expect(
          slots.slice().sort((i, j) => i - j),
          `b${b} h${h}`,
        ).toEqual(best.sort((i, j) => i - j))
        for (let s = 0; s < 2; s++) expect(scores[(b * 3 + h) * 2 + s]).toBeCloseTo(r[slots[s]], 6)
      }
    }
    expect(admitted.flat().some((a) => a === 0)).toBe(true) // some tokens lost to fuller caches
    disposeCache(cache)
    dispose([p.params, p.x])
  })

  it('cache bytes match the cost model; clear errors', () => {
    const cache = createCache(config, { batch: 3, maxLen: 20 })
    const bytes = [
      cache.denseK,
      cache.denseV,
      cache.sparseK,
      cache.sparseV,
      cache.scores,
      cache.positions,
    ].reduce((n, t) => n + t!.size * (t!.dtype === 'float64' ? 8 : 4), 0)
    expect(bytes).toBe(decodeCacheBytes(config, { batch: 3, maxLen: 20 }))
    const p = problem(config, 3, 4, 1)
    expect(() => decode(p.params, cache, slice(p.x, [0, 0, 0], [3, 1, 12]))).toThrow(/no thresholds/)
    expect(() => createCache(config, { batch: 0, maxLen: 4 })).toThrow(
      /'batch' expected an integer >= 1, got 0/,
    )
    disposeCache(cache)
    dispose([p.params, p.x])
  })

  it('evaluateDecode measures admission, agreement and cache size', async () => {
    const p = problem({ ...config, denseHeads: 0, sparseHeads: 4 }, 2, 48, 6)
    const e = await evaluateDecode(p.params, p.x, { prefillLen: 16 })
    expect(e.forwardSelectionRate).toBeCloseTo(12 / 48 / 1, 1)
    expect(e.admissionRate).toBeGreaterThan(0)
    expect(e.selection.agreement).toBeGreaterThan(0.5)
    expect(e.relErrorVsFullForward).toBeGreaterThan(0)
    expect(e.cacheBytesPerToken).toBeLessThan(e.denseMhaBytesPerToken)
    dispose([p.params, p.x])
  })
})
