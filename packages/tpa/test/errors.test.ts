import { dispose, memory, Rng, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { createCache, decode, factorAttention, forward, init, prefill, resolveConfig } from '../src/index.js'

describe('errors name the argument, the expectation and what came', () => {
  it('config', () => {
    expect(() => resolveConfig({ dModel: 8, heads: 0, headDim: 4 })).toThrow(
      /'heads' expected a positive integer, got 0/,
    )
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 4, variant: 'gqa', kvHeads: 3 })).toThrow(
      /'kvHeads' expected a divisor of heads \(4\), got 3/,
    )
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 4, variant: 'gqa' })).toThrow(
      /'kvHeads' expected a positive integer/,
    )
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 4, variant: 'mha', kRank: 2 })).toThrow(
      /'kRank' does not apply to variant 'mha'/,
    )
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 6, rope: { rotaryDim: 3 } })).toThrow(
      /'rope.rotaryDim' expected an even integer in \[2, 6\], got 3/,
    )
    // @ts-expect-error: not a variant
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 4, variant: 'mla' })).toThrow(
      /'variant' expected one of/,
    )
    expect(() => resolveConfig({ dModel: 8, heads: 4, headDim: 4, dtype: 'int32' })).toThrow(
      /'dtype' expected a float dtype/,
    )
  })

  it('inputs, params, cache; nothing leaks on the error paths', () => {
    const before = memory().liveTensors
    const config = { dModel: 8, heads: 2, headDim: 4 }
    const rng = new Rng(51)
    const params = init(config, rng)
    const x = rng.normal([2, 3, 7])
    expect(() => forward(params, x)).toThrow(/argument 'x' expected shape \[batch, seq, 8\], got \[2, 3, 7\]/)
    const x64 = rng.normal([2, 3, 8], 0, 1, { dtype: 'float64' })
    expect(() => forward(params, x64)).toThrow(/expected dtype float32 \(the config's\), got float64/)
    const { W_A_q, ...partial } = params
    const good = rng.normal([2, 3, 8])
    expect(() => forward(partial, good, { config })).toThrow(/params.W_A_q is missing/)
    expect(() => forward({ ...partial }, good)).toThrow(/no config: pass opts.config/)
    const wrong = { ...params, c_proj: tensor(new Float32Array(8 * 7), [8, 7]) }
    expect(() => forward(wrong, good, { config })).toThrow(
      /params.c_proj expected shape \[8, 8\], got \[8, 7\]/,
    )

    expect(() => createCache(config, { batch: 2, maxLen: 0 })).toThrow(
      /'maxLen' expected a positive integer, got 0/,
    )
    const cache = createCache(config, { batch: 2, maxLen: 3 })
    const q = rng.normal([2, 2, 4])
    expect(() => factorAttention(q, cache)).toThrow(/the cache is empty/)
    const xt = rng.normal([3, 8])
    expect(() => decode(params, cache, xt)).toThrow(
      /argument 'xt' expected shape \[2, 8\] or \[2, 1, 8\], got \[3, 8\]/,
    )
    const other = init({ variant: 'mha', dModel: 8, heads: 2, headDim: 4 }, rng)
    const xt2 = rng.normal([2, 8])
    expect(() => decode(other, cache, xt2)).toThrow(
      /the cache was made for variant 'tpa'.*but params for 'mha'/,
    )
    const y = prefill(params, cache, good)
    expect(() => decode(params, cache, xt2)).toThrow(/full: holds 3 of maxLen 3 tokens, cannot append 1 more/)
    expect(() => factorAttention(q, cache, { impl: 'fused' })).toThrow(
      /impl 'fused' requested but no 'tpa.decodePartial' kernel for backend 'cpu'/,
    )
    // @ts-expect-error: not an impl
    expect(() => factorAttention(q, cache, { impl: 'fast' })).toThrow(
      /'impl' expected 'auto', 'fused' or 'portable', got fast/,
    )
    cache.dispose()
    expect(() => cache.records()).toThrow(/disposed cache/)
    dispose([params, x, x64, good, wrong.c_proj, q, xt, other, xt2, y])
    expect(memory().liveTensors).toBe(before)
  })
})
