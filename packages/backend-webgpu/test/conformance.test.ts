import { CORE_KERNELS, listKernels } from '@attnkit/core'
import { allCases, runCase } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { startWebGPU } from './helpers.js'

const { gpu, cpu, reason } = await startWebGPU()
const only = process.env.ATTNKIT_CASES?.split(',')

// Every case of the core conformance suite, each dtype it lists, on WebGPU against the CPU
// reference in float64: forward outputs, gradients, and no leaked tensors.
describe.skipIf(!gpu)(`conformance: webgpu${reason ? ` [skipped: ${reason}]` : ''}`, () => {
  for (const c of allCases()) {
    if (only && !only.some((p) => c.name.startsWith(p))) continue
    for (const dtype of c.dtypes) {
      it(`${c.name} ${dtype}`, async () => {
        const results = await runCase(c, dtype, gpu!, cpu)
        for (const r of results)
          expect(r.ok, `${r.check}: ${r.detail} (error ${r.error}, tol ${r.tolerance})`).toBe(true)
      })
    }
  }

  it('registers every kernel of the contract', () => {
    const have = new Set(listKernels('webgpu'))
    expect(CORE_KERNELS.filter((k) => !have.has(k))).toEqual([])
  })
})
