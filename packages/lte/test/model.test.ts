import { dispose, memory, Rng, tensor, valueAndGrad } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  cacheBytes,
  disposeCache,
  flattenParams,
  fullAttentionModel,
  gdnModel,
  gdnSwaModel,
  type LteModel,
  laLTE,
  type ModelOptions,
} from '../src/index.js'
import { maxNormErr } from './helpers.js'

const opts: ModelOptions = {
  vocabSize: 23,
  dModel: 16,
  numLayers: 4,
  headDim: 8,
  numKvHeads: 1,
  attentionEvery: 2,
  sinks: 2,
  window: 6,
  poolSize: 64,
  mlpHidden: 24,
  attention: { scorer: { hidden: 8, layers: 3, kernelSize: 3, dilation: 2 } },
  gdn: { chunkSize: 8 },
}
const builders: [string, (o: ModelOptions) => LteModel][] = [
  ['laLTE', laLTE],
  ['GDN', gdnModel],
  ['GDN+SWA', gdnSwaModel],
  ['Transformer', fullAttentionModel],
]
const dtype = 'float64' as const

describe('models (float64, CPU)', () => {
  it('layouts: the same width and depth, mixers as the comparison needs', () => {
    expect(laLTE(opts).config.layers).toEqual(['gdn', 'lte', 'gdn', 'lte'])
    expect(gdnSwaModel(opts).config.layers).toEqual(['gdn', 'swa', 'gdn', 'swa'])
    expect(gdnModel(opts).config.layers).toEqual(['gdn', 'gdn', 'gdn', 'gdn'])
    expect(fullAttentionModel(opts).config.layers).toEqual(['full', 'full', 'full', 'full'])
    // The default: the paper's reference layout, GDN and LTE alternating (LTE at 1, 3, 5, 7).
    expect(laLTE({ ...opts, attentionEvery: undefined, numLayers: 8 }).config.layers.join(',')).toBe(
      'gdn,lte,gdn,lte,gdn,lte,gdn,lte',
    )
    expect(laLTE({ ...opts, attentionEvery: 4, numLayers: 8 }).config.layers.join(',')).toBe(
      'gdn,gdn,gdn,lte,gdn,gdn,gdn,lte',
    )
  })

  for (const [name, build] of builders) {
    it(`${name}: init matches parameterShapes; decode equals forward; loss has gradients; nothing leaks`, async () => {
      const live = memory().liveTensors
      const model = build(opts)
      const rng = new Rng(21)
      const params = model.init(rng, { dtype })
      const flat = flattenParams(params)
      const shapes = model.parameterShapes()
      expect(Object.keys(flat).sort()).toEqual([...shapes.keys()].sort())
      for (const [n, t] of Object.entries(flat)) expect(t.shape, n).toEqual(shapes.get(n))
      const T = 20
      const ids = rng.randint([2, T], 0, opts.vocabSize)
      const { logits, penalty } = model.forward(params, ids, { training: false })
      expect(logits.shape).toEqual([2, T, opts.vocabSize])
      const pen = await penalty.item()
      if (name === 'laLTE') expect(pen).toBeGreaterThan(0)
      else expect(pen).toBe(0)
      // Token-by-token decode reproduces the full forward (the pool is large enough here).
      const host = (await ids.data()) as Int32Array
      const ref = (await logits.data()) as Float64Array
      const cache = model.createCache({ batch: 2, dtype })
      let err = 0
      for (let t = 0; t < T; t++) {
        const tok = tensor(Int32Array.from([host[t], host[T + t]]), [2], { dtype: 'int32' })
        const out = model.decode(params, cache, tok)
        const v = (await out.data()) as Float64Array
        for (let b = 0; b < 2; b++)
          for (let j = 0; j < opts.vocabSize; j++)
            err = Math.max(err, Math.abs(v[b * opts.vocabSize + j] - ref[(b * T + t) * opts.vocabSize + j]))
        dispose([tok, out])
      }
      expect(err).toBeLessThan(1e-11)
      // Training step: loss (CE + penalty) differentiable in every parameter.
      const targets = rng.randint([2, T], 0, opts.vocabSize)
      const { value, grads } = valueAndGrad((p: typeof params) => model.loss(p, ids, targets))(params)
      expect(Number.isFinite(await value.item())).toBe(true)
      const gflat = flattenParams(grads)
      let zeroGrads = 0
      for (const g of Object.values(gflat))
        if ((g.dataSync() as Float64Array).every((x) => x === 0)) zeroGrads++
      expect(zeroGrads).toBe(0)
      dispose([params, ids, logits, penalty, targets, value, grads])
      disposeCache(cache)
      expect(memory().liveTensors).toBe(live)
    })
  }

  it('decode memory: flat for laLTE, GDN and GDN+SWA; growing for full attention', async () => {
    const live = memory().liveTensors
    const small = { ...opts, poolSize: 4, dModel: 8, headDim: 4, mlpHidden: 8 }
    for (const [name, build] of builders) {
      const model = build(small)
      const params = model.init(new Rng(3))
      const cache = model.createCache({ batch: 1 })
      const bytesAt: number[] = []
      const liveAt: number[] = []
      const rng = new Rng(4)
      for (let t = 0; t < 48; t++) {
        const tok = rng.randint([1], 0, small.vocabSize)
        const out = model.decode(params, cache, tok)
        dispose([tok, out])
        bytesAt.push(cacheBytes(cache))
        liveAt.push(memory().liveBytes)
      }
      if (name === 'Transformer') {
        expect(bytesAt[47], name).toBeGreaterThan(bytesAt[10])
        expect(liveAt[47], name).toBeGreaterThan(liveAt[10])
      } else {
        expect(new Set(bytesAt).size, `${name} cache bytes`).toBe(1)
        expect(new Set(liveAt).size, `${name} live bytes`).toBe(1)
      }
      const predicted = model.cost({ batch: 1, seqLen: 48 }).cacheBytes(48)
      expect(predicted, `${name} analytic cache bytes`).toBe(bytesAt[47])
      dispose(params)
      disposeCache(cache)
    }
    expect(memory().liveTensors).toBe(live)
  })

  it('saveParams / loadParams round-trip through safetensors and reject mismatched files', async () => {
    const live = memory().liveTensors
    const model = laLTE(opts)
    const params = model.init(new Rng(5))
    const bytes = await model.saveParams(params)
    const loaded = model.loadParams(bytes)
    const ids = new Rng(6).randint([1, 12], 0, opts.vocabSize)
    const a = model.forward(params, ids, { training: false })
    const b = model.forward(loaded, ids, { training: false })
    expect(await maxNormErr(a.logits, b.logits)).toBe(0)
    expect(() => gdnModel(opts).loadParams(bytes)).toThrow(
      /does not match model 'GDN'.*missing 'model.layers.1.attn.a_proj.weight'/,
    )
    expect(() => laLTE({ ...opts, dModel: 24 }).loadParams(bytes)).toThrow(
      /has shape \[23,16\], expected \[23,24\]/,
    )
    dispose([params, loaded, ids, a, b])
    expect(memory().liveTensors).toBe(live)
  })
})
