import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { kernelVariants } from '../src/kernel-variants.js'

const kernelsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'kernels')
const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' })
const hasNvcc = !nvcc.error && nvcc.status === 0

function compile(
  file: string,
  defines: Record<string, string | number>,
  out: string,
): Promise<string | undefined> {
  // The same defines and language level NVRTC gets at run time, for Hopper's sm_90a.
  const args = [
    '-gencode=arch=compute_90a,code=sm_90a',
    '-cubin',
    '-std=c++17',
    '-DATTNKIT_NVRTC=1',
    `-I${kernelsDir}`,
    ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`),
    '-o',
    out,
    join(kernelsDir, file),
  ]
  return new Promise((resolve) => {
    const p = spawn('nvcc', args)
    let err = ''
    p.stderr.on('data', (d) => {
      err += d
    })
    p.stdout.on('data', (d) => {
      err += d
    })
    p.on('close', (code) => resolve(code === 0 ? undefined : `${file} ${JSON.stringify(defines)}:\n${err}`))
  })
}

describe('CUDA C kernels', () => {
  it.skipIf(!hasNvcc)(
    'every kernel specialisation compiles with nvcc for sm_90a',
    async () => {
      const variants = kernelVariants()
      const dir = mkdtempSync(join(tmpdir(), 'attnkit-nvcc-'))
      const failures: string[] = []
      let next = 0
      const worker = async () => {
        while (next < variants.length) {
          const i = next++
          const r = await compile(variants[i].file, variants[i].defines, join(dir, `k${i}.cubin`))
          if (r) failures.push(r)
        }
      }
      try {
        await Promise.all(
          Array.from({ length: Math.min(6, Math.max(4, 2 * availableParallelism())) }, worker),
        )
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
      expect(failures.join('\n\n')).toBe('')
    },
    900_000,
  )
  if (!hasNvcc)
    it.skip('nvcc is not on PATH: the CUDA C compile check skips (CI machines with nvcc run it)', () => {})
})
