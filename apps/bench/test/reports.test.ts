import { describe, expect, it } from 'vitest'
import { allCharts } from '../src/report/charts.js'
import { markdownReport, markdownTable } from '../src/report/markdown.js'
import { lineChart } from '../src/report/svg.js'
import { terminalReport } from '../src/report/terminal.js'
import { validateResults } from '../src/schema.js'
import { quantile } from '../src/stats.js'
import { cell, results } from './fixtures.js'

const dims = (seqLen: number) => ({ batch: 1, heads: 8, seqLen, headDim: 64 })

/** Open and close tags balance, and no number in the SVG is NaN or infinite. */
function assertWellFormedSvg(svg: string): void {
  expect(svg.startsWith('<svg ')).toBe(true)
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
  const stack: string[] = []
  for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (m[1]) expect(stack.pop()).toBe(m[2])
    else if (!m[3]) stack.push(m[2])
  }
  expect(stack).toEqual([])
  expect(svg).not.toMatch(/NaN|Infinity/)
}

describe('reports', () => {
  const r = results([
    cell({ dims: dims(256), medianMs: 1 }),
    cell({ dims: dims(512), medianMs: 3.5, headline: 'dense causal attention forward' }),
    cell({ dims: dims(512), backend: 'webgpu', medianMs: 0.5 }),
    cell({ dims: dims(512), mode: 'decode', medianMs: 0.2 }),
    cell({
      dims: dims(1024),
      status: 'error',
      reason: 'timing: out of memory | pipe',
      timing: null,
      throughput: null,
      correctness: null,
    }),
    cell({
      dims: dims(2048),
      status: 'unavailable',
      reason: 'backend cuda: no driver',
      backend: 'cuda',
      timing: null,
      throughput: null,
      correctness: null,
    }),
  ])

  it('the fixture is a valid results file; the validator names what is wrong', () => {
    expect(validateResults(r)).toEqual([])
    const bad = structuredClone(r) as unknown as Record<string, unknown> & {
      cells: Record<string, unknown>[]
    }
    bad.cells[1].status = 'fine'
    bad.cells[2].timing = { ...(bad.cells[2].timing as object), medianMs: 'fast' }
    delete bad.cells[3].dims
    const problems = validateResults(bad)
    expect(problems).toContain(
      'results.cells[1].status: expected one of ok, failed, error, skipped, unavailable, got "fine"',
    )
    expect(problems).toContain('results.cells[2].timing.medianMs: expected a finite number >= 0, got "fast"')
    expect(problems).toContain('results.cells[3].dims: expected an object, got undefined')
    expect(validateResults({ ...r, version: 99 })).toEqual(['results.version: expected 1, got 99'])
    const counts = structuredClone(r)
    counts.summary.ok = 0
    expect(validateResults(counts)).toEqual(['results.summary.ok: 0 but 4 cells'])
  })

  it('Markdown: headline first, a row per cell, reasons grouped, pipes escaped, charts linked', () => {
    const md = markdownReport(r, allCharts(r))
    expect(md.indexOf('## Headline')).toBeLessThan(md.indexOf('## Results'))
    expect(md).toMatch(/- dense causal attention forward float32 on cpu: 3\.50 ms median of 3/)
    expect(md).toContain(
      '| cpu | dense/causal | forward | B1 H8 T256 D64 | float32 | ok | 1.0e-7 (1e-4) | 1.00 ms |',
    )
    expect(md).toContain('| webgpu | dense/causal | forward | B1 H8 T512 D64 | float32 | ok |')
    expect(md).toContain(
      'error: timing: out of memory \\| pipe -- cpu dense/causal forward B1 H8 T1024 D64 float32',
    )
    expect(md).toContain('unavailable: backend cuda: no driver')
    expect(md).toContain('![forward time vs sequence length (float32)](time-forward-float32.svg)')
    expect(md).toContain('![KV-cache bytes vs context')
    expect(markdownTable(['a', 'b'], [['1', 'x|y']], [true])).toBe('| a | b |\n| ---: | --- |\n| 1 | x\\|y |')
  })

  it('terminal: aligned table with a rule, then problems, summary and headline', () => {
    const text = terminalReport(r)
    const lines = text.split('\n')
    const header = lines.findIndex((l) => l.startsWith('backend'))
    expect(lines[header + 1]).toMatch(/^-+( +-+)+$/)
    const rows = lines.slice(header + 2, header + 7)
    expect(new Set(rows.map((l) => l.indexOf('float32'))).size).toBe(1)
    expect(text).toContain('4 ok, 0 failed correctness, 1 errors, 0 skipped, 1 unavailable')
    expect(text.trimEnd().split('\n').at(-1)).toMatch(
      /dense causal attention forward float32 on cpu: 3\.50 ms/,
    )
  })

  it('charts: one time chart per mode and dtype, a line per mechanism and backend, log axes', () => {
    const charts = allCharts(r)
    expect(charts.map((c) => c.file)).toEqual([
      'time-forward-float32.svg',
      'time-decode-float32.svg',
      'kv-cache.svg',
    ])
    const fwd = charts[0].svg
    assertWellFormedSvg(fwd)
    expect(fwd).toContain('dense/causal cpu B1 H8 D64')
    expect(fwd).toContain('dense/causal webgpu B1 H8 D64')
    // The cpu series joins T=256 and T=512 with a line; the webgpu one is a single point.
    expect(fwd.match(/<polyline/g)?.length).toBe(1)
    expect(fwd).toContain('(log scale)')
    for (const t of ['256', '512']) expect(fwd).toContain(`>${t}</text>`)
    assertWellFormedSvg(charts[2].svg)
    expect(charts[2].svg).toContain('>4 MiB</text>')
  })

  it('lineChart copes with no data and escapes text', () => {
    const svg = lineChart({
      title: 'a <b> & "c"',
      xLabel: 'x',
      yLabel: 'y',
      series: [{ name: 'n', points: [] }],
    })
    assertWellFormedSvg(svg)
    expect(svg).toContain('a &#60;b&#62; &#38; &#34;c&#34;')
    expect(svg).toContain('no data')
  })

  it('quantile interpolates between order statistics', () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5)
    expect(quantile([10, 20, 30, 40, 50], 0.1)).toBeCloseTo(14)
    expect(() => quantile([], 0.5)).toThrow(/no samples/)
  })
})
