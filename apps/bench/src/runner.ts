import { type Backend, byteSize, type DType, dispose, memory, resetPeakMemory } from '@attnkit/core'
import type { LoadedBackend } from './backends.js'
import { checkCorrectness, ReferenceCache } from './correctness.js'
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
  /** The CPU reference is pure TypeScript: cells whose cost model exceeds these are skipped on it. */
  cpuMaxFlops: number
  cpuMaxBytes: number
}

export const DEFAULT_CPU_MAX_GFLOP = 4
export const DEFAULT_CPU_MAX_BYTES = 1 << 30

/**
 * Runs every planned cell on every backend. Nothing a cell does stops the run: errors, skips
 * and unavailable backends or mechanisms become the cell's status and reason.
 */
export async function runMatrix(
  plan: readonly PlannedCell[],
  backends: readonly LoadedBackend[],
  adapters: ReadonlyMap<string, MechanismAdapter>,
  unavailableMechanisms: ReadonlyMap<string, string>,
  settings: RunSettings,
  progress: Progress,
): Promise<CellResult[]> {
  const references = new ReferenceCache()
  const results: CellResult[] = []
  progress.start(plan.length * backends.length)
  for (const loaded of backends) {
    const stoppedSeries = new Map<string, string>()
    for (const cell of plan) {
      if (cell.series && stoppedSeries.has(cell.series)) {
        progress.drop(1)
        continue
      }
      const adapter = adapters.get(cell.mechanism)
      const base = baseResult(cell, loaded.name, adapter)
      progress.begin(
        `${loaded.name} ${cell.mechanism}/${cell.variant} ${cell.mode} ${base.label} ${cell.dtype}`,
      )
      let result: CellResult
      if (!loaded.backend)
        result = { ...base, status: 'unavailable', reason: `backend ${loaded.name}: ${loaded.reason}` }
      else if (!adapter)
        result = {
          ...base,
          status: 'unavailable',
          reason: `mechanism ${cell.mechanism}: ${unavailableMechanisms.get(cell.mechanism) ?? 'not loaded'}`,
        }
      else result = await runCell(cell, loaded.backend, adapter, base, settings, references)
      if (cell.series) {
        const why = sweepStop(result, settings.fitMs)
        if (why) {
          stoppedSeries.set(cell.series, why)
          result.warnings.push(`the sweep stops here: ${why}`)
        }
      }
      results.push(result)
      progress.end(result)
    }
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

function baseResult(
  cell: PlannedCell,
  backendName: string,
  adapter: MechanismAdapter | undefined,
): CellResult {
  let cost: CellResult['cost'] = null
  let kv: number | null = null
  if (adapter) {
    try {
      cost = adapter.cost(cell.dims, cell.variant, cell.mode, cell.dtype)
      kv = adapter.kvCacheBytes(cell.dims, cell.variant, cell.dtype, cell.dims.seqLen ?? 0)
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
    warnings: [],
  }
}

function defaultLabel(dims: Record<string, number>): string {
  if (['batch', 'heads', 'seqLen', 'headDim'].every((k) => k in dims)) return attentionLabel(dims)
  return Object.entries(dims)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}

function tooLargeForCpu(cell: PlannedCell, cost: CellResult['cost'], s: RunSettings): string | null {
  if (!cost) return null
  const elem = byteSize(cell.dtype)
  if (cost.flops > s.cpuMaxFlops)
    return `too large for cpu: ${(cost.flops / 1e9).toFixed(1)} GFLOP per run > ${(s.cpuMaxFlops / 1e9).toFixed(1)} (raise with --cpu-max-gflop)`
  if (cost.bytes > s.cpuMaxBytes)
    return `too large for cpu: ${(cost.bytes / 2 ** 20).toFixed(0)} MiB moved per run (${elem}-byte elements) > ${(s.cpuMaxBytes / 2 ** 20).toFixed(0)} MiB`
  return null
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
      const why = tooLargeForCpu(cell, r.cost, s)
      if (why) return { ...r, status: 'skipped', reason: why }
    }
    stage = 'timing'
    const liveBefore = memory(backend.name).liveTensors
    const measured = await measure(cell, backend, adapter, s)
    r.timing = measured.timing
    r.peakBytes = measured.peakBytes
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
    }
    const leaked = memory(backend.name).liveTensors - liveBefore
    if (leaked > 0)
      r.warnings.push(`${leaked} tensor(s) left alive on ${backend.name} after the cell (a leak)`)
    if (r.correctness && !r.correctness.passed)
      return { ...r, status: 'failed', reason: describeFailure(r.correctness) }
    return r
  } catch (e) {
    return { ...r, status: 'error', reason: `${stage}: ${firstLine((e as Error).message ?? String(e))}` }
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
): Promise<{ timing: Timing; peakBytes: number }> {
  resetPeakMemory(backend.name)
  const ctx = makeContext(backend, cell.dtype as DType, cell.dtype as DType, s.seed)
  const workload = adapter.setup(ctx, cell.dims, cell.variant, cell.mode)
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
    }
  } finally {
    workload.dispose()
  }
}
