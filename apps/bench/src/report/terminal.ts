import type { BenchResults } from '../schema.js'
import { CELL_COLUMNS, cellRow, headlineLines, NUMERIC_COLUMNS, problemLines } from './cells.js'
import { alignColumns } from './format.js'
import { sessionsLine } from './markdown.js'

/** The run's report for a terminal: backends, the table, what went wrong, the headline numbers. */
export function terminalReport(r: BenchResults): string {
  const lines: string[] = []
  lines.push(`attnkit bench, preset ${r.preset}: ${r.cells.length} cells in ${r.durationS.toFixed(1)} s`)
  if (r.sessions && r.sessions.length > 1) lines.push(sessionsLine(r.sessions))
  for (const b of r.backends)
    lines.push(b.status === 'ok' ? `  ${b.name}: ${b.device}` : `  ${b.name}: unavailable (${b.reason})`)
  for (const m of r.mechanisms)
    if (m.status !== 'ok') lines.push(`  mechanism ${m.name}: unavailable (${m.reason})`)
  const shown = r.cells.filter((c) => c.status !== 'unavailable')
  if (shown.length > 0) {
    lines.push('')
    const rows = [[...CELL_COLUMNS], ...shown.map(cellRow)]
    const aligned = alignColumns(rows, NUMERIC_COLUMNS, true)
    lines.push(...aligned)
  }
  const problems = problemLines(r.cells)
  if (problems.length > 0) {
    lines.push('', 'Not ok:')
    for (const p of problems) lines.push(`  ${p}`)
  }
  const s = r.summary
  lines.push(
    '',
    `${s.ok} ok, ${s.failed} failed correctness, ${s.error} errors, ${s.skipped} skipped, ${s.unavailable} unavailable`,
  )
  const head = headlineLines(r)
  if (head.length > 0) {
    lines.push('', 'Headline:')
    for (const h of head) lines.push(`  ${h}`)
  }
  return lines.join('\n')
}
