import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeAttentionCudaSource } from '../src/kernels/cuda/decode-attention.js'
import { gdnCudaSource } from '../src/kernels/cuda/gdn-chunked.js'

function nvccMissing(): string {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' })
    return ''
  } catch {
    return 'nvcc is not on PATH'
  }
}
const why = nvccMissing()

/** Compiles with nvcc for the H100 (sm_90a); returns ptxas' resource report. */
function compile(name: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lte-nvcc-'))
  try {
    const file = join(dir, `${name}.cu`)
    writeFileSync(file, source)
    const out = execFileSync(
      'nvcc',
      [
        '-gencode=arch=compute_90a,code=sm_90a',
        '-cubin',
        '-Xptxas',
        '-v',
        '-o',
        join(dir, 'out.cubin'),
        '-x',
        'cu',
        file,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    )
    return out
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe.skipIf(why !== '')(
  `CUDA sources compile with nvcc for sm_90a${why ? ` (skipped: ${why})` : ''}`,
  () => {
    for (const dims of [
      { C: 64, DK: 128, DV: 128, BV: 16 },
      { C: 64, DK: 64, DV: 256, BV: 16 },
      { C: 8, DK: 8, DV: 20, BV: 16 },
    ])
      it(`chunkwise GDN, C=${dims.C} DK=${dims.DK} DV=${dims.DV}`, () => {
        expect(() => compile('gdn', gdnCudaSource(dims))).not.toThrow()
      })
    for (const D of [64, 128, 256])
      it(`LTE decode attention, head dim ${D}`, () => {
        expect(() => compile('decode', decodeAttentionCudaSource(D))).not.toThrow()
      })
  },
)
