import { describe, expect, it } from 'vitest'
import { CORE_KERNELS, getBackend, listKernels } from '../src/index.js'
import { allCases, runCase } from '../src/testing/index.js'

// The CPU backend computing in float32 / float16 / bfloat16 against itself in float64: checks
// rounding, dtype handling and every kernel's float paths (reference.test.ts checks the float64
// maths itself against direct definitions).
describe('conformance: cpu', () => {
  const cpu = getBackend()
  for (const c of allCases()) {
    for (const dtype of c.dtypes) {
      it(`${c.name} ${dtype}`, async () => {
        const results = await runCase(c, dtype, cpu, cpu)
        for (const r of results)
          expect(r.ok, `${r.check}: ${r.detail} (error ${r.error}, tol ${r.tolerance})`).toBe(true)
      })
    }
  }

  it('covers every kernel of the contract', () => {
    const covered = new Set(allCases().flatMap((c) => c.kernels))
    const missing = CORE_KERNELS.filter((k) => !covered.has(k))
    expect(missing).toEqual([])
  })

  it('registers every kernel of the contract on the CPU', () => {
    const have = new Set(listKernels('cpu'))
    expect(CORE_KERNELS.filter((k) => !have.has(k))).toEqual([])
  })
})
