import {
  type Backend,
  cast,
  type DType,
  dispose,
  listKernels,
  Rng,
  slice,
  type Tensor,
  toBackend,
} from '@attnkit/core'
import { afterAll, expect, it } from 'vitest'
import {
  createCache,
  type DecodeTuning,
  decode,
  decodeTuning,
  factorAttention,
  forward,
  init,
  portableFactorAttention,
  setDecodeTuning,
  type TpaConfig,
} from '../src/index.js'
import { liveOn, twinCaches } from './gpu-helpers.js'
import { maxAbs, maxAbsDiff } from './reference.js'

/** Tolerance on the max-normalised error of the fused output against the float32 portable path. */
const TOLERANCE: Partial<Record<DType, number>> = { float32: 2e-5, float16: 4e-3, bfloat16: 2e-2 }

/**
 * Registers tests (inside a describe) checking the fused cache write and factor-space decode on
 * `gpu` against the portable path on the CPU, for every config x dtype, with one split and with
 * many; plus a whole decode against the CPU forward when the backend has the core ops for it.
 */
export function fusedSuite(
  gpu: Backend | undefined,
  configs: TpaConfig[],
  dtypes: DType[],
  sizes = { store: 37, tail: 5 },
  extraTunings: { name: string; tuning: Partial<DecodeTuning> }[] = [],
) {
  const saved = gpu ? decodeTuning(gpu.name) : undefined
  afterAll(() => {
    if (gpu && saved) setDecodeTuning(gpu.name, saved)
  })
  for (const dtype of dtypes) {
    for (const base of configs) {
      const config = { ...base, dtype }
      const tunings = [
        { name: 'one split', tuning: { targetBlocks: 1, minTokensPerSplit: 1 << 20 } },
        { name: 'many splits', tuning: { targetBlocks: 16, minTokensPerSplit: 8 } },
        ...extraTunings,
      ]
      for (const { name: splitting, tuning } of tunings) {
        const name = `${config.variant} h=${config.heads} d=${config.headDim}${config.qRank ? ` R=${config.kRank}/${config.vRank}` : ''} ${dtype}, ${splitting}`
        it(name, async () => {
          const dev = gpu!
          setDecodeTuning(dev.name, { ...saved, ...tuning })
          const before = liveOn(dev.name)
          const rng = new Rng(61)
          const B = 2
          const maxLen = sizes.store + sizes.tail + 8
          const caches = await twinCaches(config, dev, rng, {
            batch: B,
            storeTokens: sizes.store,
            tailTokens: sizes.tail,
            maxLen,
          })
          // The fused cache write put the same rows in the device store.
          const R = caches.cpu.layout.size
          const storeDev = await caches.dev.store.data()
          const storeCpu = await caches.cpu.store.data()
          let rowsErr = 0
          for (let b = 0; b < B; b++)
            for (let e = 0; e < sizes.store * R; e++)
              rowsErr = Math.max(
                rowsErr,
                Math.abs(storeDev[b * maxLen * R + e] - storeCpu[b * maxLen * R + e]),
              )
          expect(rowsErr).toBe(0)

          const c = caches.dev.config
          const q16 = rng.normal([B, c.heads, c.headDim], 0, 1, { dtype })
          const q = cast(q16, 'float32')
          const qDev = await toBackend(q16, dev)
          const want = portableFactorAttention(q, caches.cpu)
          const got = factorAttention(qDev, caches.dev, { impl: 'fused' })
          expect(got.dtype).toBe(dtype)
          const w = await want.data()
          const g = await got.data()
          expect(maxAbs(w)).toBeGreaterThan(1e-2)
          expect(maxAbsDiff(g, w) / maxAbs(w)).toBeLessThan(TOLERANCE[dtype] ?? 1e-2)
          dispose([q16, q, qDev, want, got])
          caches.dispose()
          expect(liveOn(dev.name)).toBe(before)
        })
      }
    }
  }

  const needed = [
    'matmul',
    'transpose',
    'slice',
    'concat',
    'rope',
    'attention',
    'reduce',
    'softmax',
    'binary',
  ]
  const missing = gpu ? needed.filter((k) => !listKernels(gpu.name).includes(k)) : []
  it.skipIf(missing.length > 0)(
    `decode (fused attention and cache writes) equals the CPU forward${missing.length ? ` [skipped: the backend lacks ${missing.join(', ')}]` : ''}`,
    async () => {
      const dev = gpu!
      if (saved) setDecodeTuning(dev.name, saved)
      const config: TpaConfig = { variant: 'tpa', dModel: 16, heads: 4, headDim: 32 }
      const rng = new Rng(62)
      const params = init(config, rng)
      const B = 2
      const T = 6
      const x = rng.normal([B, T, 16])
      const full = forward(params, x)
      const paramsDev: Record<string, Tensor> = {}
      for (const [k, t] of Object.entries(params)) paramsDev[k] = await toBackend(t, dev)
      const xDev = await toBackend(x, dev)
      const cache = createCache(config, { batch: B, maxLen: T, tailCapacity: 4, backend: dev })
      for (let t = 0; t < T; t++) {
        const xt = slice(xDev, [0, t, 0], [B, 1, 16])
        const yt = decode(paramsDev, cache, xt, { impl: 'fused' })
        const want = slice(full, [0, t, 0], [B, 1, 16])
        const w = await want.data()
        expect(maxAbsDiff(await yt.data(), w) / maxAbs(w)).toBeLessThan(1e-4)
        dispose([xt, yt, want])
      }
      cache.dispose()
      dispose([params, paramsDev, x, xDev, full])
    },
  )
}
