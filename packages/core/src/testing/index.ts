/**
 * @attnkit/core/testing: the backend conformance suite. Any backend package runs it against
 * itself; every case is checked against the CPU reference computing in float64.
 *
 *   import { allCases, runCase } from '@attnkit/core/testing'
 *   for (const c of allCases()) for (const dtype of c.dtypes)
 *     it(`${c.name} ${dtype}`, async () => { for (const r of await runCase(c, dtype, gpu, cpu)) expect(r.ok, r.detail).toBe(true) })
 */
export { allCases, type Dist, FLOATS, type InputSpec, type OpCase } from './cases.js'
export { baseTolerance, type Comparison, compareArrays, compareExact } from './compare.js'
export { type GradCheckResult, gradCheckCase, numericGradient } from './gradcheck.js'
export {
  type CheckResult,
  type ConformanceOptions,
  type ConformanceSummary,
  formatSummary,
  makeInputValues,
  runCase,
  runConformance,
  selectCases,
} from './runner.js'
