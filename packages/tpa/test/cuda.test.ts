import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Backend, DType, ProgramSpec, TensorInfo } from '@attnkit/core'
import { getKernel } from '@attnkit/core'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CACHE_WRITE_KERNEL,
  COPY_KERNEL,
  DECODE_COMBINE_KERNEL,
  DECODE_PARTIAL_KERNEL,
  DEVICE_DELAY_KERNEL,
  ensureKernelsRegistered,
  recordLayout,
  resolveConfig,
  type TpaConfig,
} from '../src/index.js'
import { cudaMmaLayout } from '../src/kernels/plan.js'
import { fusedSuite } from './fused-suite.js'
import { tryBackend } from './gpu-helpers.js'

const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).status === 0
if (!nvcc) console.log('skipping the CUDA compile test: nvcc is not on PATH')

/** A stand-in 'cuda' backend that records the programs the kernel functions would launch. */
function recorder(): { backend: Backend; specs: ProgramSpec[] } {
  const specs: ProgramSpec[] = []
  const backend = {
    name: 'cuda',
    runProgram(spec: ProgramSpec): TensorInfo[] {
      specs.push(spec)
      return spec.outputs.map((o) => ({ dataId: {}, shape: o.shape, dtype: o.dtype }))
    },
  } as unknown as Backend
  return { backend, specs }
}

const info = (shape: number[], dtype: DType): TensorInfo => ({ dataId: {}, shape, dtype })

const COMPILE_CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 1024, heads: 16, headDim: 64 },
  { variant: 'tpa', dModel: 1024, heads: 32, headDim: 32, kRank: 4, vRank: 4 },
  { variant: 'tpa', dModel: 2048, heads: 32, headDim: 128, qRank: 12, kRank: 1, vRank: 4 },
  { variant: 'tpa-kvonly', dModel: 768, heads: 12, headDim: 64, kRank: 3, vRank: 3 },
  { variant: 'mha', dModel: 256, heads: 4, headDim: 64 },
  { variant: 'gqa', dModel: 1024, heads: 16, kvHeads: 4, headDim: 64 },
]

describe.skipIf(!nvcc)('CUDA sources compile with nvcc for sm_90a', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpa-nvcc-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  ensureKernelsRegistered()

  for (const dtype of ['float32', 'float16', 'bfloat16'] as DType[]) {
    it(`every kernel, ${dtype}, ${COMPILE_CONFIGS.length} layer shapes`, async () => {
      const { backend, specs } = recorder()
      let mmaShapes = 0
      for (const config of COMPILE_CONFIGS) {
        const c = resolveConfig({ ...config, dtype })
        const layout = recordLayout(c)
        const B = 2
        const shape = {
          batch: B,
          heads: c.heads,
          headDim: c.headDim,
          kRank: c.k.rank,
          vRank: c.v.rank,
          layout,
          storeCap: 100,
          tailCap: 3,
          storeLen: 90,
          tailLen: 3,
          dtype,
        }
        const run = (name: string, inputs: Record<string, TensorInfo>, attrs: object) =>
          getKernel(name, 'cuda')!.kernelFunc({ inputs, attrs, backend })
        const inputs: Record<string, TensorInfo> = {
          q: info([B, c.heads, c.headDim], dtype),
          store: info([B, 100, layout.size], dtype),
          tail: info([B, 3, layout.size], dtype),
        }
        if (!layout.aK) inputs.aKc = info([c.heads, c.k.rank], dtype)
        if (!layout.aV) inputs.aVc = info([c.heads, c.v.rank], dtype)
        run(DECODE_PARTIAL_KERNEL, inputs, {
          shape,
          kernel: 'fma',
          splits: 4,
          tokensPerSplit: 32,
          scoreScale: 0.1,
        })
        if (typeof cudaMmaLayout(shape) !== 'string') {
          mmaShapes++
          run(DECODE_PARTIAL_KERNEL, inputs, {
            shape,
            kernel: 'mma',
            splits: 4,
            tokensPerSplit: 32,
            scoreScale: 0.1,
          })
        }
        run(
          DECODE_COMBINE_KERNEL,
          { partO: info([B, 4, c.heads, c.headDim], 'float32'), partML: info([B, 4, c.heads, 2], 'float32') },
          { shape, splits: 4, outScale: 0.5 },
        )
        run(CACHE_WRITE_KERNEL, { store: inputs.store, src: info([B, 5, layout.size], dtype) }, { offset: 7 })
      }
      getKernel(COPY_KERNEL, 'cuda')!.kernelFunc({
        inputs: { x: info([1024], 'float32') },
        attrs: {},
        backend,
      })
      getKernel(DEVICE_DELAY_KERNEL, 'cuda')!.kernelFunc({ inputs: {}, attrs: { micros: 100 }, backend })
      // The tensor-core kernel fits the two shapes with h % 16 == 0 and R_K == R_V in {2, 4} (16-bit only).
      expect(mmaShapes).toBe(dtype === 'float32' ? 0 : 2)
      const unique = new Map<string, ProgramSpec>()
      for (const spec of specs) {
        expect(spec.language).toBe('cuda')
        expect(spec.source).toContain(`${spec.entryPoint}(`)
        unique.set(spec.source, spec)
      }
      // Two at a time (two cores here); each failure names the program and carries nvcc's message.
      const specList = [...unique.values()]
      const failures: string[] = []
      for (let i = 0; i < specList.length; i += 2) {
        const batch = specList.slice(i, i + 2).map((spec, k) => {
          const file = join(dir, `${dtype}-${i + k}-${spec.entryPoint}.cu`)
          writeFileSync(file, spec.source)
          return compile(file).then(
            (err) => err && failures.push(`${spec.name} (${spec.entryPoint}):\n${err}`),
          )
        })
        await Promise.all(batch)
      }
      expect(failures.join('\n\n')).toBe('')
    })
  }
})

function compile(file: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(
      'nvcc',
      ['-gencode=arch=compute_90a,code=sm_90a', '-cubin', '-o', '/dev/null', '-x', 'cu', file],
      { encoding: 'utf8' },
      (error, _stdout, stderr) => resolve(error ? stderr || String(error) : null),
    )
  })
}

const { gpu, reason } = await tryBackend('cuda')
if (!gpu) console.log(`skipping the CUDA runtime tests: ${reason}`)

const RUN_CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 64, heads: 16, headDim: 64 },
  { variant: 'tpa', dModel: 64, heads: 32, headDim: 32, qRank: 3, kRank: 4, vRank: 4 },
  { variant: 'tpa', dModel: 64, heads: 4, headDim: 32, qRank: 2, kRank: 3, vRank: 1 },
  { variant: 'tpa-kvonly', dModel: 64, heads: 8, headDim: 64 },
  { variant: 'mha', dModel: 64, heads: 4, headDim: 32 },
  { variant: 'gqa', dModel: 64, heads: 8, kvHeads: 2, headDim: 64 },
]

describe.skipIf(!gpu)('CUDA fused kernels match the portable path', () => {
  // Tensor cores where the shape fits (16-bit, h % 16 == 0, R_K == R_V in {2, 4}); else the FMA kernel.
  fusedSuite(gpu, RUN_CONFIGS, ['float32', 'float16', 'bfloat16'], { store: 300, tail: 7 }, [
    {
      name: 'tensor cores, many splits',
      tuning: { targetBlocks: 16, minTokensPerSplit: 8, tensorCores: true },
    },
    {
      name: 'tensor cores, one split',
      tuning: { targetBlocks: 1, minTokensPerSplit: 1 << 20, tensorCores: true },
    },
  ])
})
