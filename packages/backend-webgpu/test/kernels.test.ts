import {
  abs,
  attention,
  type Backend,
  type DType,
  dispose,
  div,
  gatedDeltaRule,
  gather,
  matmul,
  mul,
  Rng,
  scatterAdd,
  sigmoid,
  softmax,
  sqrt,
  square,
  sum,
  type Tensor,
  tensor,
  topk,
  valueAndGrad,
} from '@attnkit/core'
import { compareArrays, compareExact } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { FAST_TILE } from '../src/kernels/matmul.js'
import { startWebGPU } from './helpers.js'

const { gpu, cpu, reason } = await startWebGPU()

/** Same random inputs on both backends; float inputs float32 on the GPU, float64 on the CPU. */
function inputs(
  specs: Record<string, { shape: number[]; dtype?: DType; int?: [number, number] }>,
  seed: number,
): { g: Record<string, Tensor>; c: Record<string, Tensor> } {
  const rng = new Rng(seed)
  const g: Record<string, Tensor> = {}
  const c: Record<string, Tensor> = {}
  for (const [name, s] of Object.entries(specs)) {
    const n = s.shape.reduce((a, b) => a * b, 1)
    if (s.int) {
      const [lo, hi] = s.int
      const v = Int32Array.from(rng.uniformArray(n), (u) => lo + Math.floor(u * (hi - lo)))
      g[name] = tensor(v, s.shape, { backend: gpu!, dtype: 'int32' })
      c[name] = tensor(v, s.shape, { backend: cpu, dtype: 'int32' })
    } else {
      const v = Float32Array.from(rng.normalArray(n))
      g[name] = tensor(v, s.shape, { backend: gpu!, dtype: s.dtype ?? 'float32' })
      c[name] = tensor(v, s.shape, { backend: cpu, dtype: 'float64' })
    }
  }
  return { g, c }
}

async function agree(
  fn: (x: Record<string, Tensor>) => Tensor[],
  x: { g: Record<string, Tensor>; c: Record<string, Tensor> },
  tol: number,
): Promise<void> {
  const tg = fn(x.g)
  const tc = fn(x.c)
  for (let i = 0; i < tg.length; i++) {
    const a = await tg[i].data()
    const e = await tc[i].data()
    const cmp = tg[i].dtype === 'int32' ? compareExact(a, e) : compareArrays(a, e)
    expect(cmp.problem, `output ${i}`).toBeUndefined()
    expect(cmp.error, `output ${i}: worst ${JSON.stringify(cmp.worst)}`).toBeLessThanOrEqual(tol)
  }
  dispose([tg, tc, x.g, x.c])
}

describe.skipIf(!gpu)(
  `webgpu kernels at sizes the conformance suite does not reach${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    it('fast tiled f32 matmul (whole tiles), every transpose, batched', async () => {
      const { BM, BN, BK } = FAST_TILE
      for (const [tA, tB] of [
        [false, false],
        [true, false],
        [false, true],
      ] as const) {
        const [M, N, K] = [BM * 2, BN, BK * 8]
        const x = inputs(
          { a: { shape: [2, ...(tA ? [K, M] : [M, K])] }, b: { shape: tB ? [N, K] : [K, N] } },
          7,
        )
        const before = gpu!.pipelines.compiles
        await agree((t) => [matmul(t.a, t.b, { transposeA: tA, transposeB: tB })], x, 2e-5)
        expect(gpu!.pipelines.compiles - before).toBeLessThanOrEqual(2)
      }
    })

    it('flash attention over many key tiles: causal, window + sinks, GQA, head dim 64, with gradients', async () => {
      for (const opts of [{ causal: true }, { causal: true, window: 37, sinks: 3 }, { causal: false }]) {
        const x = inputs(
          { q: { shape: [1, 4, 150, 64] }, k: { shape: [1, 2, 150, 64] }, v: { shape: [1, 2, 150, 64] } },
          11,
        )
        await agree((t) => [attention(t.q, t.k, t.v, opts)], x, 6e-5)
        const y = inputs(
          { q: { shape: [1, 2, 97, 64] }, k: { shape: [1, 1, 97, 64] }, v: { shape: [1, 1, 97, 64] } },
          12,
        )
        const grads = (t: Record<string, Tensor>) => {
          const f = valueAndGrad((p: { q: Tensor; k: Tensor; v: Tensor }) =>
            sum(attention(p.q, p.k, p.v, opts)),
          )
          const r = f({ q: t.q, k: t.k, v: t.v })
          r.value.dispose()
          return [r.grads.q, r.grads.k, r.grads.v]
        }
        await agree(grads, y, 2e-4)
      }
    })

    it('long reductions and rows (one workgroup per output)', async () => {
      const x = inputs({ a: { shape: [3, 5000] } }, 13)
      await agree((t) => [sum(t.a, [1]), softmax(t.a, -1)], x, 1e-5)
    })

    it('topk over long rows and scatterAdd with many duplicates', async () => {
      const x = inputs({ a: { shape: [2, 3000] } }, 14)
      await agree(
        (t) => {
          const r = topk(t.a, 40)
          return [r.values, r.indices]
        },
        x,
        0,
      )
      const y = inputs(
        { base: { shape: [4, 10] }, idx: { shape: [4, 500], int: [0, 10] }, upd: { shape: [4, 500] } },
        15,
      )
      await agree((t) => [scatterAdd(t.base, t.idx, t.upd, 1)], y, 1e-5)
    })

    it('gated delta rule with more than one column block and several chunks', async () => {
      const x = inputs(
        {
          q: { shape: [1, 2, 40, 16] },
          k: { shape: [1, 2, 40, 16] },
          v: { shape: [1, 2, 40, 70] },
          g: { shape: [1, 2, 40] },
          beta: { shape: [1, 2, 40] },
        },
        16,
      )
      const prep = (t: Record<string, Tensor>) => {
        // k unit-length, g <= 0, beta in (0, 1), as the rule expects.
        const k2 = square(t.k)
        const n2 = sum(k2, [-1], { keepDims: true })
        const n = sqrt(n2)
        const kn = div(t.k, n)
        const ga = abs(t.g)
        const g = mul(ga, -0.1)
        const beta = sigmoid(t.beta)
        dispose([k2, n2, n, ga])
        return { q: t.q, k: kn, v: t.v, g, beta }
      }
      await agree(
        (t) => {
          const p = prep(t)
          const f = valueAndGrad((z: { q: Tensor; k: Tensor; v: Tensor }) =>
            sum(gatedDeltaRule(z.q, z.k, z.v, p.g, p.beta, { mode: 'chunked', chunkSize: 8 }).out),
          )
          const r = f({ q: p.q, k: p.k, v: p.v })
          r.value.dispose()
          const out = gatedDeltaRule(p.q, p.k, p.v, p.g, p.beta, { chunkSize: 8 })
          dispose([p.k, p.g, p.beta])
          return [out.out, out.state, r.grads.q, r.grads.k, r.grads.v]
        },
        x,
        1e-4,
      )
    })

    it('reports an out-of-range gather index on the next read', async () => {
      const b = gpu as Backend
      const t = tensor(Float32Array.from([1, 2, 3]), [3], { backend: b })
      const i = tensor(Int32Array.from([0, 5]), [2], { backend: b, dtype: 'int32' })
      const y = gather(t, i, 0)
      await expect(y.data()).rejects.toThrow(/gather: argument 'indices' has a value outside \[0, 3\)/)
      // The flag is cleared once reported.
      const j = tensor(Int32Array.from([2]), [1], { backend: b, dtype: 'int32' })
      const z = gather(t, j, 0)
      expect(Array.from(await z.data())).toEqual([3])
      dispose([t, i, y, j, z])
    })
  },
)
