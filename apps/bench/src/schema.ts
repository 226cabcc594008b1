/**
 * The results file (results.json): its TypeScript type and a runtime validator. Bump
 * RESULTS_VERSION on any incompatible change; `compare` refuses files of another version.
 */

export const RESULTS_SCHEMA = 'attnkit-bench/results'
export const RESULTS_VERSION = 1

export const MODES = ['forward', 'forward+backward', 'decode'] as const
export type Mode = (typeof MODES)[number]

export const CELL_STATUSES = ['ok', 'failed', 'error', 'skipped', 'unavailable'] as const
/**
 * ok: ran, and correctness passed (or was not requested); failed: ran, correctness failed;
 * error: threw; skipped: not run on purpose (too large for the backend, dtype unsupported);
 * unavailable: its backend or mechanism package could not be loaded.
 */
export type CellStatus = (typeof CELL_STATUSES)[number]

/** Named sizes of a cell: batch, heads, seqLen, headDim for attention; m, n, k for matmul. */
export type Dims = Record<string, number>

export interface Correctness {
  /** Always 'cpu-float64': the CPU reference backend in float64 on the same seeded inputs. */
  reference: 'cpu-float64'
  /** The sizes the check ran at (the cell's own, or smaller where the CPU could not do them). */
  dims: Dims
  /**
   * The dtype the backend computed in for the check: the cell's, or float32 for mechanisms whose
   * discrete choices (top-k routing, keep thresholds) flip under 16-bit rounding (inputs are
   * still rounded to the cell's dtype).
   */
  computeDType: string
  /** Max over outputs of max |actual - reference| / max |reference|; null when not finite (see problem). */
  maxRelError: number | null
  tolerance: number
  passed: boolean
  /** Names of the compared outputs, e.g. ['out'] or ['dq', 'dk', 'dv']. */
  outputs: string[]
  /** The output with the largest error, and a structural problem if any (NaN, length). */
  worstOutput?: string
  problem?: string
}

export interface Timing {
  /** 'device' when the backend timed with device timers, 'host' for wall-clock. */
  source: 'device' | 'host'
  warmup: number
  repeats: number
  medianMs: number
  p10Ms: number
  p90Ms: number
  minMs: number
  maxMs: number
  /** Host wall-clock median (launch + synchronisation included). */
  wallMedianMs: number
  samplesMs: number[]
}

export interface Throughput {
  flopsPerSecond: number
  bytesPerSecond: number
  /** Fractions of the device's peak (from backend.info().peak); null where it has none. */
  flopsFractionOfPeak: number | null
  bytesFractionOfPeak: number | null
}

export interface CellResult {
  /** Stable key: mechanism/variant/backend/mode/dtype/dims; `compare` matches cells by it. */
  key: string
  mechanism: string
  variant: string
  backend: string
  mode: Mode
  dtype: string
  dims: Dims
  /** Short human label of the dims, e.g. "B1 H8 T512 D64". */
  label: string
  /** Set on the cells a preset puts first (the foundation's headline numbers). */
  headline?: string
  status: CellStatus
  /** Why a cell is not ok: the error message, skip reason or unavailability reason. */
  reason?: string
  correctness: Correctness | null
  timing: Timing | null
  /** From the cost model, per timed run. */
  cost: { flops: number; bytes: number } | null
  throughput: Throughput | null
  /** Peak live bytes on the backend from set-up through one timed run (inputs included). */
  peakBytes: number | null
  /** Bytes a decode cache holds at this cell's context (null where the mechanism has none). */
  kvCacheBytes: number | null
  /** How the mechanism set the cell up, where that matters (e.g. how a decode cache was filled). */
  note?: string
  /**
   * Wall-clock seconds the cell took in all (set-up, warm-up, timed runs, correctness check),
   * how many of them the workload's set-up took (parameters, inputs, a decode cache's fill) and
   * how many the correctness check (the CPU reference included). Older files lack `setup`.
   */
  wallS?: { total: number; setup?: number; check: number }
  warnings: string[]
}

export interface BackendReport {
  name: string
  status: 'ok' | 'unavailable'
  reason?: string
  device?: string
  details?: Record<string, string | number | boolean>
  features?: string[]
  peak?: { flopsPerSecond?: Record<string, number>; bytesPerSecond?: number }
  /** Package version of the backend. */
  version?: string | null
}

export interface MechanismReport {
  name: string
  status: 'ok' | 'unavailable'
  reason?: string
  variants?: string[]
  version?: string | null
}

export interface KvCacheSeries {
  mechanism: string
  variant: string
  dtype: string
  dims: Dims
  points: { context: number; bytes: number }[]
}

export interface MachineInfo {
  hostname: string
  os: string
  arch: string
  cpu: string
  cpuCount: number
  memoryBytes: number
  node: string
}

export interface RunSession {
  startedAt: string
  command: string[]
  /** The git commit of the code that ran the session. */
  commit: string | null
  durationS: number
  /** Cells the session finished (not counting those its time limit left out). */
  cells: number
  /** False when it was stopped before it could write its reports. */
  completed: boolean
}

export interface BenchResults {
  schema: typeof RESULTS_SCHEMA
  version: typeof RESULTS_VERSION
  createdAt: string
  /** Seconds the whole run took. */
  durationS: number
  command: string[]
  /**
   * A run continued with --resume: each session of the command (durationS above is their sum;
   * a session that was stopped counts to its last finished cell).
   */
  sessions?: RunSession[]
  preset: string
  seed: number
  machine: MachineInfo
  /** @attnkit/* package versions (null where a package is missing) and the git commit. */
  packages: Record<string, string | null>
  git: { commit: string | null; dirty: boolean | null }
  backends: BackendReport[]
  mechanisms: MechanismReport[]
  cells: CellResult[]
  kvCache: KvCacheSeries[]
  summary: Record<CellStatus, number> & { total: number }
  notes: string[]
}

// ------------------------------------------------------------------ validation

type Check = (v: unknown, path: string, problems: string[]) => void

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

function type(expected: string, test: (v: unknown) => boolean): Check {
  return (v, path, problems) => {
    if (!test(v)) problems.push(`${path}: expected ${expected}, got ${describe(v)}`)
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}...` : v}"`
  if (typeof v === 'number') return String(v)
  return typeof v
}

const str = type('a string', (v) => typeof v === 'string')
const num = type('a number', (v) => typeof v === 'number' && !Number.isNaN(v))
const finiteNonNeg = type(
  'a finite number >= 0',
  (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0,
)
const bool = type('a boolean', (v) => typeof v === 'boolean')
const oneOf = (values: readonly string[]): Check =>
  type(`one of ${values.join(', ')}`, (v) => typeof v === 'string' && values.includes(v))
const nullable =
  (c: Check): Check =>
  (v, p, problems) => {
    if (v !== null) c(v, p, problems)
  }
const optional =
  (c: Check): Check =>
  (v, p, problems) => {
    if (v !== undefined) c(v, p, problems)
  }
const arrayOf =
  (c: Check): Check =>
  (v, p, problems) => {
    if (!Array.isArray(v)) problems.push(`${p}: expected an array, got ${describe(v)}`)
    else
      v.forEach((x, i) => {
        c(x, `${p}[${i}]`, problems)
      })
  }
const recordOf =
  (c: Check): Check =>
  (v, p, problems) => {
    if (!isObj(v)) problems.push(`${p}: expected an object, got ${describe(v)}`)
    else for (const [k, x] of Object.entries(v)) c(x, `${p}.${k}`, problems)
  }
const object =
  (fields: Record<string, Check>): Check =>
  (v, p, problems) => {
    if (!isObj(v)) {
      problems.push(`${p}: expected an object, got ${describe(v)}`)
      return
    }
    for (const [k, c] of Object.entries(fields)) c(v[k], `${p}.${k}`, problems)
  }

const correctness = object({
  reference: oneOf(['cpu-float64']),
  dims: recordOf(num),
  computeDType: str,
  maxRelError: nullable(finiteNonNeg),
  tolerance: finiteNonNeg,
  passed: bool,
  outputs: arrayOf(str),
  worstOutput: optional(str),
  problem: optional(str),
})

const timing = object({
  source: oneOf(['device', 'host']),
  warmup: finiteNonNeg,
  repeats: type('an integer >= 1', (v) => Number.isInteger(v) && (v as number) >= 1),
  medianMs: finiteNonNeg,
  p10Ms: finiteNonNeg,
  p90Ms: finiteNonNeg,
  minMs: finiteNonNeg,
  maxMs: finiteNonNeg,
  wallMedianMs: finiteNonNeg,
  samplesMs: arrayOf(finiteNonNeg),
})

const cell = object({
  key: str,
  mechanism: str,
  variant: str,
  backend: str,
  mode: oneOf(MODES),
  dtype: str,
  dims: recordOf(num),
  label: str,
  headline: optional(str),
  status: oneOf(CELL_STATUSES),
  reason: optional(str),
  correctness: nullable(correctness),
  timing: nullable(timing),
  cost: nullable(object({ flops: finiteNonNeg, bytes: finiteNonNeg })),
  throughput: nullable(
    object({
      flopsPerSecond: finiteNonNeg,
      bytesPerSecond: finiteNonNeg,
      flopsFractionOfPeak: nullable(finiteNonNeg),
      bytesFractionOfPeak: nullable(finiteNonNeg),
    }),
  ),
  peakBytes: nullable(finiteNonNeg),
  kvCacheBytes: nullable(finiteNonNeg),
  note: optional(str),
  wallS: optional(object({ total: finiteNonNeg, setup: optional(finiteNonNeg), check: finiteNonNeg })),
  warnings: arrayOf(str),
})

const results = object({
  schema: oneOf([RESULTS_SCHEMA]),
  version: type(`${RESULTS_VERSION}`, (v) => v === RESULTS_VERSION),
  createdAt: type('an ISO date string', (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v))),
  durationS: finiteNonNeg,
  command: arrayOf(str),
  sessions: optional(
    arrayOf(
      object({
        startedAt: str,
        command: arrayOf(str),
        commit: nullable(str),
        durationS: finiteNonNeg,
        cells: finiteNonNeg,
        completed: bool,
      }),
    ),
  ),
  preset: str,
  seed: num,
  machine: object({
    hostname: str,
    os: str,
    arch: str,
    cpu: str,
    cpuCount: num,
    memoryBytes: finiteNonNeg,
    node: str,
  }),
  packages: recordOf(nullable(str)),
  git: object({ commit: nullable(str), dirty: nullable(bool) }),
  backends: arrayOf(
    object({
      name: str,
      status: oneOf(['ok', 'unavailable']),
      reason: optional(str),
      device: optional(str),
      features: optional(arrayOf(str)),
    }),
  ),
  mechanisms: arrayOf(object({ name: str, status: oneOf(['ok', 'unavailable']), reason: optional(str) })),
  cells: arrayOf(cell),
  kvCache: arrayOf(
    object({
      mechanism: str,
      variant: str,
      dtype: str,
      dims: recordOf(num),
      points: arrayOf(object({ context: finiteNonNeg, bytes: finiteNonNeg })),
    }),
  ),
  summary: object({
    total: finiteNonNeg,
    ...Object.fromEntries(CELL_STATUSES.map((s) => [s, finiteNonNeg])),
  }),
  notes: arrayOf(str),
})

/** Problems with a parsed results file, each naming the path, expected and actual; [] when valid. */
export function validateResults(value: unknown): string[] {
  const problems: string[] = []
  results(value, 'results', problems)
  if (problems.length === 0) {
    const r = value as BenchResults
    const counts = Object.fromEntries(CELL_STATUSES.map((s) => [s, 0])) as Record<CellStatus, number>
    for (const c of r.cells) counts[c.status]++
    for (const s of CELL_STATUSES) {
      if (counts[s] !== r.summary[s])
        problems.push(`results.summary.${s}: ${r.summary[s]} but ${counts[s]} cells`)
    }
    if (r.summary.total !== r.cells.length)
      problems.push(`results.summary.total: ${r.summary.total} but ${r.cells.length} cells`)
    r.cells.forEach((c, i) => {
      if (c.status === 'ok' || c.status === 'failed') {
        if (!c.timing) problems.push(`results.cells[${i}] (${c.key}): status ${c.status} without timing`)
      } else if (!c.reason)
        problems.push(`results.cells[${i}] (${c.key}): status ${c.status} without a reason`)
      if (c.status === 'failed' && c.correctness?.passed !== false)
        problems.push(`results.cells[${i}] (${c.key}): status failed but correctness did not fail`)
      if (c.status === 'ok' && c.correctness && !c.correctness.passed)
        problems.push(`results.cells[${i}] (${c.key}): status ok but correctness failed`)
    })
  }
  return problems
}

/** Throws an error listing the problems (at most 10) when `value` is not a valid results file. */
export function assertResults(value: unknown, source: string): asserts value is BenchResults {
  const problems = validateResults(value)
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join('\n  ')
    const more = problems.length > 10 ? `\n  ... and ${problems.length - 10} more` : ''
    throw new Error(`${source} is not a valid ${RESULTS_SCHEMA} v${RESULTS_VERSION} file:\n  ${shown}${more}`)
  }
}
