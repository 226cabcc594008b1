import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { DType } from '@attnkit/core'
import { list, oneOfList, positiveInt, positiveInts, positiveNumber, UsageError } from '../args.js'
import { BACKEND_NAMES, backendReport, type LoadedBackend, loadBackends } from '../backends.js'
import { runIsolated } from '../isolate.js'
import {
  isFinished,
  JOURNAL_FILE,
  Journal,
  type JournalState,
  planIdentity,
  readJournal,
} from '../journal.js'
import type { MechanismAdapter } from '../mechanisms/adapter.js'
import { RANDOM_BLOCK_ELEMENTS } from '../mechanisms/context.js'
import { loadMechanisms, MECHANISMS, mechanismReport } from '../mechanisms/registry.js'
import { defaultResultsDir } from '../paths.js'
import { type PlanFilters, type PlannedCell, planCells } from '../plan.js'
import { getPreset, PRESETS } from '../presets.js'
import { Progress } from '../progress.js'
import { allCharts } from '../report/charts.js'
import { markdownReport } from '../report/markdown.js'
import { terminalReport } from '../report/terminal.js'
import {
  CPU_SETUP_FACTOR,
  DEFAULT_CPU_CELL_TIMEOUT_S,
  DEFAULT_CPU_MAX_SECONDS,
  type RunSettings,
  runMatrix,
} from '../runner.js'
import {
  type BackendReport,
  type BenchResults,
  CELL_STATUSES,
  type CellResult,
  type CellStatus,
  type KvCacheSeries,
  MODES,
  RESULTS_SCHEMA,
  RESULTS_VERSION,
  validateResults,
} from '../schema.js'
import { gitInfo, machineInfo, packageVersions } from '../versions.js'

/** Cores from which `--cpu-alongside auto` runs the CPU backend beside the GPU ones. */
const CPU_ALONGSIDE_MIN_CORES = 8

export const RUN_HELP = `attnkit-bench run [options]

Runs a preset's cells (mechanism x variant x mode x size x dtype) on each backend: correctness
against the CPU reference in float64, device-timed runs after warm-up, FLOP/s and bytes/s from
the cost model, peak memory and KV-cache bytes. Writes results.json, results.md and SVG charts.

  --preset <name>        ${Object.values(PRESETS)
    .map((p) => `${p.name}: ${p.description}`)
    .join('\n                         ')}
                         (default: smoke)
  --backend <list>       ${BACKEND_NAMES.join(',')} (default: every one that starts; named ones that
                         cannot start are reported with their cells marked unavailable)
  --mechanism <list>     ${Object.keys(MECHANISMS).join(',')} (default: the preset's)
  --variant <list>       variant names, or mechanism:variant
  --mode <list>          ${MODES.join(',')} (fwdbwd and backward mean forward+backward)
  --dtype <list>         replaces the preset's dtypes (float32, float16, bfloat16)
  --seq, --batch, --heads, --head-dim <list>
                         replace those sizes in every cell that has them
  --warmup <n>, --repeats <n>, --budget-ms <ms>
                         untimed runs, timed runs (at most), time after which a cell stops adding
                         runs (once it has 3)
  --seed <n>             seed of every random input (default 1234)
  --no-check             skip the correctness checks
  --cpu-max-seconds <s>  cells the cost model says take longer per run (or ${CPU_SETUP_FACTOR}x longer to set
                         up) are skipped on the CPU (default ${DEFAULT_CPU_MAX_SECONDS})
  --out <dir>            where to write (default bench-results/<timestamp>/ at the repository root);
                         each cell is also appended to <dir>/${JOURNAL_FILE} as it finishes
  --resume               go on with the run in --out: cells its journal holds are kept, the rest
                         (those a time limit or a stopped process left out) run, and the reports
                         cover them all (starts afresh when there is no journal yet). Run the same
                         command again until it says nothing is left
  --max-minutes <m>      start no cell after this long; the rest are skipped, saying so, and the
                         reports are written as usual (for fixed device windows). Backends run one
                         after another share it: each gets an equal part of what those before left
  --cell-timeout <s>     stop a cell (and its worker process) that runs longer than this; the run
                         goes on in a new process (default 300)
  --cpu-cell-timeout <s> the same for the CPU reference backend, whose cell is then reported
                         skipped as too slow for it (default ${DEFAULT_CPU_CELL_TIMEOUT_S})
  --cpu-alongside <when> auto, on or off: run the CPU backend at the same time as the GPU ones, on
                         its own core (auto: on with ${CPU_ALONGSIDE_MIN_CORES} or more cores; lavapipe and the CPU share cores)
  --list                 print the cells the preset and filters give, and run nothing
  --quiet                no progress output
  --in-process           run every backend in this process (default: one child process per
                         backend, so a native crash costs one cell, not the run)
`

const MODE_ALIASES = { fwdbwd: 'forward+backward', backward: 'forward+backward', fwd: 'forward' } as const
const DTYPES = ['float32', 'float16', 'bfloat16'] as const

export interface RunOutcome {
  /** null for --list. */
  results: BenchResults | null
  dir: string
  files: string[]
  exitCode: number
}

export interface RunOptions {
  /**
   * The CLI's own file: when given, each backend runs in a child process started from it, so a
   * native crash costs one cell (see isolate.ts). Without it (tests), everything runs in-process.
   */
  workerEntry?: string
}

export async function runCommand(
  argv: string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WriteStream },
  options: RunOptions = {},
): Promise<RunOutcome> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      preset: { type: 'string', default: 'smoke' },
      backend: { type: 'string' },
      mechanism: { type: 'string' },
      variant: { type: 'string' },
      mode: { type: 'string' },
      dtype: { type: 'string' },
      seq: { type: 'string' },
      batch: { type: 'string' },
      heads: { type: 'string' },
      'head-dim': { type: 'string' },
      warmup: { type: 'string' },
      repeats: { type: 'string' },
      'budget-ms': { type: 'string' },
      seed: { type: 'string', default: '1234' },
      'no-check': { type: 'boolean', default: false },
      'cpu-max-seconds': { type: 'string' },
      out: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'in-process': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      resume: { type: 'boolean', default: false },
      'max-minutes': { type: 'string' },
      'cpu-cell-timeout': { type: 'string' },
      'cpu-alongside': { type: 'string', default: 'auto' },
      'cell-timeout': { type: 'string', default: '300' },
    },
  })
  if (positionals.length > 0)
    throw new UsageError(`run: unexpected argument '${positionals[0]}' (options start with --)`)
  const preset = getPreset(o.preset)
  const startedAt = new Date()
  const t0 = performance.now()

  const settings: RunSettings = {
    seed: positiveInt('seed', o.seed, 0),
    warmup: o.warmup !== undefined ? positiveInt('warmup', o.warmup, 0) : preset.warmup,
    repeats: o.repeats !== undefined ? positiveInt('repeats', o.repeats) : preset.repeats,
    minRepeats: 0,
    cellBudgetMs:
      o['budget-ms'] !== undefined ? positiveNumber('budget-ms', o['budget-ms']) : preset.cellBudgetMs,
    fitMs: preset.fitMs ?? Number.POSITIVE_INFINITY,
    check: !o['no-check'],
    cellTimeoutS: positiveNumber('cell-timeout', o['cell-timeout']),
    cpuCellTimeoutS:
      o['cpu-cell-timeout'] !== undefined
        ? positiveNumber('cpu-cell-timeout', o['cpu-cell-timeout'])
        : DEFAULT_CPU_CELL_TIMEOUT_S,
    cpuAlongside: cpuAlongside(o['cpu-alongside']),
    cpuMaxSeconds:
      o['cpu-max-seconds'] !== undefined
        ? positiveNumber('cpu-max-seconds', o['cpu-max-seconds'])
        : DEFAULT_CPU_MAX_SECONDS,
  }
  settings.minRepeats = Math.min(preset.minRepeats, settings.repeats)
  if (o['max-minutes'] !== undefined)
    settings.deadline = Date.now() + positiveNumber('max-minutes', o['max-minutes']) * 60_000

  const filters: PlanFilters = {
    mechanisms: list('mechanism', o.mechanism),
    variants: list('variant', o.variant),
    modes: oneOfList('mode', o.mode, MODES, MODE_ALIASES),
    dtypes: oneOfList('dtype', o.dtype, DTYPES) as DType[] | undefined,
    overrides: {
      seqLen: positiveInts('seq', o.seq),
      batch: positiveInts('batch', o.batch),
      heads: positiveInts('heads', o.heads),
      headDim: positiveInts('head-dim', o['head-dim']),
    },
  }
  for (const m of filters.mechanisms ?? [])
    if (!MECHANISMS[m])
      throw new UsageError(`--mechanism: expected some of ${Object.keys(MECHANISMS).join(', ')}, got '${m}'`)
  const namedBackends = oneOfList('backend', o.backend, BACKEND_NAMES)

  const wanted = [...new Set(preset.groups.map((g) => g.mechanism))].filter(
    (m) => !filters.mechanisms || filters.mechanisms.includes(m),
  )
  const mechanisms = await loadMechanisms(wanted)
  const adapters = new Map<string, MechanismAdapter>()
  const unavailable = new Map<string, string>()
  for (const m of mechanisms) {
    if ('adapter' in m) adapters.set(m.name, m.adapter)
    else unavailable.set(m.name, m.reason)
  }
  const plan = planCells(preset, filters, adapters)
  if (plan.length === 0)
    throw new UsageError(`run: the filters leave no cells of preset '${preset.name}' to run`)
  if (o.list) {
    const lines = plan.map((c) => {
      const adapter = adapters.get(c.mechanism)
      const label = adapter ? adapter.label(c.dims) : JSON.stringify(c.dims)
      return `${c.mechanism}/${c.variant} ${c.mode} ${label} ${c.dtype}${adapter ? '' : ' (unavailable)'}`
    })
    io.out.write(`${lines.join('\n')}\n${plan.length} cells per backend\n`)
    return { results: null, dir: '', files: [], exitCode: 0 }
  }

  if (o.resume && o.out === undefined)
    throw new UsageError('--resume: expected --out <dir> too (the folder of the run to go on with)')
  const dir = path.resolve(o.out ?? defaultResultsDir(startedAt))
  const identity = planIdentity(plan)
  const earlier = o.resume ? readJournal(dir, preset.name, settings.seed, identity) : null
  if (!o.resume && existsSync(path.join(dir, JOURNAL_FILE)))
    // A fresh run starts a fresh journal: the folder's earlier cells are not mixed into it.
    rmSync(path.join(dir, JOURNAL_FILE))
  const prior = earlier ? { cells: earlier.cells, backends: earlier.backends } : undefined
  if (earlier)
    io.err.write(
      `Resuming the run in ${dir}: ${earlier.cells.size} cell(s) finished in ${earlier.sessions.length} earlier session(s).\n`,
    )
  else if (o.resume) io.err.write(`Nothing to resume in ${dir} (no ${JOURNAL_FILE}): starting the run.\n`)
  const journal = new Journal(dir, {
    startedAt: startedAt.toISOString(),
    command: ['attnkit-bench', 'run', ...argv],
    commit: gitInfo().commit,
    preset: preset.name,
    seed: settings.seed,
    plan: identity,
  })

  // Backends: the named ones (all reported, unavailable ones with their cells), or every one that starts.
  const progress = new Progress(io.err, o.quiet)
  let cells: CellResult[]
  let backendReports: BackendReport[]
  if (options.workerEntry && !o['in-process']) {
    // The workers (and reference helpers) share CPU references through this folder.
    settings.referenceDir = mkdtempSync(path.join(tmpdir(), 'attnkit-bench-references-'))
    try {
      const run = await runIsolated(
        options.workerEntry,
        plan,
        namedBackends ?? BACKEND_NAMES,
        adapters,
        settings,
        progress,
        Boolean(namedBackends),
        journal,
        prior,
      )
      cells = run.cells
      backendReports = run.backends.map((b) => b.report)
    } finally {
      rmSync(settings.referenceDir, { recursive: true, force: true })
    }
  } else {
    const loadedAll = await loadBackends(namedBackends ?? BACKEND_NAMES)
    const runOn: LoadedBackend[] = namedBackends ? loadedAll : loadedAll.filter((b) => b.backend)
    cells = await runMatrix(plan, runOn, adapters, unavailable, settings, progress, journal, prior)
    backendReports = loadedAll.map(backendReport)
    for (const b of backendReports) journal.backend(b.name, b)
  }
  const durationS = (performance.now() - t0) / 1e3
  journal.end(durationS)

  const results = assemble({
    cells,
    plan,
    adapters,
    backends: backendReports,
    mechanisms: mechanisms.map(mechanismReport),
    preset: preset.name,
    argv,
    settings,
    startedAt,
    durationS,
    earlier,
  })
  const problems = validateResults(results)
  if (problems.length > 0)
    throw new Error(`internal error: the results do not match their schema: ${problems[0]}`)

  const files = writeReports(results, dir)
  io.out.write(
    `${terminalReport(results)}\n\nWrote ${files.map((f) => path.basename(f)).join(', ')} to ${dir}\n`,
  )
  const left = cells.filter((c) => !isFinished(c)).length
  if (left > 0)
    io.out.write(
      `${left} cell(s) were left out by the time limit: the same command with --resume${o.resume ? '' : ` --out ${dir}`} runs them.\n`,
    )
  const exitCode = results.summary.failed + results.summary.error > 0 ? 1 : 0
  return { results, dir, files, exitCode }
}

export function writeReports(results: BenchResults, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const charts = allCharts(results)
  const files: string[] = []
  const write = (name: string, text: string) => {
    const f = path.join(dir, name)
    writeFileSync(f, text)
    files.push(f)
  }
  write('results.json', `${JSON.stringify(results, null, 1)}\n`)
  write('results.md', markdownReport(results, charts))
  for (const c of charts) write(c.file, c.svg)
  return files
}

const KV_CONTEXTS = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]

/** Per mechanism and variant: the cache size over contexts, at the dims of its first planned cell. */
function kvCacheSeries(
  plan: readonly PlannedCell[],
  adapters: ReadonlyMap<string, MechanismAdapter>,
): KvCacheSeries[] {
  const out: KvCacheSeries[] = []
  const seen = new Set<string>()
  const ordered = [...plan.filter((c) => c.mode === 'decode'), ...plan.filter((c) => c.mode !== 'decode')]
  for (const c of ordered) {
    const adapter = adapters.get(c.mechanism)
    const key = `${c.mechanism}/${c.variant}`
    if (!adapter || seen.has(key)) continue
    seen.add(key)
    try {
      const points = KV_CONTEXTS.map((context) => ({
        context,
        bytes: adapter.kvCacheBytes(c.dims, c.variant, c.dtype, context),
      }))
      if (points.some((p) => p.bytes === null)) continue
      out.push({
        mechanism: c.mechanism,
        variant: c.variant,
        dtype: c.dtype,
        dims: c.dims,
        points: points as { context: number; bytes: number }[],
      })
    } catch {
      // A cell with dims the adapter rejects is reported as an error in the table.
    }
  }
  return out
}

function assemble(a: {
  cells: CellResult[]
  plan: readonly PlannedCell[]
  adapters: ReadonlyMap<string, MechanismAdapter>
  backends: BackendReport[]
  mechanisms: BenchResults['mechanisms']
  preset: string
  argv: string[]
  settings: RunSettings
  startedAt: Date
  durationS: number
  /** The journal's earlier sessions, when this run was resumed. */
  earlier: JournalState | null
}): BenchResults {
  const counts = Object.fromEntries(CELL_STATUSES.map((s) => [s, 0])) as Record<CellStatus, number>
  for (const c of a.cells) counts[c.status]++
  const s = a.settings
  const notes = [
    `Timing: ${s.warmup} warm-up run(s), then up to ${s.repeats} timed runs (at least ${s.minRepeats}; no more once ${s.cellBudgetMs} ms were spent on a cell); spread is p10..p90.`,
    `Random inputs and parameter tensors larger than ${RANDOM_BLOCK_ELEMENTS} elements repeat a seeded block of that size (timings do not depend on the values; the correctness check and its CPU reference draw theirs the same way).`,
    `Correctness tolerance: core's per-dtype base tolerance (float32 3e-5, float16 3e-3, bfloat16 1.6e-2) times a per-mechanism factor (default 4).`,
    `The CPU reference skips cells the cost model says take over ${s.cpuMaxSeconds} s per run (at 2 GFLOP/s and 1 GB/s) or ${CPU_SETUP_FACTOR * s.cpuMaxSeconds} s to set up.`,
    'Dense decode is one query attending over a preallocated cache of seqLen keys (no cache append is timed).',
    ...(Number.isFinite(s.fitMs)
      ? [`Sweeps stop after the first size that errors, is skipped, or takes over ${s.fitMs} ms per run.`]
      : []),
    ...(s.check ? [] : ['Correctness checks were turned off (--no-check).']),
  ]
  const command = ['attnkit-bench', 'run', ...a.argv]
  const thisSession = {
    startedAt: a.startedAt.toISOString(),
    command,
    commit: gitInfo().commit,
    durationS: a.durationS,
    cells: a.cells.filter((c) => isFinished(c) && !a.earlier?.cells.has(c.key)).length,
    completed: true,
  }
  const sessions = a.earlier ? [...a.earlier.sessions, thisSession] : []
  return {
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    createdAt: sessions[0]?.startedAt ?? thisSession.startedAt,
    durationS: sessions.length > 0 ? sessions.reduce((t, x) => t + x.durationS, 0) : a.durationS,
    command,
    ...(sessions.length > 0 ? { sessions } : {}),
    preset: a.preset,
    seed: s.seed,
    machine: machineInfo(),
    packages: packageVersions(),
    git: gitInfo(),
    backends: a.backends,
    mechanisms: a.mechanisms,
    cells: a.cells,
    kvCache: kvCacheSeries(a.plan, a.adapters),
    summary: { total: a.cells.length, ...counts },
    notes,
  }
}

function cpuAlongside(value: string): boolean {
  if (value === 'on') return true
  if (value === 'off') return false
  if (value === 'auto') return availableParallelism() >= CPU_ALONGSIDE_MIN_CORES
  throw new UsageError(`--cpu-alongside: expected auto, on or off, got '${value}'`)
}
