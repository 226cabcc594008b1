import { dispose, memory, Rng, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { gatedDelta, gdnModel, laLTE, steSparseAttention } from '../src/index.js'

const base = { vocabSize: 16, dModel: 8, numLayers: 2, headDim: 4, attentionEvery: 2 }

describe('clear errors for bad input', () => {
  it('configs name the argument, what was expected and what came', () => {
    expect(() => laLTE({ ...base, window: 4 })).toThrow(
      /window \(>= the scorer's look-ahead 6\)' expected an integer >= 6, got 4/,
    )
    expect(() => laLTE({ ...base, headDim: 3 })).toThrow(/'headDim' expected a divisor of dModel=8, got 3/)
    expect(() => laLTE({ ...base, numKvHeads: 3 })).toThrow(
      /'numKvHeads' expected a divisor of numHeads=2, got 3/,
    )
    expect(() =>
      laLTE({ ...base, attention: { scorer: { hidden: 4, layers: 3, kernelSize: 4, dilation: 2 } } }),
    ).toThrow(/'kernelSize' expected an odd integer/)
    expect(() => laLTE({ ...base, numLayers: 0 })).toThrow(/'numLayers' expected an integer >= 1, got 0/)
  })

  it('tensors: wrong dtype or shape', () => {
    const live = memory().liveTensors
    const model = gdnModel(base)
    const params = model.init(new Rng(0))
    const floatTokens = tensor([[1, 2]], [1, 2])
    expect(() => model.forward(params, floatTokens)).toThrow(
      /forward: argument 'tokens' expected dtype int32, got float32/,
    )
    const cache = model.createCache({ batch: 2 })
    const one = tensor([1], [1], 'int32')
    expect(() => model.decode(params, cache, one)).toThrow(
      /decode: argument 'tokens' expected shape \[B=2\], got \[1\]/,
    )
    const rng = new Rng(1)
    const q = rng.normal([1, 2, 5, 4])
    const k = rng.normal([1, 2, 6, 4])
    const gb = rng.uniform([1, 2, 5], -1, 0)
    expect(() => gatedDelta(q, k, q, gb, gb, { kernel: 'fused' })).toThrow(
      /gatedDelta: argument 'k' expected shape \[B=1, H=2, T=5, Dk=4\], got \[1, 2, 6, 4\]/,
    )
    expect(() => gatedDelta(q, q, q, gb, gb, { kernel: 'fused', mode: 'recurrent' })).toThrow(
      /'kernel' expected 'auto' or 'portable' in recurrent mode/,
    )
    const r = rng.uniform([1, 3, 5])
    expect(() => steSparseAttention(q, q, q, r, { sinks: 1, window: 2, threshold: 0.5 })).toThrow(
      /steSparseAttention: argument 'r' expected shape \[B=1, Hk=2, T=5\], got \[1, 3, 5\]/,
    )
    dispose([
      params,
      floatTokens,
      one,
      q,
      k,
      gb,
      r,
      cache.layers.map((l) => (l.kind === 'gdn' ? l.state : [])),
    ])
    expect(memory().liveTensors).toBe(live)
  })
})
