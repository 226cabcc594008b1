import { describe, expect, it } from 'vitest'
import {
  add,
  BackendError,
  CpuBackend,
  dispose,
  getBackend,
  hasKernel,
  listBackends,
  mul,
  ready,
  registerBackend,
  registerCoreKernel,
  registerGradient,
  registerKernel,
  runKernel,
  setBackend,
  sum,
  type Tensor,
  tensor,
  toBackend,
  valueAndGrad,
} from '../src/index.js'

/** A second CPU-like backend under another name, to test choice and mixing. */
class TwinBackend extends CpuBackend {
  override readonly name = 'twin' as 'cpu'
}

describe('backends and the kernel registry', () => {
  it('the CPU backend is there by default', () => {
    expect(getBackend().name).toBe('cpu')
    expect(listBackends().some((b) => b.name === 'cpu')).toBe(true)
  })

  it('ready() picks the highest priority that starts and remembers why others failed', async () => {
    registerBackend({
      name: 'broken',
      priority: 900,
      create: () => {
        throw new BackendError('libfoo.so not found (tried /usr/lib); install foo')
      },
    })
    registerBackend({ name: 'twin', priority: 500, create: () => new TwinBackend() })
    // The active backend is already cpu (getBackend above), so ready() keeps it...
    expect((await ready()).name).toBe('cpu')
    // ...and an explicit choice works; a failing one says why.
    await expect(setBackend('broken')).rejects.toThrow(/libfoo.so not found/)
    expect(listBackends().find((b) => b.name === 'broken')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/libfoo/),
    })
    await expect(setBackend('nope')).rejects.toThrow(
      /Backend 'nope' is not registered \(registered: cpu, broken, twin\)/,
    )
  })

  it('kernels are per (name, backend); ops on mixed backends say which argument is where', async () => {
    const twin = await setBackend('twin')
    registerCoreKernel('fill', 'twin', ({ attrs }) => {
      const b = twin as unknown as CpuBackend
      const out = b.alloc(
        attrs.dtype,
        attrs.shape.reduce((a, c) => a * c, 1),
      )
      out.fill(attrs.value)
      return b.output(out, attrs.shape, attrs.dtype)
    })
    expect(hasKernel('fill', 'twin')).toBe(true)
    expect(hasKernel('matmul', 'twin')).toBe(false)
    const onTwin = tensor([1, 2])
    expect(onTwin.backend.name).toBe('twin')
    await setBackend('cpu')
    const onCpu = tensor([3, 4])
    expect(() => add(onCpu, onTwin)).toThrow(
      /argument 'b' is on backend 'twin' but 'a' is on 'cpu'; move one with toBackend\(\)/,
    )
    const moved = await toBackend(onTwin, 'cpu')
    expect([...add(onCpu, moved).dataSync()]).toEqual([4, 6])
    expect(() => add(onTwin, onTwin)).toThrow(/Kernel 'binary' is not registered for backend 'twin'/)
    dispose([onTwin, onCpu, moved])
  })

  it('a mechanism can register a fused kernel and its gradient without importing a backend', () => {
    registerKernel({
      kernelName: 'demo.scale3',
      backendName: 'cpu',
      kernelFunc: ({ inputs, backend }: { inputs: { x: Tensor }; backend: CpuBackend }) => {
        const v = backend.values(inputs.x)
        const out = backend.alloc(inputs.x.dtype, v.length)
        for (let i = 0; i < v.length; i++) out[i] = 3 * v[i]
        return backend.output(out, inputs.x.shape, inputs.x.dtype)
      },
    })
    registerGradient({ kernelName: 'demo.scale3', gradFunc: ({ dys }) => ({ x: mul(dys[0], 3) }) })
    const x = tensor([1, 2])
    const { value, grads } = valueAndGrad((p: Tensor) => sum(runKernel('demo.scale3', { x: p })[0]))(x)
    expect(value.dataSync()[0]).toBe(9)
    expect([...grads.dataSync()]).toEqual([3, 3])
    dispose([x, value, grads])
  })
})
