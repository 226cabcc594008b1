/**
 * Each backend's cells run in a child process, so a native crash (a segfault in a GPU driver,
 * Dawn or an FFI call) ends one cell, not the run: the parent records the cell it was running as
 * an error and starts a new child for the cells after it.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { availableParallelism } from 'node:os'
import type { PriorResults, RunRecorder } from './journal.js'
import type { MechanismAdapter } from './mechanisms/adapter.js'
import { cellKey, type PlannedCell } from './plan.js'
import type { Progress } from './progress.js'
import { baseResult, noteSweepStop, priorTest, progressHooks, type RunSettings } from './runner.js'
import type { BackendReport, CellResult } from './schema.js'

/** What the parent sends a worker. */
export interface WorkerJob {
  backend: string
  plan: PlannedCell[]
  /** Indices into plan still to run, in order. */
  todo: number[]
  settings: RunSettings
  stoppedSeries: string[]
}

/** What a worker sends back. */
export type WorkerMessage =
  | { type: 'backend'; report: BackendReport }
  | { type: 'begin'; index: number; label: string }
  | { type: 'end'; index: number; result: CellResult }
  | { type: 'done' }

/** What the parent sends a reference helper: every cell of the plan, in the order the GPU workers go. */
export interface ReferenceJob {
  plan: PlannedCell[]
  settings: RunSettings
}

export const WORKER_COMMAND = '__worker'
export const REFERENCE_HELPER_COMMAND = '__references'
const MAX_REFERENCE_HELPERS = 6
const STDERR_TAIL_BYTES = 4096

interface Attempt {
  report?: BackendReport
  results: Map<number, CellResult>
  /** The cell begun and not ended when the child exited, if any. */
  crashedAt?: number
  exit?: string
  /** Set when the parent killed the child for running one cell too long. */
  timedOut?: boolean
  stderrTail: string
  done: boolean
}

function runWorker(
  entry: string,
  job: WorkerJob,
  cellTimeoutMs: number,
  onMessage: (m: WorkerMessage) => void,
): Promise<Attempt> {
  return new Promise((resolve) => {
    const child = fork(entry, [WORKER_COMMAND], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    const attempt: Attempt = { results: new Map(), stderrTail: '', done: false }
    let current: number | undefined
    let timer: NodeJS.Timeout | undefined
    const watch = (on: boolean) => {
      clearTimeout(timer)
      if (on)
        timer = setTimeout(() => {
          // A hung kernel or driver would otherwise stall the whole run.
          attempt.timedOut = true
          child.kill('SIGKILL')
        }, cellTimeoutMs)
    }
    child.stderr?.on('data', (chunk: Buffer) => {
      attempt.stderrTail = (attempt.stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES)
    })
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'backend') attempt.report = m.report
      else if (m.type === 'begin') {
        current = m.index
        watch(true)
      } else if (m.type === 'end') {
        attempt.results.set(m.index, m.result)
        current = undefined
        watch(false)
      } else if (m.type === 'done') attempt.done = true
      onMessage(m)
    })
    child.on('exit', (code, signal) => {
      watch(false)
      if (!attempt.done) {
        attempt.crashedAt = current
        attempt.exit = signal ? `signal ${signal}` : `exit code ${code}`
      }
      resolve(attempt)
    })
    child.send(job)
  })
}

/** The last meaningful stderr line (Dawn's noise and blank lines left out). */
function lastErrorLine(tail: string): string {
  const lines = tail
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('Warning:'))
  return lines.at(-1) ?? ''
}

export interface IsolatedRun {
  backends: LoadedBackendReport[]
  cells: CellResult[]
}

export interface LoadedBackendReport {
  name: string
  report: BackendReport
}

/**
 * Runs the plan on each backend, each in its own child process (restarted after a crash).
 * Returns every backend's report and the cells in plan order per backend. The GPU backends run
 * one after another (sharing a GPU would spoil their timings); with `cpuAlongside` the CPU
 * reference backend runs at the same time on its own core. Helper processes compute the GPU
 * cells' CPU references ahead of them on spare cores (see reference-store.ts).
 */
export async function runIsolated(
  entry: string,
  plan: readonly PlannedCell[],
  backendNames: readonly string[],
  adapters: ReadonlyMap<string, MechanismAdapter>,
  settings: RunSettings,
  progress: Progress,
  /** Cells of a backend that cannot start are kept (marked unavailable) only when it was named. */
  keepUnavailable: boolean,
  recorder?: RunRecorder,
  /** What earlier sessions of a resumed run finished: those cells are not run again. */
  prior?: PriorResults,
): Promise<IsolatedRun> {
  progress.start(plan.length * backendNames.length)
  const gpus = backendNames.filter((n) => n !== 'cpu')
  const alongside = settings.cpuAlongside && backendNames.includes('cpu') && gpus.length > 0
  const helpers = startReferenceHelpers(entry, plan, gpus.length > 0 ? settings : null, alongside)
  const done = new Map<string, { report: BackendReport; results: Map<number, CellResult> }>()
  const runLane = async (names: readonly string[]) => {
    for (const [i, name] of names.entries()) {
      // With a time limit, each backend of a lane gets an equal share of what is left, so the
      // last one is not left with nothing when the first is slow (it gets what the others leave).
      const deadline = backendDeadline(settings.deadline, Date.now(), names.length - i)
      done.set(
        name,
        await runBackend(entry, plan, name, adapters, { ...settings, deadline }, progress, recorder, prior),
      )
    }
  }
  try {
    if (alongside) await Promise.all([runLane(gpus), runLane(['cpu'])])
    else await runLane(backendNames)
  } finally {
    for (const h of helpers) h.kill('SIGKILL')
  }
  progress.finish()
  const backends: LoadedBackendReport[] = []
  const cells: CellResult[] = []
  for (const name of backendNames) {
    const { report, results } = done.get(name)!
    backends.push({ name, report })
    if (report.status === 'ok' || keepUnavailable)
      cells.push(...[...results.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r))
  }
  return { backends, cells }
}

/** A backend's share of the run's deadline: an equal part of what is left among `left` backends. */
export function backendDeadline(deadline: number | undefined, now: number, left: number): number | undefined {
  return deadline === undefined ? undefined : now + Math.max(0, deadline - now) / left
}

/** One backend's cells in a worker process, started again after each crash or stopped cell. */
async function runBackend(
  entry: string,
  plan: readonly PlannedCell[],
  name: string,
  adapters: ReadonlyMap<string, MechanismAdapter>,
  settings: RunSettings,
  progress: Progress,
  recorder?: RunRecorder,
  prior?: PriorResults,
): Promise<{ report: BackendReport; results: Map<number, CellResult> }> {
  const isPrior = priorTest(plan, name, prior)
  const hooks = progressHooks(progress, plan, { recorder, isPrior })
  const stopped = new Set<string>()
  const results = new Map<number, CellResult>()
  // On the CPU a shorter --cpu-cell-timeout applies, and a cell stopped by it is skipped, not failed.
  const cpuLimited = name === 'cpu' && settings.cpuCellTimeoutS < settings.cellTimeoutS
  const timeoutS = cpuLimited ? settings.cpuCellTimeoutS : settings.cellTimeoutS
  for (const [i, cell] of plan.entries()) {
    const r = prior?.cells.get(cellKey({ ...cell, backend: name }))
    if (!r) continue
    results.set(i, r)
    noteSweepStop(cell, { ...r, warnings: [] }, settings.fitMs, stopped)
  }
  let todo = plan.map((_, i) => i).filter((i) => !results.has(i))
  // A backend all of whose cells an earlier session finished is not started again.
  let report: BackendReport | undefined = todo.length === 0 ? prior?.backends.get(name) : undefined
  while (todo.length > 0) {
    const attempt = await runWorker(
      entry,
      { backend: name, plan: [...plan], todo, settings, stoppedSeries: [...stopped] },
      timeoutS * 1000,
      (m) => {
        if (m.type === 'begin') hooks.begin(m.index, m.label)
        else if (m.type === 'end') hooks.end(m.index, m.result)
      },
    )
    if (!report && attempt.report) {
      report = attempt.report
      recorder?.backend(name, report)
    }
    for (const [i, r] of attempt.results) {
      results.set(i, r)
      noteSweepStop(plan[i], { ...r, warnings: [] }, settings.fitMs, stopped)
    }
    if (attempt.done) break
    const why = attempt.timedOut
      ? `the ${name} worker process was stopped after ${timeoutS} s on one cell (${cpuLimited ? '--cpu-cell-timeout' : '--cell-timeout'})`
      : `the ${name} worker process died (${attempt.exit})${
          lastErrorLine(attempt.stderrTail) ? `: ${lastErrorLine(attempt.stderrTail)}` : ''
        }`
    if (attempt.crashedAt === undefined) {
      // It died outside a cell (starting the backend, or between cells): nothing to skip past.
      report ??= { name, status: 'unavailable', reason: why }
      for (const i of todo.filter((j) => !results.has(j)))
        results.set(i, {
          ...baseResult(plan[i], name, adapters.get(plan[i].mechanism)),
          status: 'unavailable',
          reason: `backend ${name}: ${why}`,
        })
      break
    }
    const i = attempt.crashedAt
    // The CPU reference being slower than its cost model says is no fault: the cell is skipped.
    const tooSlowOnCpu = cpuLimited && attempt.timedOut
    const crashed: CellResult = {
      ...baseResult(plan[i], name, adapters.get(plan[i].mechanism)),
      status: tooSlowOnCpu ? 'skipped' : 'error',
      reason: tooSlowOnCpu
        ? `too slow for cpu: ${why}; the run went on in a new process`
        : `${why} during this cell; the run went on in a new process`,
    }
    noteSweepStop(plan[i], crashed, settings.fitMs, stopped)
    results.set(i, crashed)
    hooks.end(i, crashed)
    todo = todo.filter((j) => j > i && !results.has(j))
  }
  hooks.finish()
  return {
    report: report ?? { name, status: 'unavailable', reason: 'the worker process reported nothing' },
    results,
  }
}

/** Spare cores for reference helpers: leave one for this process and one per running worker. */
function referenceHelperCount(alongside: boolean): number {
  return Math.max(0, Math.min(MAX_REFERENCE_HELPERS, availableParallelism() - 2 - (alongside ? 1 : 0)))
}

function startReferenceHelpers(
  entry: string,
  plan: readonly PlannedCell[],
  settings: RunSettings | null,
  alongside: boolean,
): ChildProcess[] {
  if (!settings?.check || !settings.referenceDir) return []
  const job: ReferenceJob = { plan: [...plan], settings }
  return Array.from({ length: referenceHelperCount(alongside) }, () => {
    const child = fork(entry, [REFERENCE_HELPER_COMMAND], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] })
    child.send(job)
    // A helper is an optimisation: its failure only means a worker computes the reference itself.
    child.on('error', () => {})
    return child
  })
}
