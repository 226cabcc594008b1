import type { BenchResults, CellResult } from '../schema.js'
import { fmtBytes, fmtBytesRate, fmtErr, fmtFlops, fmtMs, fmtPct } from './format.js'

/** The columns every report shows for a cell, as strings. */
export const CELL_COLUMNS = [
  'backend',
  'mechanism',
  'mode',
  'size',
  'dtype',
  'status',
  'max rel err (tol)',
  'median',
  'p10..p90',
  'FLOP/s',
  '%peak',
  'B/s',
  '%peak',
  'peak mem',
  'KV cache',
] as const

/** Which CELL_COLUMNS are numbers (right-aligned). */
export const NUMERIC_COLUMNS = CELL_COLUMNS.map((_, i) => i >= 6)

export function cellRow(c: CellResult): string[] {
  const t = c.timing
  const tp = c.throughput
  const check = c.correctness
    ? `${fmtErr(c.correctness.maxRelError)} (${c.correctness.tolerance.toExponential(0)})${
        c.correctness.computeDType !== c.dtype ? ` in ${c.correctness.computeDType}` : ''
      }`
    : '-'
  return [
    c.backend,
    c.variant === 'default' ? c.mechanism : `${c.mechanism}/${c.variant}`,
    c.mode,
    c.label,
    c.dtype,
    c.status === 'ok' && c.warnings.length > 0 ? 'ok*' : c.status,
    check,
    t ? fmtMs(t.medianMs) : '-',
    t ? `${fmtMs(t.p10Ms)}..${fmtMs(t.p90Ms)}` : '-',
    tp ? fmtFlops(tp.flopsPerSecond) : '-',
    tp ? fmtPct(tp.flopsFractionOfPeak) : '-',
    tp ? fmtBytesRate(tp.bytesPerSecond) : '-',
    tp ? fmtPct(tp.bytesFractionOfPeak) : '-',
    c.peakBytes !== null ? fmtBytes(c.peakBytes) : '-',
    c.kvCacheBytes !== null ? fmtBytes(c.kvCacheBytes) : '-',
  ]
}

/** One line per headline cell, e.g. "matmul 1024^3 float32 on cpu: 4.61 GFLOP/s (median 466 ms of 5)". */
export function headlineLines(r: BenchResults): string[] {
  return r.cells
    .filter((c) => c.headline)
    .map((c) => {
      const what = `${c.headline}${c.headline!.includes(c.dtype) ? '' : ` ${c.dtype}`} on ${c.backend}`
      if (!c.timing) return `${what}: ${c.status} (${c.reason})`
      const rate = c.throughput ? fmtFlops(c.throughput.flopsPerSecond) : null
      const time = `${fmtMs(c.timing.medianMs)} median of ${c.timing.repeats} (${c.timing.source} timer)`
      const check = c.correctness ? `, max rel. error ${fmtErr(c.correctness.maxRelError)}` : ''
      const bad = c.status === 'ok' ? '' : ` [${c.status.toUpperCase()}: ${c.reason}]`
      return c.mechanism === 'matmul' && rate
        ? `${what}: ${rate} (${time}${check})${bad}`
        : `${what}: ${time}${rate ? `, ${rate}` : ''}${check}${bad}`
    })
}

/** Cells that did not run cleanly, with their reasons; runs of the same reason are grouped. */
export function problemLines(cells: readonly CellResult[]): string[] {
  const groups = new Map<string, CellResult[]>()
  for (const c of cells) {
    if (c.status === 'ok' && c.warnings.length === 0) continue
    const why = c.status === 'ok' ? `warning: ${c.warnings.join('; ')}` : `${c.status}: ${c.reason}`
    const list = groups.get(why) ?? []
    list.push(c)
    groups.set(why, list)
  }
  return [...groups.entries()].map(([why, list]) => {
    const names = list.map((c) => `${c.backend} ${c.mechanism}/${c.variant} ${c.mode} ${c.label} ${c.dtype}`)
    const shown =
      names.length > 3 ? `${names.slice(0, 3).join('; ')}; and ${names.length - 3} more` : names.join('; ')
    return `${why} -- ${shown}`
  })
}
