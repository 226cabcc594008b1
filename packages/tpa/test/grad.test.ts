import { dispose, memory, mul, Rng, sum, type Tensor, valueAndGrad } from '@attnkit/core'
import { numericGradient } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { forward, init, resolveConfig, type TpaConfig } from '../src/index.js'

const F64 = 'float64' as const

// Small enough that central differences over every weight stay quick on two cores.
const CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 6, heads: 2, headDim: 4, qRank: 3, kRank: 2, vRank: 2, dtype: F64 },
  {
    variant: 'tpa',
    dModel: 5,
    heads: 3,
    headDim: 4,
    qRank: 2,
    kRank: 1,
    vRank: 2,
    dtype: F64,
    rope: { direction: -1 },
  },
  { variant: 'tpa-kvonly', dModel: 6, heads: 2, headDim: 4, dtype: F64 },
  { variant: 'gqa', dModel: 6, heads: 4, kvHeads: 2, headDim: 2, dtype: F64 },
]

describe('gradients against central finite differences (float64, CPU)', () => {
  for (const config of CONFIGS) {
    it(`${config.variant}${config.qRank ? ` R=${config.qRank}/${config.kRank}/${config.vRank}` : ''}`, () => {
      const before = memory().liveTensors
      const c = resolveConfig(config)
      const rng = new Rng(31)
      const B = 2
      const T = 4
      const params: Record<string, Tensor> = { ...init(c, rng) }
      params.x = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
      const w = rng.normal([B, T, c.dModel], 0, 1, { dtype: F64 })
      const loss = (p: Record<string, Tensor>) => sum(mul(forward(p, p.x, { config: c }), w))
      const { value, grads } = valueAndGrad(loss)(params)
      const numeric = numericGradient(loss, params)
      for (const [name, g] of Object.entries(grads)) {
        const a = g.dataSync()
        const e = numeric[name]
        let worst = 0
        let scale = 0
        for (let i = 0; i < a.length; i++) {
          worst = Math.max(worst, Math.abs(a[i] - e[i]) - 1e-6 * Math.abs(e[i]))
          scale = Math.max(scale, Math.abs(e[i]))
        }
        expect(scale, `${name} has a non-trivial gradient`).toBeGreaterThan(1e-3)
        expect(worst, `${name}: analytic vs numeric`).toBeLessThan(1e-8)
      }
      dispose([value, grads, params, w])
      expect(memory().liveTensors).toBe(before)
    })
  }
})
