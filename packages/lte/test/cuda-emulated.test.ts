import { dispose, memory, runKernel, setBackend } from '@attnkit/core'
import { beforeAll, describe, expect, it } from 'vitest'
import { checkFusedGdn, ensureKernelsRegistered, fusedDecodeAttention, KERNELS } from '../src/index.js'
import { EmulatedCudaBackend, emulatorUnavailable } from './cuda-emulator/backend.js'
import {
  decodeHostInputs,
  gdnHostInputs,
  portableDecodeAttention,
  relErr,
  upload,
  uploadDecode,
} from './gpu-inputs.js'

const why = emulatorUnavailable()

/** The CPU float64 chunkwise kernels and the CUDA programs (run by the emulator) on the same inputs. */
describe.skipIf(why !== '')(`CUDA GDN kernels on the CPU emulator${why ? ` (skipped: ${why})` : ''}`, () => {
  let emu: EmulatedCudaBackend
  beforeAll(async () => {
    ensureKernelsRegistered()
    emu = new EmulatedCudaBackend()
    await setBackend(emu)
    await setBackend('cpu')
  })

  it('forward and backward match the float64 reference (partial last chunk, initial state, dFinalState)', async () => {
    const live = memory('cpu').liveTensors
    const [B, H, T, Dk, Dv, C] = [1, 2, 21, 8, 20, 8]
    const host = gdnHostInputs(31, B, H, T, Dk, Dv)
    const ref = upload(host, 'float64')
    const got = upload(host, 'float32', emu)
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
    // The optional inputs absent (zero initial state, no final-state gradient).
    const noState = (x: typeof ref) => ({ q: x.q, k: x.k, v: x.v, g: x.g, beta: x.beta, dout: x.dout })
    const a2 = runKernel(KERNELS.gdnBackward, noState(ref), attrs)
    const b2 = runKernel(KERNELS.gdnBackward, noState(got), attrs)
    for (let i = 0; i < 5; i++)
      expect(await relErr(a2[i], b2[i]), `${names[i + 2]} (no state)`).toBeLessThan(2e-5)
    dispose([ref, got, a, b, a2, b2])
    expect(memory('cpu').liveTensors).toBe(live)
    expect(memory('cuda').liveBuffers).toBe(0)
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
      const got = uploadDecode(host, 'float32', emu)
      const expected = portableDecodeAttention(ref)
      const out = fusedDecodeAttention(got.q, got.k, got.v, got.pos, got.kNew, got.vNew)
      expect(await relErr(expected, out), `N=${N}`).toBeLessThan(2e-5)
      dispose([ref, got, expected, out])
    }
    expect(memory('cpu').liveTensors).toBe(live)
    expect(memory('cuda').liveTensors).toBe(0)
  })

  it('full 64-token chunks (every row lane busy), three chunks with a partial one, via checkFusedGdn', async () => {
    const errors = await checkFusedGdn(emu, { batch: 1, heads: 2, seqLen: 150, headDim: 32, chunkSize: 64 })
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(3e-5)
  })
})
