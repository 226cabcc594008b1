/** Human-readable numbers for the terminal table and the Markdown report. */

export function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toPrecision(3)} s`
  if (ms >= 1) return `${ms.toPrecision(3)} ms`
  return `${(ms * 1000).toPrecision(3)} us`
}

function si(value: number, unit: string, base = 1000, prefixes = ['', 'k', 'M', 'G', 'T', 'P']): string {
  let v = value
  let i = 0
  while (Math.abs(v) >= base && i < prefixes.length - 1) {
    v /= base
    i++
  }
  return `${v.toPrecision(3)} ${prefixes[i]}${unit}`
}

export const fmtFlops = (perSecond: number): string => si(perSecond, 'FLOP/s')
export const fmtBytesRate = (perSecond: number): string => si(perSecond, 'B/s')
export const fmtBytes = (n: number): string => si(n, 'B', 1024, ['', 'Ki', 'Mi', 'Gi', 'Ti'])
export const fmtCount = (n: number): string => si(n, '')

export function fmtPct(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined) return '-'
  return fraction >= 0.1 ? `${(fraction * 100).toFixed(0)}%` : `${(fraction * 100).toPrecision(2)}%`
}

export function fmtErr(e: number | null): string {
  return e === null ? 'not finite' : e === 0 ? '0' : e.toExponential(1)
}

/**
 * Pads cells into aligned columns; `right` marks right-aligned columns. With `rule`, a line of
 * dashes goes under the first row (the header).
 */
export function alignColumns(rows: string[][], right: boolean[], rule = false): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)))
  const lines = rows.map((r) =>
    r
      .map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd(),
  )
  if (rule) lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '))
  return lines
}
