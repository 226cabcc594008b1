import {
  attention,
  dispose,
  linear,
  memory,
  positionsFor,
  Rng,
  reshape,
  rope,
  runKernel,
  type Tensor,
  tensor,
  transpose,
} from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  computeFactors,
  disposeFactors,
  forward,
  init,
  materializeHeads,
  resolveConfig,
  type TpaConfig,
  type TpaParams,
} from '../src/index.js'
import { type HostParams, maxAbs, maxAbsDiff, refForward, refHeads } from './reference.js'

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
    rope: { rotaryDim: 4, direction: -1 },
  },
  { variant: 'tpa-kvonly', dModel: 12, heads: 4, headDim: 6, dtype: F64, rope: { base: 500 } },
  { variant: 'mha', dModel: 12, heads: 4, headDim: 6, dtype: F64 },
  { variant: 'gqa', dModel: 12, heads: 4, kvHeads: 2, headDim: 6, dtype: F64 },
  { variant: 'mqa', dModel: 12, heads: 4, headDim: 6, dtype: F64, rope: false },
]

async function host(params: TpaParams): Promise<HostParams> {
  const out: HostParams = {}
  for (const [k, t] of Object.entries(params)) out[k] = Float64Array.from(await t.data())
  return out
}

const label = (c: TpaConfig) =>
  `${c.variant}${c.qRank ? ` R=${c.qRank}/${c.kRank}/${c.vRank}` : ''}${c.rope === false ? ' no-rope' : c.rope?.direction === -1 ? ' rope-1' : ''}`

describe('forward against the explicit outer-product construction (float64, CPU)', () => {
  for (const config of CONFIGS) {
    it(label(config), async () => {
      const before = memory().liveTensors
      const c = resolveConfig(config)
      const rng = new Rng(7)
      const params = init(c, rng)
      const B = 2
      const T = 5
      const x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
      const y = forward(params, x)
      const want = refForward(c, await host(params), Float64Array.from(await x.data()), B, T)
      const got = await y.data()
      expect(maxAbs(want)).toBeGreaterThan(1e-2)
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-12)
      dispose([params, x, y])
      expect(memory().liveTensors).toBe(before)
    })
  }

  it('takes explicit positions ([B, T]) and non-causal attention', async () => {
    const c = resolveConfig(CONFIGS[0])
    const rng = new Rng(8)
    const params = init(c, rng)
    const B = 1
    const T = 4
    const pos = [3, 7, 8, 20]
    const x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
    const positions = tensor(pos, [B, T], 'int32')
    for (const causal of [true, false]) {
      const y = forward(params, x, { positions, causal })
      const want = refForward(c, await host(params), Float64Array.from(await x.data()), B, T, {
        positions: pos,
        causal,
      })
      expect(maxAbsDiff(await y.data(), want)).toBeLessThan(1e-12)
      y.dispose()
    }
    dispose([params, x, positions])
  })
})

/** MHA / GQA / MQA written directly with core ops: q, k, v projections, RoPE, attention. */
function directAttention(params: TpaParams, x: Tensor, heads: number, kvHeads: number, d: number): Tensor {
  const [B, T] = x.shape
  const pos = tensor(
    Array.from({ length: T }, (_, t) => t),
    [T],
    'int32',
  )
  const headsOf = (w: Tensor, n: number, rotate: boolean) => {
    const flat = linear(x, w)
    const split = reshape(flat, [B, T, n, d])
    const bhtd = transpose(split, [0, 2, 1, 3])
    const out = rotate ? rope(bhtd, pos) : reshape(bhtd, bhtd.shape)
    dispose([flat, split, bhtd])
    return out
  }
  const q = headsOf(params.W_q, heads, true)
  const k = headsOf(params.W_k, kvHeads, true)
  const v = headsOf(params.W_v, kvHeads, false)
  const o = attention(q, k, v, { causal: true })
  const oT = transpose(o, [0, 2, 1, 3])
  const flat = reshape(oT, [B, T, heads * d])
  const y = linear(flat, params.c_proj)
  dispose([pos, q, k, v, o, oT, flat])
  return y
}

describe('special cases equal direct implementations', () => {
  for (const [variant, kvHeads] of [
    ['mha', 4],
    ['gqa', 2],
    ['mqa', 1],
  ] as const) {
    it(`${variant} (h=4, G=${kvHeads})`, async () => {
      const config: TpaConfig = {
        variant,
        dModel: 16,
        heads: 4,
        headDim: 8,
        dtype: F64,
        ...(variant === 'gqa' ? { kvHeads } : {}),
      }
      const rng = new Rng(11)
      const params = init(config, rng)
      expect(params.W_k.shape).toEqual([kvHeads * 8, 16])
      const x = rng.normal([2, 6, 16], 0, 1, { dtype: F64 })
      const y = forward(params, x)
      const want = directAttention(params, x, 4, kvHeads, 8)
      expect(maxAbs(await want.data())).toBeGreaterThan(1e-2)
      expect(maxAbsDiff(await y.data(), await want.data())).toBeLessThan(1e-12)
      dispose([params, x, y, want])
    })
  }
})

describe('RoPE on the B factors equals RoPE on the materialised Q and K', () => {
  for (const config of CONFIGS.filter((c) => c.rope !== false)) {
    it(label(config), async () => {
      const c = resolveConfig(config)
      const rng = new Rng(13)
      const params = init(c, rng)
      const B = 2
      const T = 5
      const x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
      const start = 3
      const onFactors = computeFactors(params, c, x, start)
      const plain = computeFactors(params, c, x, start, { rope: false })
      const pos = tensor(
        Array.from({ length: T }, (_, t) => start + t),
        [T],
        'int32',
      )
      for (const w of ['q', 'k'] as const) {
        const fromFactors = materializeHeads(onFactors[w])
        const raw = materializeHeads(plain[w])
        const [, H] = raw.shape
        const full = positionsFor('test', 'positions', pos, B, H, T)
        const rope = c.rope!
        const [rotated] = runKernel(
          'rope',
          { x: raw, positions: full },
          { base: rope.base, rotaryDim: rope.rotaryDim, inverse: rope.direction === -1 },
        )
        const got = await fromFactors.data()
        expect(maxAbs(got)).toBeGreaterThan(1e-2)
        expect(maxAbsDiff(got, await rotated.data())).toBeLessThan(1e-12)
        dispose([fromFactors, raw, full, rotated])
      }
      // And against the host construction that rotates each rank row before the outer product.
      const ref = refHeads(c, await host(params), Float64Array.from(await x.data()), B, T, [3, 4, 5, 6, 7])
      const q = materializeHeads(onFactors.q)
      const qd = await q.data()
      const [, H, , D] = q.shape
      let err = 0
      for (let b = 0; b < B; b++)
        for (let i = 0; i < H; i++)
          for (let t = 0; t < T; t++)
            for (let j = 0; j < D; j++)
              err = Math.max(err, Math.abs(qd[((b * H + i) * T + t) * D + j] - ref.q[b][t][i][j]))
      expect(err).toBeLessThan(1e-12)
      dispose([q, x, params, pos])
      disposeFactors(onFactors)
      disposeFactors(plain)
    })
  }
})
