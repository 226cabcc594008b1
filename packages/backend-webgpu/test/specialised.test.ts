import { attention, dispose, Rng, sum, type Tensor, tensor, valueAndGrad } from '@attnkit/core'
import { allCases, compareArrays, runCase } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { createWebGPUBackend } from '../src/index.js'
import { attentionTuning } from '../src/kernels/attention.js'
import { startWebGPU } from './helpers.js'

const { gpu, cpu, reason } = await startWebGPU()
// A second device compiled as GPUs get their kernels (constant bounds, loops written out),
// although lavapipe is a CPU adapter and the other test files run it lean. The attention
// kernels differ most between the two: on GPUs the forward kernel indexes its register arrays
// by literals only, one copy of the loop body per head-dimension vec4 and per key of a tile.
// Head dims stay small here: lavapipe's LLVM takes minutes over the written-out forward kernel
// at head dim 64 (a GPU driver, seconds), and the generated code branches on nothing a larger
// head dim adds (vec4 or element loads, D4 != DV4, partial vec4s, tiles, masks, dtypes).
const specialised = gpu ? await createWebGPUBackend({ name: 'webgpu-specialised', lean: false }) : undefined

describe.skipIf(!specialised)(
  `webgpu compiled for GPUs (not lean) on this adapter${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    it('is not lean', () => {
      expect(specialised!.lean).toBe(false)
      expect(specialised!.info().details.compilation).toMatch(/specialised/)
    })

    // Every attention case of the suite below head dim 64 (GQA, masks, positions) at every dtype.
    const cases = allCases().filter(
      (x) => x.name.startsWith('attention/') && !x.name.startsWith('attention/headdim'),
    )
    for (const c of cases) {
      for (const dtype of c.dtypes) {
        it(`${c.name} ${dtype}`, async () => {
          for (const r of await runCase(c, dtype, specialised!, cpu))
            expect(r.ok, `${r.check}: ${r.detail} (error ${r.error}, tol ${r.tolerance})`).toBe(true)
        })
      }
    }

    it('flash attention over many key tiles and a partial last tile, head dims 16 and 12/6, with gradients', async () => {
      const rng = new Rng(21)
      const pair = (shape: number[]) => {
        const v = Float32Array.from(rng.normalArray(shape.reduce((a, b) => a * b, 1)))
        return {
          g: tensor(v, shape, { backend: specialised!, dtype: 'float32' }),
          c: tensor(v, shape, { backend: cpu, dtype: 'float64' }),
        }
      }
      for (const [T, D, Dv] of [
        [150, 16, 16],
        [97, 12, 6],
      ]) {
        for (const opts of [{ causal: true }, { causal: true, window: 37, sinks: 3 }, { causal: false }]) {
          const q = pair([1, 4, T, D])
          const k = pair([1, 2, T, D])
          const v = pair([1, 2, T, Dv])
          const run = (x: { q: Tensor; k: Tensor; v: Tensor }) => {
            const f = valueAndGrad((p: { q: Tensor; k: Tensor; v: Tensor }) =>
              sum(attention(p.q, p.k, p.v, opts)),
            )
            const out = attention(x.q, x.k, x.v, opts)
            const r = f(x)
            r.value.dispose()
            return [out, r.grads.q, r.grads.k, r.grads.v]
          }
          const got = run({ q: q.g, k: k.g, v: v.g })
          const want = run({ q: q.c, k: k.c, v: v.c })
          for (let i = 0; i < got.length; i++) {
            const cmp = compareArrays(await got[i].data(), await want[i].data())
            expect(cmp.problem, `T ${T} D ${D}/${Dv} ${JSON.stringify(opts)} output ${i}`).toBeUndefined()
            expect(cmp.error, `T ${T} D ${D}/${Dv} ${JSON.stringify(opts)} output ${i}`).toBeLessThanOrEqual(
              i === 0 ? 6e-5 : 2e-4,
            )
          }
          dispose([got, want, q, k, v])
        }
      }
    })

    it('the forward with other tunings (key tile 16 with 32 / 128 queries per workgroup, 32 with 64) matches the CPU', async () => {
      const rng = new Rng(22)
      const [T, D] = [150, 8] // head dim 8: lavapipe compiles each written-out kernel in seconds
      const data = (shape: number[]) => Float32Array.from(rng.normalArray(shape.reduce((a, b) => a * b, 1)))
      const [qv, kv, vv] = [data([1, 4, T, D]), data([1, 2, T, D]), data([1, 2, T, D])]
      const on = (backend: typeof cpu, dtype: 'float32' | 'float64') =>
        [qv, kv, vv].map((x, i) => tensor(x, i === 0 ? [1, 4, T, D] : [1, 2, T, D], { backend, dtype }))
      const [qc, kc, vc] = on(cpu, 'float64')
      const want = attention(qc, kc, vc, { causal: true, window: 41, sinks: 2 })
      const [qg, kg, vg] = on(specialised!, 'float32')
      try {
        for (const [keyTile, queryRows] of [
          [16, 32],
          [16, 128],
          [32, 64],
        ]) {
          Object.assign(attentionTuning, { keyTile, queryRows })
          const got = attention(qg, kg, vg, { causal: true, window: 41, sinks: 2 })
          const cmp = compareArrays(await got.data(), await want.data())
          got.dispose()
          expect(cmp.problem, `key tile ${keyTile}, ${queryRows} rows`).toBeUndefined()
          expect(cmp.error, `key tile ${keyTile}, ${queryRows} rows`).toBeLessThanOrEqual(6e-5)
        }
      } finally {
        attentionTuning.keyTile = undefined
        attentionTuning.queryRows = undefined
        dispose([qc, kc, vc, want, qg, kg, vg])
      }
    }, 300_000)
  },
)
