// The FFI plumbing (koffi declarations, argument packing, copies, memsets, cuBLASLt layouts)
// against stand-in libraries built from test/fake-cuda/fake_cuda.c, so it runs without a GPU.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as o from '@attnkit/core'
import koffi from 'koffi'
import { afterAll, describe, expect, it } from 'vitest'
import { type CudaBackend, createCudaBackend } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'attnkit-fake-cuda-'))
const so = join(dir, 'libfake.so')
const cc = spawnSync(
  'cc',
  ['-shared', '-fPIC', '-O1', '-o', so, join(here, 'fake-cuda', 'fake_cuda.c'), '-ldl'],
  {
    encoding: 'utf8',
  },
)
const built = !cc.error && cc.status === 0
if (built)
  for (const name of ['libcuda.so.1', 'libnvrtc.so.13', 'libcublasLt.so.13'])
    copyFileSync(so, join(dir, name))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('FFI plumbing against stand-in CUDA libraries', () => {
  if (!built) {
    it.skip(`no C compiler (cc) to build the stand-in libraries: ${cc.error?.message ?? cc.stderr}`, () => {})
    return
  }
  const fake = koffi.load(join(dir, 'libcuda.so.1'))
  const launches = fake.func('int fake_launch_count()') as () => number
  const lastParam = fake.func('uint64_t fake_last_param(int i)') as (i: number) => number | bigint
  const liveAllocs = fake.func('long fake_live_allocs()') as () => number
  const lastOptions = koffi
    .load(join(dir, 'libnvrtc.so.13'))
    .func('const char *fake_last_options()') as () => string
  let backend: CudaBackend

  it('creates the backend from explicit library folders and reports the device', async () => {
    backend = await createCudaBackend({ libraries: { libDirs: [dir] }, cacheDir: false })
    const info = backend.info()
    expect(info.device).toBe('Fake H100 (sm_90, 132 SMs)')
    expect(info.details.arch).toBe('sm_90a')
    expect(info.details.libcuda).toBe(join(dir, 'libcuda.so.1'))
    expect(info.peak?.bytesPerSecond).toBeCloseTo(2619e6 * 2 * 640, -6)
    expect(backend.supportsDType('float64')).toBe(false)
  })

  it('round-trips every dtype through device memory', async () => {
    const rng = new o.Rng(1)
    for (const dtype of ['float32', 'float16', 'bfloat16', 'int32', 'uint32', 'bool'] as o.DType[]) {
      const vals = o.toHostArray(
        dtype,
        rng.normalArray(37).map((x) => (dtype === 'uint32' ? Math.abs(x) * 9 : x * 9)),
      )
      const t = o.tensor(vals, [37], { dtype, backend })
      expect([...(await t.data())]).toEqual([...vals])
      expect([...t.dataSync()]).toEqual([...vals])
      t.dispose()
    }
  })

  it('fills through memset with the element bit pattern', async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16', 'int32', 'bool'] as o.DType[]) {
      const t = o.full([5, 3], 1.25, { dtype, backend })
      expect([...(await t.data())]).toEqual(new Array(15).fill(o.roundScalar(dtype, 1.25)))
      t.dispose()
    }
  })

  it('maps row-major matmuls with transposes and broadcast batches onto cuBLASLt correctly', async () => {
    const cpu = await o.backend('cpu')
    const rng = new o.Rng(2)
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[4, 6, 5], [5, 2], false, false],
      [[6, 5], [3, 6, 2], true, false],
    ]
    for (const [sa, sb, transposeA, transposeB] of cases) {
      const av = rng.normalArray(o.sizeOf(sa))
      const bv = rng.normalArray(o.sizeOf(sb))
      const ins = [
        o.tensor(av, sa, { dtype: 'float32', backend }),
        o.tensor(bv, sb, { dtype: 'float32', backend }),
        o.tensor(av, sa, { dtype: 'float64', backend: cpu }),
        o.tensor(bv, sb, { dtype: 'float64', backend: cpu }),
      ]
      const g = o.matmul(ins[0], ins[1], { transposeA, transposeB })
      const r = o.matmul(ins[2], ins[3], { transposeA, transposeB })
      expect(g.shape).toEqual(r.shape)
      const [gv, rv] = [await g.data(), await r.data()]
      for (let i = 0; i < gv.length; i++)
        expect(gv[i], `${sa} x ${sb} ${transposeA} ${transposeB} at ${i}`).toBeCloseTo(rv[i], 4)
      o.dispose([...ins, g, r])
    }
  })

  it('launches kernels with the prepared argument table (pointers first)', async () => {
    const x = o.tensor(new Float32Array([1, 2, 3]), [3], { backend })
    const before = launches()
    const y = o.exp(x)
    expect(launches()).toBe(before + 1)
    expect(BigInt(lastParam(0))).toBe(backend.ptr({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }))
    expect(BigInt(lastParam(1))).toBe(backend.ptr({ dataId: y.dataId, shape: y.shape, dtype: y.dtype }))
    expect(BigInt(lastParam(2))).toBe(3n)
    expect(lastOptions()).toContain('--gpu-architecture=sm_90a')
    expect(lastOptions()).toContain('-DDT=float')
    o.dispose([x, y])
  })

  it('runs a mechanism program (runProgram): inputs, outputs, scalars, zero-initialised outputs', async () => {
    const a = o.tensor(new Float32Array([1, 2]), [2], { backend })
    const before = launches()
    const [out] = backend.runProgram({
      language: 'cuda',
      name: 'mech_add',
      source: 'extern "C" __global__ void add(const float* a, float* out, int n, float s) {}',
      entryPoint: 'add',
      grid: [1, 1, 1],
      block: [32, 1, 1],
      inputs: [{ dataId: a.dataId, shape: a.shape, dtype: a.dtype }],
      outputs: [{ shape: [4], dtype: 'float32', zeroInit: true }],
      scalars: [
        { type: 'i32', value: 2 },
        { type: 'f32', value: 0.5 },
      ],
      defines: { WIDTH: 4 },
    })
    expect(launches()).toBe(before + 1)
    expect(BigInt(lastParam(1))).toBe(backend.ptr(out))
    expect(lastOptions()).toContain('-DWIDTH=4')
    expect([...backend.readSync(out.dataId)]).toEqual([0, 0, 0, 0])
    backend.release(out.dataId)
    a.dispose()
    expect(() =>
      backend.runProgram({
        language: 'wgsl',
        name: 'w',
        source: '',
        entryPoint: 'main',
        grid: [1, 1, 1],
        inputs: [],
        outputs: [],
      }),
    ).toThrow(/runs language 'cuda'/)
  })

  it('launches a program as a programmatic dependent through cuLaunchKernelEx where asked (sm_90)', () => {
    const exLaunches = fake.func('int fake_ex_launch_count()') as () => number
    const exAttr = fake.func('int fake_ex_attr(int what)') as (what: number) => number
    const lastLaunch = fake.func('uint32_t fake_last_launch(int i)') as (i: number) => number
    expect(backend.canLaunchProgrammatic).toBe(true)
    const spec = (programmaticLaunch: boolean): o.ProgramSpec => ({
      language: 'cuda',
      name: 'mech_pdl',
      source: 'extern "C" __global__ void k(float* out, unsigned n, float s) {}',
      entryPoint: 'k',
      grid: [7, 3, 2],
      block: [64, 2, 1],
      sharedBytes: 1024,
      inputs: [],
      outputs: [{ shape: [4], dtype: 'float32' }],
      // At least three parameters: the stand-in cuLaunchKernel records the first three.
      scalars: [
        { type: 'u32', value: 9 },
        { type: 'f32', value: 0.5 },
      ],
      programmaticLaunch,
    })
    const before = launches()
    const ex = exLaunches()
    const [a] = backend.runProgram(spec(false))
    expect(exLaunches()).toBe(ex)
    const [b] = backend.runProgram(spec(true))
    expect(launches()).toBe(before + 2)
    expect(exLaunches()).toBe(ex + 1)
    // One attribute: CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (6), allowed = 1.
    expect([exAttr(0), exAttr(1), exAttr(2)]).toEqual([1, 6, 1])
    expect([0, 1, 2, 3, 4, 5, 6].map(lastLaunch)).toEqual([7, 3, 2, 64, 2, 1, 1024])
    expect(BigInt(lastParam(0))).toBe(backend.ptr(b))
    backend.release(a.dataId)
    backend.release(b.dataId)
  })

  it('times with CUDA events and reports pooled memory; dispose frees every allocation', async () => {
    const t = await backend.time(() => {})
    expect(t).toMatchObject({ deviceMs: 1.5, source: 'device' })
    const x = o.zeros([1000], { backend })
    x.dispose()
    expect(backend.memory().pooledBytes).toBeGreaterThan(0)
    expect(backend.memory().liveBuffers).toBe(0)
    const stats = backend.allocator.stats()
    expect(liveAllocs()).toBe(stats.deviceAllocations)
    o.disposeBackend('cuda')
    expect(liveAllocs()).toBe(0)
  })
})
