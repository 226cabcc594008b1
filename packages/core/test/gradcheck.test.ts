import { describe, expect, it } from 'vitest'
import { allCases, gradCheckCase } from '../src/testing/index.js'

// Every differentiable op's analytic gradient (float64) against central finite differences.
describe('gradients vs finite differences (float64)', () => {
  const cases = allCases().filter(
    (c) =>
      (c.grad ?? true) &&
      c.finiteDiff !== false &&
      Object.values(c.inputs).some((s) => !s.dtype || s.dtype.startsWith('float')),
  )
  for (const c of cases) {
    it(c.name, () => {
      for (const r of gradCheckCase(c)) {
        expect(r.ok, `${c.name} d/d${r.input}: max abs ${r.maxAbsError}, max rel ${r.maxRelError}`).toBe(true)
      }
    })
  }
})
