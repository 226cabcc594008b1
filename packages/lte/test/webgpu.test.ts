import {
  add,
  affine,
  type Backend,
  backend,
  cast,
  dispose,
  memory,
  mul,
  runKernel,
  sum,
  type Tensor,
  valueAndGrad,
} from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  checkFusedGdn,
  ensureKernelsRegistered,
  fusedDecodeAttention,
  gatedDelta,
  KERNELS,
} from '../src/index.js'
import {
  decodeHostInputs,
  gdnHostInputs,
  portableDecodeAttention,
  relErr,
  upload,
  uploadDecode,
} from './gpu-inputs.js'

/** Starts the WebGPU backend, or says in one line why it cannot run here. */
async function startWebGPU(): Promise<{ gpu?: Backend; why: string }> {
  try {
    await import('@attnkit/backend-webgpu')
  } catch (e) {
    return {
      why: `@attnkit/backend-webgpu is not built or not importable (${(e as Error).message.split('\n')[0]})`,
    }
  }
  try {
    return { gpu: await backend('webgpu'), why: '' }
  } catch (e) {
    return { why: `WebGPU did not start: ${(e as Error).message.split('\n')[0]}` }
  }
}

const { gpu, why } = await startWebGPU()

describe.skipIf(!gpu)(`fused WGSL kernels vs the CPU reference${why ? ` (skipped: ${why})` : ''}`, () => {
  it('chunkwise GDN forward and backward (float32 on the GPU vs float64 on the CPU)', async () => {
    ensureKernelsRegistered()
    const live = memory('cpu').liveTensors
    const [B, H, T, Dk, Dv, C] = [1, 2, 21, 8, 20, 8]
    const host = gdnHostInputs(41, B, H, T, Dk, Dv)
    const ref = upload(host, 'float64')
    const got = upload(host, 'float32', gpu)
    const attrs = { scale: 0.4, chunkSize: C }
    const run = (x: typeof ref) => [
      ...runKernel(
        KERNELS.gdnForward,
        { q: x.q, k: x.k, v: x.v, g: x.g, beta: x.beta, state: x.state },
        attrs,
      ),
      ...runKernel(KERNELS.gdnBackward, x, attrs),
    ]
    const a = run(ref)
    const b = run(got)
    const names = ['out', 'finalState', 'dq', 'dk', 'dv', 'dg', 'dbeta', 'dstate']
    for (let i = 0; i < names.length; i++) expect(await relErr(a[i], b[i]), names[i]).toBeLessThan(2e-5)
    dispose([ref, got, a, b])
    expect(memory('cpu').liveTensors).toBe(live)
    expect(memory('webgpu').liveTensors).toBe(0)
  })

  it('bfloat16 and float16 inputs take the fused float32 kernel (cast up and back), forward and gradients', async () => {
    const [B, H, T, Dk, Dv] = [1, 2, 37, 8, 12]
    const host = gdnHostInputs(43, B, H, T, Dk, Dv)
    const names = ['q', 'k', 'v', 'g', 'beta'] as const
    // A scalar loss of out and the final state, so every input gets a gradient.
    const loss = (x: Record<(typeof names)[number], Tensor>, w: Tensor, kernel: 'fused' | 'portable') => {
      const { out, state } = gatedDelta(x.q, x.k, x.v, x.g, x.beta, { kernel, chunkSize: 16 })
      return add(sum(mul(cast(out, w.dtype), w)), affine(sum(state), 0.01))
    }
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const live = memory('webgpu').liveTensors
      const on = (b: Backend | undefined, d: 'float64' | typeof dtype) => {
        const rounded = upload(host, 'float32', b)
        const x = Object.fromEntries(names.map((n) => [n, cast(rounded[n], d)])) as Record<
          (typeof names)[number],
          Tensor
        >
        const w = cast(rounded.dout, d === 'float64' ? 'float64' : 'float32')
        dispose(rounded)
        return { x, w }
      }
      // The reference: the same 16-bit-rounded inputs, in float64 on the CPU.
      const low = on(undefined, dtype)
      const ref = {
        x: Object.fromEntries(names.map((n) => [n, cast(low.x[n], 'float64')])) as typeof low.x,
        w: cast(low.w, 'float64'),
      }
      const gpuIn = on(gpu, dtype)
      const { value: refLoss, grads: refGrads } = valueAndGrad((x: typeof ref.x) =>
        loss(x, ref.w, 'portable'),
      )(ref.x)
      const { value: gotLoss, grads: gotGrads } = valueAndGrad((x: typeof gpuIn.x) =>
        loss(x, gpuIn.w, 'fused'),
      )(gpuIn.x)
      expect(await relErr(refLoss, gotLoss), `${dtype} loss`).toBeLessThan(dtype === 'bfloat16' ? 3e-2 : 5e-3)
      for (const n of names) {
        expect(gotGrads[n].dtype, `${dtype} d${n}`).toBe(dtype)
        expect(await relErr(refGrads[n], gotGrads[n]), `${dtype} d${n}`).toBeLessThan(
          dtype === 'bfloat16' ? 3e-2 : 5e-3,
        )
      }
      dispose([low.x, low.w, ref.x, ref.w, gpuIn.x, gpuIn.w, refLoss, refGrads, gotLoss, gotGrads])
      expect(memory('webgpu').liveTensors).toBe(live)
    }
  })

  it('LTE decode attention over the cache slots plus the new token (GQA, empty slots, N > 256)', async () => {
    ensureKernelsRegistered()
    const live = memory('cpu').liveTensors
    for (const [N, D] of [
      [13, 8],
      [300, 16],
    ]) {
      const host = decodeHostInputs(N, 2, 4, 2, N, D)
      const ref = uploadDecode(host, 'float64')
      const got = uploadDecode(host, 'float32', gpu)
      const expected = portableDecodeAttention(ref)
      const out = fusedDecodeAttention(got.q, got.k, got.v, got.pos, got.kNew, got.vNew)
      expect(await relErr(expected, out), `N=${N}`).toBeLessThan(2e-5)
      dispose([ref, got, expected, out])
    }
    expect(memory('cpu').liveTensors).toBe(live)
    expect(memory('webgpu').liveTensors).toBe(0)
  })

  it('full 64-token chunks (every row lane busy), three chunks with a partial one, via checkFusedGdn', async () => {
    const errors = await checkFusedGdn(gpu!, { batch: 1, heads: 1, seqLen: 130, headDim: 16, chunkSize: 64 })
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(3e-5)
  })
})
