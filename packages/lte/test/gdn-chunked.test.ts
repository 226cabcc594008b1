import { add, dispose, memory, mul, Rng, sigmoid, sum, type Tensor, valueAndGrad } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { gatedDelta } from '../src/index.js'
import { maxNormErr } from './helpers.js'

/** Random GDN inputs in float64 with unit-norm k (as the layer produces) and realistic gates. */
function inputs(rng: Rng, B: number, H: number, T: number, Dk: number, Dv: number) {
  const dtype = 'float64' as const
  const unit = (t: Tensor) => {
    const v = t.dataSync() as Float64Array
    for (let r = 0; r < v.length / Dk; r++) {
      let n = 0
      for (let i = 0; i < Dk; i++) n += v[r * Dk + i] ** 2
      for (let i = 0; i < Dk; i++) v[r * Dk + i] /= Math.sqrt(n)
    }
    return t
  }
  const gRaw = rng.uniform([B, H, T], -0.6, -0.01, { dtype })
  const bRaw = rng.normal([B, H, T], 0, 1.5, { dtype })
  const beta = sigmoid(bRaw)
  bRaw.dispose()
  return {
    q: rng.normal([B, H, T, Dk], 0, 1, { dtype }),
    k: unit(rng.normal([B, H, T, Dk], 0, 1, { dtype })),
    v: rng.normal([B, H, T, Dv], 0, 1, { dtype }),
    g: gRaw,
    beta,
    state: rng.normal([B, H, Dk, Dv], 0, 0.5, { dtype }),
  }
}

describe('chunkwise gated delta rule vs the recurrence (float64, CPU)', () => {
  for (const [T, C] of [
    [37, 8],
    [64, 16],
    [19, 64],
  ] as const) {
    it(`forward and backward agree (T=${T}, chunk ${C})`, async () => {
      const live = memory().liveTensors
      const rng = new Rng(T * 100 + C)
      const x = inputs(rng, 2, 2, T, 6, 5)
      const wOut = rng.normal([2, 2, T, 5], 0, 1, { dtype: 'float64' })
      const wState = rng.normal([2, 2, 6, 5], 0, 1, { dtype: 'float64' })
      const loss = (mode: 'chunked' | 'recurrent', kernel: 'fused' | 'portable') => (p: typeof x) => {
        const { out, state } = gatedDelta(p.q, p.k, p.v, p.g, p.beta, {
          initialState: p.state,
          mode,
          kernel,
          chunkSize: C,
        })
        return add(sum(mul(out, wOut)), sum(mul(state, wState)))
      }
      const a = valueAndGrad(loss('chunked', 'fused'))(x)
      const b = valueAndGrad(loss('recurrent', 'portable'))(x)
      expect(await maxNormErr(a.value, b.value)).toBeLessThan(1e-12)
      for (const name of Object.keys(x) as (keyof typeof x)[]) {
        const e = await maxNormErr(a.grads[name], b.grads[name])
        expect(e, name).toBeLessThan(1e-11)
      }
      dispose([a, b, x, wOut, wState])
      expect(memory().liveTensors).toBe(live)
    })
  }
})
