import type { BenchResults, CellResult } from '../schema.js'
import { CELL_COLUMNS, cellRow, headlineLines, problemLines } from './cells.js'
import type { Chart } from './charts.js'
import { fmtBytes } from './format.js'

const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')

export function markdownTable(header: readonly string[], rows: string[][], right: boolean[] = []): string {
  const align = header.map((_, i) => (right[i] ? '---:' : '---'))
  return [header, align, ...rows].map((r) => `| ${r.map(esc).join(' | ')} |`).join('\n')
}

/** results.md: the run's context, the headline numbers, every cell, and the charts. */
export function markdownReport(r: BenchResults, charts: readonly Chart[]): string {
  const out: string[] = []
  const m = r.machine
  const commit = r.git.commit
    ? `${r.git.commit.slice(0, 10)}${r.git.dirty ? ' (with uncommitted changes)' : ''}`
    : 'unknown'
  out.push(
    `# attnkit bench: preset \`${r.preset}\``,
    '',
    `${r.createdAt}, ${r.durationS.toFixed(1)} s, seed ${r.seed}, commit ${commit}.  `,
    `Machine: ${m.cpu} (${m.cpuCount} threads), ${fmtBytes(m.memoryBytes)} RAM, ${m.os} ${m.arch}, Node ${m.node}.  `,
    `Command: \`${r.command.join(' ')}\``,
  )
  if (r.sessions && r.sessions.length > 1) out[out.length - 1] += `  \n${sessionsLine(r.sessions)}`
  const head = headlineLines(r)
  if (head.length > 0) out.push('', '## Headline', '', ...head.map((h) => `- ${h}`))
  out.push('', '## Backends', '')
  out.push(
    markdownTable(
      ['backend', 'status', 'device', 'details', 'features', 'version'],
      r.backends.map((b) => [
        b.name,
        b.status,
        b.device ?? b.reason ?? '',
        b.details
          ? Object.entries(b.details)
              .map(([k, v]) => `${k}: ${v}`)
              .join(', ')
          : '',
        (b.features ?? []).join(', '),
        b.version ?? '-',
      ]),
    ),
  )
  out.push('', '## Mechanisms', '')
  out.push(
    markdownTable(
      ['mechanism', 'status', 'variants / reason', 'version'],
      r.mechanisms.map((x) => [
        x.name,
        x.status,
        x.status === 'ok' ? (x.variants ?? []).join(', ') : (x.reason ?? ''),
        x.version ?? '-',
      ]),
    ),
  )
  const s = r.summary
  out.push(
    '',
    '## Results',
    '',
    `${s.total} cells: ${s.ok} ok, ${s.failed} failed correctness, ${s.error} errors, ${s.skipped} skipped, ${s.unavailable} unavailable. ` +
      'Correctness: max |actual - reference| / max |reference| against the CPU reference in float64 on the same seeded inputs, ' +
      'at the cell size or a smaller one the CPU can do (see results.json); "in float32": a mechanism with discrete routing or keep decisions, checked computing in float32 since 16-bit rounding flips its decisions; times are medians of device-timed runs after warm-up; ' +
      'FLOP/s and B/s come from the cost model; % of peak where the backend reports its peak.',
    '',
    ...wallTimeLines(r.cells),
  )
  const shown = r.cells.filter((c) => c.status !== 'unavailable')
  out.push(
    markdownTable(
      CELL_COLUMNS,
      shown.map(cellRow),
      CELL_COLUMNS.map((_, i) => i >= 6),
    ),
  )
  const problems = problemLines(r.cells)
  if (problems.length > 0) out.push('', '## Not ok', '', ...problems.map((p) => `- ${esc(p)}`))
  if (charts.length > 0) {
    out.push('', '## Charts', '')
    for (const c of charts) out.push(`![${c.title}](${c.file})`, '')
  }
  if (r.notes.length > 0) out.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`))
  return `${out.join('\n')}\n`
}

/** Where a run's minutes went, per backend: its cells' wall time, the set-ups' and the correctness checks' shares. */
function wallTimeLines(cells: readonly CellResult[]): string[] {
  const per = new Map<string, { total: number; setup: number; check: number }>()
  for (const c of cells) {
    if (!c.wallS) continue
    const t = per.get(c.backend) ?? { total: 0, setup: 0, check: 0 }
    t.total += c.wallS.total
    t.setup += c.wallS.setup ?? 0
    t.check += c.wallS.check
    per.set(c.backend, t)
  }
  if (per.size === 0) return []
  const parts = [...per].map(
    ([b, t]) =>
      `${b} ${t.total.toFixed(1)} s (set-up ${t.setup.toFixed(1)} s, correctness checks ${t.check.toFixed(1)} s, the CPU reference included)`,
  )
  return [`Wall time of the cells: ${parts.join('; ')}.`, '']
}

/** How a resumed run's time was spent, session by session. */
export function sessionsLine(sessions: NonNullable<BenchResults['sessions']>): string {
  const parts = sessions.map(
    (x) =>
      `${x.durationS.toFixed(1)} s (${x.cells} cells${x.completed ? '' : ', stopped'}${x.commit ? `, commit ${x.commit.slice(0, 10)}` : ''})`,
  )
  return `Ran as ${sessions.length} sessions of the command (continued with --resume): ${parts.join(' + ')}.`
}
