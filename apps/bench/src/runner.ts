import { type Backend, type DType, dispose, memory, resetPeakMemory, setBackend } from '@attnkit/core'
import type { LoadedBackend } from './backends.js'
import { checkCorrectness, ReferenceCache } from './correctness.js'
import { NOT_RUN_PREFIX, type PriorResults, type RunRecorder } from './journal.js'
import { type MechanismAdapter, requireDims, requireVariant } from './mechanisms/adapter.js'
import { makeContext } from './mechanisms/context.js'
import { attentionLabel } from './mechanisms/dense.js'
import { firstLine } from './optional-imports.js'
import { cellKey, type PlannedCell } from './plan.js'
import type { Progress } from './progress.js'
import type { CellResult, Correctness, Timing } from './schema.js'
import { median, quantile } from './stats.js'

export interface RunSettings {
  seed: number
  warmup: number
  repeats: number
  minRepeats: number
  cellBudgetMs: number
  /** Sweeps stop after a size whose median run is slower than this. */
  fitMs: number
  check: boolean
  /**
   * The CPU reference is pure TypeScript: cells whose cost-model estimate (cpuSeconds) exceeds
   * this per run, or CPU_SETUP_FACTOR times it for set-up, are skipped on it.
   */
  cpuMaxSeconds: number
  /** A cell running longer is stopped (its worker process is killed) and reported as an error. */
  cellTimeoutS: number
  /** Epoch ms after which no further cell starts (they are skipped, saying so); none when absent. */
  deadline?: number
  /**
   * A CPU cell running longer than this is stopped and reported skipped (too slow for the CPU
   * reference: its cost model misjudged it); only where backends run in worker processes.
   */
  cpuCellTimeoutS: number
  /** Run the CPU backend at the same time as the GPU backends, on its own core. */
  cpuAlongside: boolean
  /** Where the run's processes share CPU references (see reference-store.ts); none: in memory. */
  referenceDir?: string
}

export const DEFAULT_CPU_CELL_TIMEOUT_S = 60

export const DEFAULT_CPU_MAX_SECONDS = 2.5
export const CPU_SETUP_FACTOR = 8
/** Rates the CPU reference reaches on this project's kernels (matmul ~4.5 GFLOP/s, attention ~1.5). */
const CPU_FLOPS_PER_SECOND = 2e9
const CPU_BYTES_PER_SECOND = 1e9

/** Seconds the CPU reference needs for `cost`, roughly, from the cost model. */
export function cpuSeconds(cost: { flops: number; bytes: number }): number {
  return cost.flops / CPU_FLOPS_PER_SECOND + cost.bytes / CPU_BYTES_PER_SECOND
}

/** Where a backend's cell loop reports: the progress bar in-process, the parent from a worker. */
export interface CellHooks {
  begin(index: number, label: string): void | Promise<void>
  end(index: number, result: CellResult): void | Promise<void>
}

/** A short description of a cell for progress lines. */
export function cellTitle(cell: PlannedCell, backendName: string, label: string): string {
  return `${backendName} ${cell.mechanism}/${cell.variant} ${cell.mode} ${label} ${cell.dtype}`
}

/**
 * Runs the planned cells on one backend, in order. Nothing a cell does stops the loop: errors,
 * skips and an unavailable backend or mechanism become the cell's status and reason. A sweep's
 * remaining sizes are left out once one size does not fit (`stoppedSeries`, shared with the
 * caller so a restarted loop keeps it).
 */
export async function runBackendCells(
  plan: readonly PlannedCell[],
  loaded: LoadedBackend,
  adapters: ReadonlyMap<string, MechanismAdapter>,
  unavailableMechanisms: ReadonlyMap<string, string>,
  settings: RunSettings,
  hooks: CellHooks,
  stoppedSeries: Set<string> = new Set(),
  references: ReferenceCache = new ReferenceCache(),
  prior?: PriorResults,
): Promise<CellResult[]> {
  const results: CellResult[] = []
  for (const [index, cell] of plan.entries()) {
    if (cell.series && stoppedSeries.has(cell.series)) continue
    const adapter = adapters.get(cell.mechanism)
    const base = baseResult(cell, loaded.name, adapter)
    const earlier = prior?.cells.get(base.key)
    if (earlier) {
      // Finished by an earlier session of a resumed run (see journal.ts).
      noteSweepStop(cell, { ...earlier, warnings: [] }, settings.fitMs, stoppedSeries)
      results.push(earlier)
      continue
    }
    await hooks.begin(index, cellTitle(cell, loaded.name, base.label))
    let result: CellResult
    if (!loaded.backend)
      result = { ...base, status: 'unavailable', reason: `backend ${loaded.name}: ${loaded.reason}` }
    else if (!adapter)
      result = {
        ...base,
        status: 'unavailable',
        reason: `mechanism ${cell.mechanism}: ${unavailableMechanisms.get(cell.mechanism) ?? 'not loaded'}`,
      }
    else if (settings.deadline !== undefined && Date.now() > settings.deadline)
      result = {
        ...base,
        status: 'skipped',
        reason: `${NOT_RUN_PREFIX} the backend's share of the run's time limit (--max-minutes) was used up (--resume runs it)`,
      }
    else {
      const started = performance.now()
      result = await runCell(cell, loaded.backend, adapter, base, settings, references)
      result.wallS = {
        total: (performance.now() - started) / 1e3,
        setup: result.wallS?.setup ?? 0,
        check: result.wallS?.check ?? 0,
      }
    }
    noteSweepStop(cell, result, settings.fitMs, stoppedSeries)
    results.push(result)
    await hooks.end(index, result)
  }
  return results
}

/** Stops the cell's sweep after it when it did not fit, saying so on the cell. */
export function noteSweepStop(cell: PlannedCell, r: CellResult, fitMs: number, stopped: Set<string>): void {
  if (!cell.series) return
  const why = sweepStop(r, fitMs)
  if (!why) return
  stopped.add(cell.series)
  r.warnings.push(`the sweep stops here: ${why}`)
}

/**
 * Progress hooks over one backend's pass through a plan: cells a stopped sweep leaves out shrink
 * the total; cells an earlier session finished (`isPrior`, for --resume) count as done from the
 * start. Every finished cell also goes to the recorder (the run's journal).
 */
export function progressHooks(
  progress: Progress,
  plan: readonly PlannedCell[],
  opts: { recorder?: RunRecorder; isPrior?: (index: number) => boolean } = {},
): CellHooks & { finish(): void } {
  const isPrior = opts.isPrior ?? (() => false)
  let last = -1
  const labels = new Map<number, string>()
  const dropBetween = (from: number, to: number) => {
    let n = 0
    for (let i = from; i < to; i++) if (!isPrior(i)) n++
    progress.drop(n)
  }
  progress.resumed(plan.reduce((n, _, i) => n + (isPrior(i) ? 1 : 0), 0))
  return {
    begin(index: number, label: string) {
      dropBetween(last + 1, index)
      last = index
      labels.set(index, label)
      progress.begin(label)
    },
    end(index: number, result: CellResult) {
      opts.recorder?.cell(result)
      progress.end(result, labels.get(index) ?? cellTitle(plan[index], result.backend, result.label))
      labels.delete(index)
    },
    /** Call when the loop is over, to account for skipped cells at the end. */
    finish() {
      dropBetween(last + 1, plan.length)
    },
  }
}

/** Whether plan cell `index` on `backend` was finished by an earlier session. */
export function priorTest(
  plan: readonly PlannedCell[],
  backend: string,
  prior?: PriorResults,
): (index: number) => boolean {
  if (!prior || prior.cells.size === 0) return () => false
  return (index) => prior.cells.has(cellKey({ ...plan[index], backend }))
}

/** Runs every planned cell on every backend, in this process. */
export async function runMatrix(
  plan: readonly PlannedCell[],
  backends: readonly LoadedBackend[],
  adapters: ReadonlyMap<string, MechanismAdapter>,
  unavailableMechanisms: ReadonlyMap<string, string>,
  settings: RunSettings,
  progress: Progress,
  recorder?: RunRecorder,
  prior?: PriorResults,
): Promise<CellResult[]> {
  const references = new ReferenceCache(settings.referenceDir)
  const results: CellResult[] = []
  progress.start(plan.length * backends.length)
  for (const loaded of backends) {
    const hooks = progressHooks(progress, plan, { recorder, isPrior: priorTest(plan, loaded.name, prior) })
    results.push(
      ...(await runBackendCells(
        plan,
        loaded,
        adapters,
        unavailableMechanisms,
        settings,
        hooks,
        new Set(),
        references,
        prior,
      )),
    )
    hooks.finish()
  }
  progress.finish()
  return results
}

function sweepStop(r: CellResult, fitMs: number): string | null {
  if (r.status === 'error' || r.status === 'skipped' || r.status === 'unavailable')
    return `${r.label} did not run (${r.status})`
  if (r.timing && r.timing.medianMs > fitMs)
    return `${r.label} took ${r.timing.medianMs.toFixed(0)} ms per run (> ${fitMs} ms)`
  return null
}

export function baseResult(
  cell: PlannedCell,
  backendName: string,
  adapter: MechanismAdapter | undefined,
): CellResult {
  let cost: CellResult['cost'] = null
  let kv: number | null = null
  let note: string | undefined
  if (adapter) {
    try {
      cost = adapter.cost(cell.dims, cell.variant, cell.mode, cell.dtype)
      kv = adapter.kvCacheBytes(cell.dims, cell.variant, cell.dtype, cell.dims.seqLen ?? 0)
      note = adapter.note?.(cell.dims, cell.variant, cell.mode)
    } catch {
      // Reported by runCell, which validates dims and variant first.
    }
  }
  return {
    key: cellKey({ ...cell, backend: backendName }),
    mechanism: cell.mechanism,
    variant: cell.variant,
    backend: backendName,
    mode: cell.mode,
    dtype: cell.dtype,
    dims: cell.dims,
    label: adapter ? adapter.label(cell.dims) : defaultLabel(cell.dims),
    ...(cell.headline ? { headline: cell.headline } : {}),
    status: 'ok',
    correctness: null,
    timing: null,
    cost,
    throughput: null,
    peakBytes: null,
    kvCacheBytes: kv,
    ...(note ? { note } : {}),
    warnings: [],
  }
}

function defaultLabel(dims: Record<string, number>): string {
  if (['batch', 'heads', 'seqLen', 'headDim'].every((k) => k in dims)) return attentionLabel(dims)
  return Object.entries(dims)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}

function tooLargeForCpu(cost: CellResult['cost'], limit: number, what: string, slowdown = 1): string | null {
  if (!cost) return null
  const est = cpuSeconds(cost) * slowdown
  if (est <= limit) return null
  const measured = slowdown !== 1 ? `, ${slowdown}x its rates as measured for this mechanism` : ''
  return `too large for cpu: ${what} would take about ${est.toFixed(1)} s by the cost model (${(cost.flops / 1e9).toFixed(1)} GFLOP, ${(cost.bytes / 2 ** 20).toFixed(0)} MiB moved${measured}) > ${limit.toFixed(1)} s (raise with --cpu-max-seconds)`
}

async function runCell(
  cell: PlannedCell,
  backend: Backend,
  adapter: MechanismAdapter,
  base: CellResult,
  s: RunSettings,
  references: ReferenceCache,
): Promise<CellResult> {
  const r: CellResult = { ...base, warnings: [] }
  let stage = 'validating the cell'
  try {
    requireVariant(adapter, cell.variant)
    requireDims(adapter, cell.dims)
    if (!backend.supportsDType(cell.dtype))
      return { ...r, status: 'skipped', reason: `backend ${backend.name} does not support ${cell.dtype}` }
    if (backend.name === 'cpu') {
      const setup = adapter.setupCost?.(cell.dims, cell.variant, cell.mode, cell.dtype)
      const why =
        tooLargeForCpu(r.cost, s.cpuMaxSeconds, 'a run', adapter.cpuSlowdown?.(cell.mode)) ??
        (setup ? tooLargeForCpu(setup, s.cpuMaxSeconds * CPU_SETUP_FACTOR, 'set-up') : null)
      if (why) return { ...r, status: 'skipped', reason: why }
    }
    stage = 'timing'
    const liveBefore = memory(backend.name).liveTensors
    const measured = await measure(cell, backend, adapter, s)
    r.timing = measured.timing
    r.peakBytes = measured.peakBytes
    r.wallS = { total: 0, setup: measured.setupS, check: 0 }
    if (r.cost && r.timing.medianMs > 0) {
      const seconds = r.timing.medianMs / 1e3
      const peak = backend.info().peak
      const peakFlops = peak?.flopsPerSecond?.[cell.dtype]
      const peakBytes = peak?.bytesPerSecond
      const flopsPerSecond = r.cost.flops / seconds
      const bytesPerSecond = r.cost.bytes / seconds
      r.throughput = {
        flopsPerSecond,
        bytesPerSecond,
        flopsFractionOfPeak: peakFlops ? flopsPerSecond / peakFlops : null,
        bytesFractionOfPeak: peakBytes ? bytesPerSecond / peakBytes : null,
      }
    }
    if (s.check) {
      stage = 'checking correctness'
      const checkStarted = performance.now()
      r.correctness = await checkCorrectness(
        adapter,
        cell.variant,
        cell.mode,
        cell.dims,
        backend,
        cell.dtype,
        s.seed,
        references,
      )
      r.wallS.check = (performance.now() - checkStarted) / 1e3
    }
    const leaked = memory(backend.name).liveTensors - liveBefore
    if (leaked > 0)
      r.warnings.push(`${leaked} tensor(s) left alive on ${backend.name} after the cell (a leak)`)
    if (r.correctness && !r.correctness.passed)
      return { ...r, status: 'failed', reason: describeFailure(r.correctness) }
    return r
  } catch (e) {
    const late = await lateBackendErrors(backend)
    return {
      ...r,
      status: 'error',
      reason: `${stage}: ${firstLine((e as Error).message ?? String(e))}${late ? `; the backend then reported: ${late}` : ''}`,
    }
  }
}

/**
 * Errors the backend reports after the fact for a failed cell's work (WebGPU's validation errors
 * arrive asynchronously): collected here so that they are this cell's, not the next one's.
 */
async function lateBackendErrors(backend: Backend): Promise<string | null> {
  try {
    await backend.synchronize()
    return null
  } catch (e) {
    return firstLine((e as Error).message ?? String(e))
  }
}

function describeFailure(c: Correctness): string {
  const err = c.maxRelError === null ? 'not finite' : c.maxRelError.toExponential(2)
  return `correctness: max rel. error ${err} > tolerance ${c.tolerance.toExponential(1)}${
    c.worstOutput ? ` (output ${c.worstOutput})` : ''
  }${c.problem ? `; ${c.problem}` : ''}`
}

async function measure(
  cell: PlannedCell,
  backend: Backend,
  adapter: MechanismAdapter,
  s: RunSettings,
): Promise<{ timing: Timing; peakBytes: number; setupS: number }> {
  resetPeakMemory(backend.name)
  // Mechanisms create some tensors on the active backend: make it the cell's.
  await setBackend(backend)
  const ctx = makeContext(backend, cell.dtype as DType, cell.dtype as DType, s.seed)
  const setupStarted = performance.now()
  const workload = await adapter.setup(ctx, cell.dims, cell.variant, cell.mode)
  await backend.synchronize()
  const setupS = (performance.now() - setupStarted) / 1e3
  try {
    const once = () => backend.time(() => dispose(workload.run()))
    for (let i = 0; i < s.warmup; i++) await once()
    const device: number[] = []
    const wall: number[] = []
    let source: Timing['source'] = 'host'
    const started = performance.now()
    while (
      device.length < s.repeats &&
      (device.length < s.minRepeats || performance.now() - started < s.cellBudgetMs)
    ) {
      const t = await once()
      device.push(t.deviceMs)
      wall.push(t.wallMs)
      source = t.source
    }
    const peakBytes = memory(backend.name).peakBytes
    return {
      timing: {
        source,
        warmup: s.warmup,
        repeats: device.length,
        medianMs: median(device),
        p10Ms: quantile(device, 0.1),
        p90Ms: quantile(device, 0.9),
        minMs: Math.min(...device),
        maxMs: Math.max(...device),
        wallMedianMs: median(wall),
        samplesMs: device,
      },
      peakBytes,
      setupS,
    }
  } finally {
    workload.dispose()
  }
}
