import { dispose, memory, parseSafetensors, Rng, serializeHostTensors, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  cost,
  createCache,
  forward,
  init,
  loadParams,
  paramSpecs,
  recordLayout,
  resolveConfig,
  saveParams,
  type TpaConfig,
  tensorNames,
} from '../src/index.js'
import { maxAbsDiff, refForward } from './reference.js'

describe('cost', () => {
  const base = { dModel: 1024, heads: 16, headDim: 64 }
  it('KV-cache values per token: (R_K + R_V)(h + d_h) against 2 h d_h', () => {
    const table: [TpaConfig, number][] = [
      [{ ...base, variant: 'tpa' }, (2 + 2) * (16 + 64)],
      [{ ...base, variant: 'tpa', kRank: 1, vRank: 3 }, (1 + 3) * (16 + 64)],
      [{ ...base, variant: 'tpa-kvonly' }, 320],
      [{ ...base, variant: 'mha' }, 2 * 16 * 64],
      [{ ...base, variant: 'gqa', kvHeads: 4 }, 2 * 4 * 64],
      [{ ...base, variant: 'mqa' }, 2 * 64],
    ]
    for (const [config, values] of table) {
      const k = cost(config, { seqLen: 100, batch: 3 }).kvCache
      expect(k.valuesPerToken.tpa).toBe(values)
      expect(k.valuesPerToken.mha).toBe(2048)
      expect(k.bytesPerToken.tpa).toBe(values * 4)
      expect(k.bytes.tpa).toBe(values * 4 * 300)
      expect(k.ratio).toBeCloseTo(2048 / values, 12)
      expect(recordLayout(resolveConfig(config)).size).toBe(values)
    }
    expect(cost({ ...base, dtype: 'float16' }, { seqLen: 1 }).kvCache.bytesPerToken).toEqual({
      tpa: 640,
      mha: 4096,
    })
  })

  it('matches the cache the package actually allocates', () => {
    const config: TpaConfig = { dModel: 8, heads: 2, headDim: 4 }
    using cache = createCache(config, { batch: 2, maxLen: 5 })
    const k = cost(config, { seqLen: 5, batch: 2 }).kvCache
    expect(cache.store.size * 4).toBe(k.bytes.tpa)
    expect(cache.bytes().perToken).toBe(k.bytesPerToken.tpa)
  })

  it('counts FLOPs from the shapes', () => {
    const c: TpaConfig = { dModel: 1024, heads: 16, headDim: 64 }
    const L = 4096
    const f = cost(c, { seqLen: L, batch: 2 })
    // decode attention: per token per head 2 R_K d + 2 R_K + 5 + 2 R_V + 2 R_V d
    expect(f.decodeAttention.flops).toBe(2 * L * 16 * (2 * 2 * 64 + 4 + 5 + 4 + 2 * 2 * 64))
    expect(f.decodeAttention.bytes).toBe(2 * (L * 320 + 2 * 16 * 64) * 4)
    // projections alone: 2 * tokens * sum(out) * in, plus c_proj
    const proj =
      2 * 2 * L * (16 * 6 + 6 * 64 + 16 * 2 + 2 * 64 + 16 * 2 + 2 * 64) * 1024 + 2 * 2 * L * 1024 * 1024
    expect(f.forward.flops).toBeGreaterThan(proj)
    expect(f.decodeStep.flops).toBeGreaterThan(f.decodeAttention.flops)
    expect(() => cost(c, { seqLen: 0 })).toThrow(/'seqLen' expected a positive integer, got 0/)
  })
})

describe('weights through safetensors', () => {
  it('round-trips with the config in the metadata, names as documented', async () => {
    const before = memory().liveTensors
    const config: TpaConfig = {
      variant: 'tpa',
      dModel: 8,
      heads: 2,
      headDim: 4,
      qRank: 3,
      rope: { base: 500 },
    }
    const params = init(config, new Rng(41))
    const bytes = await saveParams(params, { prefix: 'layers.0.attn.' })
    const parsed = parseSafetensors(bytes)
    expect([...parsed.tensors.keys()].sort()).toEqual(
      ['W_A_k', 'W_A_q', 'W_A_v', 'W_B_k', 'W_B_q', 'W_B_v', 'c_proj'].map(
        (k) => `layers.0.attn.${k}.weight`,
      ),
    )
    expect(parsed.tensors.get('layers.0.attn.W_A_q.weight')?.shape).toEqual([2 * 3, 8])
    expect(parsed.tensors.get('layers.0.attn.W_B_q.weight')?.shape).toEqual([3 * 4, 8])
    const loaded = loadParams(bytes, { prefix: 'layers.0.attn.' })
    for (const [k, t] of Object.entries(params))
      expect(maxAbsDiff(await loaded[k].data(), await t.data())).toBe(0)
    const x = new Rng(42).normal([1, 3, 8])
    const y1 = forward(params, x)
    const y2 = forward(loaded, x)
    expect(maxAbsDiff(await y1.data(), await y2.data())).toBe(0)
    dispose([params, loaded, x, y1, y2])
    expect(memory().liveTensors).toBe(before)
  })

  it('reads PyTorch-layout weights ([out, in], A viewed [h, R], B viewed [R, d_h]) with renamed tensors', async () => {
    // A file as torch would write it for the T6 layout, built from plain arrays.
    const config = resolveConfig({ variant: 'tpa-kvonly', dModel: 6, heads: 2, headDim: 4, dtype: 'float64' })
    const rng = new Rng(43)
    const host: Record<string, Float64Array> = {}
    const tensors: Record<string, { dtype: 'bfloat16'; shape: number[]; values: Float32Array }> = {}
    const names = { W_q: 'q_proj.weight', c_proj: 'o_proj.weight' }
    for (const s of paramSpecs(config)) {
      const values = Float32Array.from(rng.normalArray(s.shape[0] * s.shape[1]), (v) => v / 3)
      const name = tensorNames(config, { names })[s.key]
      tensors[name] = { dtype: 'bfloat16', shape: s.shape, values }
    }
    const bytes = serializeHostTensors(tensors)
    const params = loadParams(bytes, { config, names })
    for (const s of paramSpecs(config)) host[s.key] = Float64Array.from(await params[s.key].data())
    // bfloat16 in the file, converted to the config's float64: the values are the bf16-rounded ones.
    expect(maxAbsDiff(host.W_q, tensors['q_proj.weight'].values)).toBeLessThan(1e-2)
    const xv = rng.normalArray(2 * 3 * 6)
    const x = tensor(xv, [2, 3, 6], 'float64')
    const y = forward(params, x)
    expect(maxAbsDiff(await y.data(), refForward(config, host, xv, 2, 3))).toBeLessThan(1e-12)
    dispose([params, x, y])
  })

  it('says which tensor is missing or mis-shaped', async () => {
    const config: TpaConfig = { variant: 'mha', dModel: 8, heads: 2, headDim: 4 }
    const bad = serializeHostTensors({
      'W_q.weight': { dtype: 'float32', shape: [8, 8], values: new Float32Array(64).fill(0.5) },
      'W_k.weight': { dtype: 'float32', shape: [4, 8], values: new Float32Array(32).fill(0.5) },
    })
    expect(() => loadParams(bad, { config })).toThrow(/'W_k.weight' expected shape \[8, 8\]/)
    const missing = serializeHostTensors({
      'W_q.weight': { dtype: 'float32', shape: [8, 8], values: new Float32Array(64).fill(0.5) },
    })
    expect(() => loadParams(missing, { config })).toThrow(/'W_k.weight' \(params.W_k\) is missing/)
    expect(() => loadParams(missing)).toThrow(/no config/)
  })
})
