import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type MosaCudaOptions, mosaCudaSource } from '../src/kernels/mosa.cu.js'

function nvccMissing(): string | undefined {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'nvcc is not on PATH'
  }
}
const missing = nvccMissing()

describe.skipIf(missing)(`CUDA source compiles for sm_90a${missing ? ` (skipped: ${missing})` : ''}`, () => {
  // The shipped source per head dim, the earlier forward attention, and the register forward's
  // other key tiles, the earlier backward.
  it.each([
    [32, {}],
    [64, {}],
    [128, {}],
    [96, {}],
    [64, { registerBackward: false }],
    [64, { registerAttend: false }],
    [64, { attendKeyTile: 16 }],
    [64, { attendKeyTile: 16, attendSplitQ: false, attendMinBlocks: 3 }],
    [64, { attendKeyTile: 64, attendSplitQ: false }],
  ] as [number, MosaCudaOptions][])('head dim %i, %j: no errors, no warnings', (D, opts) => {
    const dir = mkdtempSync(join(tmpdir(), 'mosa-nvcc-'))
    try {
      const file = join(dir, `mosa${D}.cu`)
      writeFileSync(file, mosaCudaSource(D, opts))
      const out = execFileSync(
        'nvcc',
        ['-gencode=arch=compute_90a,code=sm_90a', '-cubin', '-o', '/dev/null', '-x', 'cu', file],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      )
      expect(out).not.toMatch(/warning/i)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
