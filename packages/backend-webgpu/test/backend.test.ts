import {
  attention,
  BackendError,
  dispose,
  matmul,
  memory,
  Rng,
  softmax,
  sum,
  type Tensor,
  tensor,
  valueAndGrad,
} from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { createWebGPUBackend } from '../src/index.js'
import { explainNoNodeAdapter, type MachineProbe } from '../src/node-gpu.js'
import { startWebGPU } from './helpers.js'

const { gpu, reason } = await startWebGPU()

function rand(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1)
  return tensor(Float32Array.from(new Rng(seed).normalArray(n)), shape, { backend: gpu! })
}

describe.skipIf(!gpu)(
  `webgpu backend: memory, pool, uniforms, timing${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    it('reuses pooled buffers instead of allocating', async () => {
      const b = gpu!
      const warm = rand([1000], 1)
      const warmSum = sum(warm)
      await warmSum.data()
      dispose([warm, warmSum])
      await b.synchronize()
      const created = b.pool.created
      const reuses = b.pool.reuses
      for (let k = 0; k < 20; k++) {
        const t = rand([1000], k)
        const u = sum(t)
        await u.data()
        dispose([t, u])
      }
      expect(b.pool.created).toBe(created)
      expect(b.pool.reuses - reuses).toBeGreaterThanOrEqual(20)
      expect(b.memory().pooledBytes).toBeGreaterThan(0)
    })

    it('passes uniforms through one arena: no buffer per dispatch', async () => {
      const b = gpu!
      const x = rand([64], 2)
      const warm = softmax(x)
      await warm.data()
      warm.dispose()
      const before = b.gpuBufferCounts().total
      const slots = b.uniformSlotsTaken()
      const outs: Tensor[] = []
      for (let k = 0; k < 200; k++) outs.push(softmax(x))
      await outs[outs.length - 1].data()
      expect(b.uniformSlotsTaken() - slots).toBeGreaterThanOrEqual(200)
      // 200 outputs need 200 tensor buffers; nothing else may have been created.
      expect(b.gpuBufferCounts().total - before).toBeLessThanOrEqual(200)
      dispose([outs, x])
    })

    it('leaks nothing across a forward + backward pass, and trims its pool to zero', async () => {
      const b = gpu!
      await b.synchronize()
      const liveTensors = memory('webgpu').liveTensors
      const liveBuffers = b.memory().liveBuffers
      const q = rand([1, 2, 40, 16], 3)
      const k = rand([1, 2, 40, 16], 4)
      const w = rand([16, 24], 5)
      const f = valueAndGrad((p: { q: Tensor; k: Tensor; w: Tensor }) =>
        sum(softmax(matmul(attention(p.q, p.k, p.k, { causal: true }), p.w))),
      )
      const { value, grads } = f({ q, k, w })
      await value.data()
      for (const g of Object.values(grads)) await g.data()
      expect(memory('webgpu').peakBytes).toBeGreaterThan(0)
      dispose([value, grads, q, k, w])
      expect(memory('webgpu').liveTensors).toBe(liveTensors)
      expect(b.memory().liveBuffers).toBe(liveBuffers)
      b.trimPool()
      const counts = b.gpuBufferCounts()
      expect(counts.pooled).toBe(0)
      // Only the fixed buffers (uniform arena, argument flags, timing, constant tables) and
      // the tensors still alive from other tests remain.
      expect(counts.total).toBe(counts.fixed + counts.tensors)
    })

    it('times device work with timestamp queries when the adapter has them', async () => {
      const b = gpu!
      const a = rand([128, 128], 6)
      let c: Tensor | undefined
      const t = await b.time(() => {
        c = matmul(a, a)
      })
      expect(t.wallMs).toBeGreaterThan(0)
      expect(t.deviceMs).toBeGreaterThan(0)
      expect(t.source).toBe(b.features.has('timestamp-query') ? 'device' : 'host')
      dispose([a, c!])
    })

    it('refuses a buffer above maxStorageBufferBindingSize before the GPU sees it, leaving no error behind', async () => {
      const b = gpu!
      const max = b.limits.maxStorageBufferBindingSize
      const n = Math.floor(max / 4) + 1
      expect(() => b.allocData(n, 'float32')).toThrow(
        `webgpu: a tensor of ${n} float32 elements needs ${n * 4} bytes, above this device's maxStorageBufferBindingSize (${max})`,
      )
      expect(() => b.temp(max + 4)).toThrow(
        `webgpu: a kernel scratch buffer needs ${max + 4} bytes, above this device's maxStorageBufferBindingSize (${max})`,
      )
      // Dawn would report a rejected binding asynchronously, blaming the next work: there is none.
      const x = rand([64], 3)
      const y = sum(x)
      await y.data()
      await expect(b.synchronize()).resolves.toBeUndefined()
      dispose([x, y])
    })

    it('reports its features, limits and storage choices', () => {
      const info = gpu!.info()
      expect(info.name).toBe('webgpu')
      expect(info.device).toMatch(/WebGPU/)
      expect(gpu!.supportsDType('float64')).toBe(false)
      expect(gpu!.supportsDType('bfloat16')).toBe(true)
      expect(String(info.details.float16Storage)).toMatch(/f16|packed/)
    })
  },
)

describe('webgpu backend: errors that say why and what to install', () => {
  const machine = (over: Partial<MachineProbe> & { files?: string[] }): MachineProbe => ({
    platform: 'linux',
    env: {},
    exists: (p) => (over.files ?? []).includes(p),
    list: (d) => (over.files ?? []).filter((f) => f.startsWith(`${d}/`)).map((f) => f.slice(d.length + 1)),
    ...over,
  })

  it('names the missing Vulkan loader', () => {
    expect(explainNoNodeAdapter('requestAdapter() returned null', machine({}))).toMatch(
      /libvulkan\.so\.1\) is missing.*apt-get install libvulkan1.*mesa-vulkan-drivers/,
    )
  })

  it('names the missing driver when the loader is there', () => {
    const m = machine({ files: ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1'] })
    expect(explainNoNodeAdapter('requestAdapter() returned null', m)).toMatch(
      /no Vulkan driver.*mesa-vulkan-drivers/,
    )
  })

  it('names driver manifests that VK_DRIVER_FILES points at but do not exist', () => {
    const m = machine({
      files: ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1'],
      env: { VK_DRIVER_FILES: '/nowhere/nvidia_icd.json' },
    })
    expect(explainNoNodeAdapter('x', m)).toMatch(/\/nowhere\/nvidia_icd\.json/)
  })

  it('says the driver gave no adapter when loader and drivers are present', () => {
    const m = machine({
      files: ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/share/vulkan/icd.d/lvp_icd.json'],
    })
    expect(explainNoNodeAdapter('requestAdapter() returned null', m)).toMatch(
      /lvp_icd\.json.*VK_LOADER_DEBUG/,
    )
  })

  it('throws a BackendError when Dawn gives no adapter', async () => {
    const err = await createWebGPUBackend({ name: 'webgpu-none', dawnOptions: ['backend=opengl'] }).catch(
      (e) => e,
    )
    expect(err).toBeInstanceOf(BackendError)
    expect((err as Error).message).toMatch(/no WebGPU adapter \(requestAdapter\(\) returned null\)/)
  })
})
