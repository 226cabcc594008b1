import {
  cast,
  dispose,
  listKernels,
  memory,
  mul,
  Rng,
  setBackend,
  sum,
  type Tensor,
  tensor,
  toBackend,
  valueAndGrad,
} from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  forwardWithRouting,
  MOSA_CONFIG,
  type MosaConfig,
  type MosaParams,
  type MosaPath,
} from '../src/index.js'
import { expectFusedMatchesPortable } from './fused-check.js'
import { problem, relError } from './helpers.js'
import { startWebgpu } from './webgpu-available.js'

const { gpu, reason } = await startWebgpu()

/** Forward + backward of sum(y * w) on the backend the tensors live on, read back. */
async function run(params: MosaParams, x: Tensor, w: Tensor, path: MosaPath) {
  const f = valueAndGrad(
    (q: { router: Tensor; sq: Tensor; sk: Tensor; sv: Tensor; so: Tensor; x: Tensor }) => {
      const r = forwardWithRouting(
        { ...params, router: q.router, sparse: { q: q.sq, k: q.sk, v: q.sv, o: q.so } },
        q.x,
        { path },
      )
      expect(r.path).toBe(path)
      r.indices?.dispose()
      r.scores?.dispose()
      return sum(mul(r.y, w))
    },
  )
  const s = params.sparse!
  const { value, grads } = f({ router: params.router!, sq: s.q, sk: s.k, sv: s.v, so: s.o, x })
  const out = forwardWithRouting(params, x, { path })
  const host: Record<string, Float64Array> = {
    y: Float64Array.from(await out.y.data()),
    indices: Float64Array.from(await out.indices!.data()),
  }
  for (const [n, g] of Object.entries(grads)) host[`d${n}`] = Float64Array.from(await (g as Tensor).data())
  dispose([value, grads, out])
  return host
}

/** The parameters on the GPU, cast to `dtype` there (default: as they are). */
async function toGpu(p: MosaParams, dtype?: 'float16' | 'bfloat16'): Promise<MosaParams> {
  const s = p.sparse!
  const move = async (t: Tensor) => {
    const g = await toBackend(t, gpu!)
    if (!dtype) return g
    const c = cast(g, dtype)
    g.dispose()
    return c
  }
  return {
    [MOSA_CONFIG]: { ...p[MOSA_CONFIG]!, ...(dtype ? { dtype } : {}) },
    router: await move(p.router!),
    sparse: { q: await move(s.q), k: await move(s.k), v: await move(s.v), o: await move(s.o) },
  }
}

describe.skipIf(!gpu)(`fused WGSL kernels on WebGPU${reason ? ` (skipped: ${reason})` : ''}`, () => {
  const base: MosaConfig = { dModel: 20, headDim: 32, denseHeads: 0, sparseHeads: 2, sparsity: 3 }

  it.each([
    ['batch 2, RoPE on', base, 2, 24],
    [
      'several tiles (k = 40 > 32 rows, dModel 40 > 32), RoPE off',
      { ...base, dModel: 40, sparsity: 2, rope: false },
      1,
      80,
    ],
    ['k = T', { ...base, sparsity: 1 }, 2, 11],
    ['k = 1', { ...base, sparsity: 50 }, 2, 11],
  ] as [string, MosaConfig, number, number][])(
    'fused on WebGPU matches the portable path on the CPU: %s',
    async (_name, config, B, T) => {
      await setBackend('cpu')
      const p = problem(config, B, T, 7)
      const w = tensor(new Rng(8).normalArray(B * T * config.dModel), [B, T, config.dModel], 'float32')
      const ref = await run(p.params, p.x, w, 'portable')
      const gp = await toGpu(p.params)
      const gx = await toBackend(p.x, gpu!)
      const gw = await toBackend(w, gpu!)
      const live = memory('webgpu').liveTensors
      const got = await run(gp, gx, gw, 'fused')
      expect(memory('webgpu').liveTensors).toBe(live)
      expect(Array.from(got.indices)).toEqual(Array.from(ref.indices))
      const errors = Object.fromEntries(Object.keys(ref).map((k) => [k, relError(got[k], ref[k])]))
      for (const [k, e] of Object.entries(errors))
        expect(e, `${k}: ${JSON.stringify(errors)}`).toBeLessThan(5e-5)
      dispose([p.params, p.x, w, gp, gx, gw])
    },
  )

  it.each([
    ['float16', 1e-2],
    ['bfloat16', 6e-2],
  ] as const)(
    '%s layers run the fused kernels in float32 (cast up), matching the portable path (tolerance %s)',
    async (dtype, tol) => {
      await setBackend('cpu')
      const config = { ...base, sparseHeads: 3 }
      const B = 2
      const T = 24
      const p = problem(config, B, T, 11)
      const w = tensor(new Rng(12).normalArray(B * T * config.dModel), [B, T, config.dModel], 'float32')
      const gp = await toGpu(p.params, dtype)
      const gx = cast(await toBackend(p.x, gpu!), dtype)
      const gw = cast(await toBackend(w, gpu!), dtype)
      const live = memory('webgpu').liveTensors
      // 'auto' keeps a 16-bit layer on the portable path while its tensors fit the 2 GiB binding.
      const auto = forwardWithRouting(gp, gx)
      expect(auto.path).toBe('portable')
      expect(auto.fallbackReason).toMatch(/16-bit layers take the portable path where it fits/)
      const fused = forwardWithRouting(gp, gx, { path: 'fused' })
      expect([fused.path, fused.fallbackReason, fused.y.dtype, fused.scores!.dtype]).toEqual([
        'fused',
        undefined,
        dtype,
        dtype,
      ])
      dispose([auto.y, auto.indices, auto.scores, fused.y, fused.indices, fused.scores])
      // The same router logits (16-bit) on both paths, so the same selection; the portable path
      // then computes in 16 bits, the fused one in float32: they differ by 16-bit rounding.
      const got = await run(gp, gx, gw, 'fused')
      const ref = await run(gp, gx, gw, 'portable')
      expect(memory('webgpu').liveTensors).toBe(live)
      expect(Array.from(got.indices)).toEqual(Array.from(ref.indices))
      const errors = Object.fromEntries(Object.keys(ref).map((k) => [k, relError(got[k], ref[k])]))
      for (const [k, e] of Object.entries(errors))
        expect(e, `${k}: ${JSON.stringify(errors)}`).toBeLessThan(tol)
      dispose([p.params, p.x, w, gp, gx, gw])
    },
  )

  it('fused matches the portable path, both on WebGPU', async () => {
    const needed = [
      'topk',
      'gather',
      'takeAlongAxis',
      'scatterAdd',
      'attention',
      'attentionBackward',
      'rope',
      'matmul',
    ]
    const missing = needed.filter((k) => !listKernels('webgpu').includes(k))
    if (missing.length) {
      console.log(`skipped: the WebGPU backend lacks core kernels ${missing.join(', ')}`)
      return
    }
    await setBackend('webgpu')
    await expectFusedMatchesPortable(base, 2, 24, 9, 5e-5)
    await setBackend('cpu')
  })
})
