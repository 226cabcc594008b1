// The backend end to end on the CPU: the stand-in libraries compile every kernel source with g++
// against test/fake-cuda/emu.h (CUDA threads as fibers, warp collectives and mma.sync emulated),
// and the conformance suite runs against the CPU reference. This checks kernel indexing, masks,
// reductions and the argument order between TypeScript and CUDA C without a GPU.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { backend as coreBackend } from '@attnkit/core'
import { formatSummary, runCase, runConformance } from '@attnkit/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { flashCases } from '../device/flash-cases.js'
import { type CudaBackend, createCudaBackend } from '../src/index.js'
import { findCudaInclude } from '../src/libraries.js'

const here = dirname(fileURLToPath(import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'attnkit-emu-'))
const cache = process.env.ATTNKIT_EMU_CACHE ?? join(dir, 'cache')
mkdirSync(cache, { recursive: true })
const so = join(dir, 'libfake.so')
const cc = spawnSync(
  'cc',
  ['-shared', '-fPIC', '-O1', '-o', so, join(here, 'fake-cuda', 'fake_cuda.c'), '-ldl'],
  {
    encoding: 'utf8',
  },
)
const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' })
const include = findCudaInclude()
const ready = !cc.error && cc.status === 0 && !gxx.error && gxx.status === 0 && include !== undefined
if (ready)
  for (const name of ['libcuda.so.1', 'libnvrtc.so.13', 'libcublasLt.so.13'])
    copyFileSync(so, join(dir, name))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const only = process.env.ATTNKIT_EMU_ONLY?.split(',')

describe('kernels emulated on the CPU', () => {
  if (!ready) {
    it.skip('needs cc, g++ and the CUDA headers (cuda_fp16.h) to emulate the kernels', () => {})
    return
  }
  let backend: CudaBackend
  it('start the backend on the stand-in libraries', async () => {
    process.env.ATTNKIT_FAKE_EMU_DIR = join(here, 'fake-cuda')
    process.env.ATTNKIT_FAKE_EMU_CACHE = cache
    process.env.ATTNKIT_FAKE_CUDA_INCLUDE = include
    backend = await createCudaBackend({ libraries: { libDirs: [dir] }, cacheDir: false })
  })

  it('pass the conformance suite against the CPU reference', async () => {
    const summary = await runConformance(backend, { only })
    console.log(formatSummary(summary))
    expect(summary.failed).toBe(0)
  }, 1_800_000)

  it.skipIf(only !== undefined)(
    'pass the multi-tile flash-attention cases (tensor-core path)',
    async () => {
      const cpu = await coreBackend('cpu')
      const failures: string[] = []
      // CI checks bfloat16 only (float16 differs in the mma type, which the conformance suite covers).
      const dtypes = process.env.CI ? ['bfloat16'] : undefined
      // The stand-in device reports compute capability 9.0: the Hopper kernels (wgmma, emulated
      // through their shared-memory descriptors) by default, then the mma.sync ones.
      try {
        for (const path of ['wgmma', 'mma.sync']) {
          process.env.ATTNKIT_FLASH_WGMMA = path === 'wgmma' ? '' : '0'
          for (const c of flashCases())
            for (const dtype of c.dtypes.filter((d) => !dtypes || dtypes.includes(d)))
              for (const r of await runCase(c, dtype, backend, cpu))
                if (!r.ok)
                  failures.push(`${path} ${c.name} ${dtype} ${r.check}: ${r.error} ${r.detail ?? ''}`)
        }
      } finally {
        delete process.env.ATTNKIT_FLASH_WGMMA
      }
      expect(failures).toEqual([])
    },
    1_800_000,
  )
})
