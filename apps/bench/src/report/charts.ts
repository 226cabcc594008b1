import type { BenchResults, CellResult } from '../schema.js'
import { fmtBytes, fmtMs } from './format.js'
import { lineChart, type Series } from './svg.js'

export interface Chart {
  file: string
  title: string
  svg: string
}

/** "10.0 ms" -> "10 ms", "2.50 GiB" -> "2.5 GiB": tick labels without trailing zeros. */
export const trimZeros = (s: string): string => s.replace(/(\.\d*?)0+(?= )/, '$1').replace(/\.(?= )/, '')

/** The dims of a cell other than seqLen, e.g. "B1 H8 D64": cells differing only in T share a line. */
function shapeWithoutT(c: CellResult): string {
  return c.label
    .split(' ')
    .filter((part) => !/^T\d+$/.test(part))
    .join(' ')
}

/** Time vs sequence length (context length for decode), one chart per mode and dtype. */
export function timeCharts(r: BenchResults): Chart[] {
  const timed = r.cells.filter((c) => c.timing && c.dims.seqLen !== undefined)
  const byChart = new Map<string, CellResult[]>()
  for (const c of timed) {
    const k = `${c.mode}|${c.dtype}`
    byChart.set(k, [...(byChart.get(k) ?? []), c])
  }
  const charts: Chart[] = []
  for (const [k, cells] of byChart) {
    const [mode, dtype] = k.split('|')
    const series = new Map<string, Series>()
    for (const c of cells) {
      const name = `${c.mechanism}${c.variant === 'default' ? '' : `/${c.variant}`} ${c.backend} ${shapeWithoutT(c)}`
      const s = series.get(name) ?? { name, points: [] }
      s.points.push({ x: c.dims.seqLen, y: c.timing!.medianMs })
      series.set(name, s)
    }
    const title = `${mode} time vs ${mode === 'decode' ? 'context' : 'sequence'} length (${dtype})`
    charts.push({
      file: `time-${mode.replace(/\+/g, '-')}-${dtype}.svg`,
      title,
      svg: lineChart({
        title,
        xLabel: mode === 'decode' ? 'context length (tokens)' : 'sequence length T',
        yLabel: `median time per ${mode === 'decode' ? 'decode step' : 'run'}`,
        series: [...series.values()],
        formatY: (v) => trimZeros(fmtMs(v)),
      }),
    })
  }
  return charts
}

/** KV-cache bytes vs context, from the cost model, per mechanism and variant. */
export function kvCacheChart(r: BenchResults): Chart | null {
  if (r.kvCache.length === 0) return null
  const title = 'KV-cache bytes vs context (batch and heads as in the run)'
  return {
    file: 'kv-cache.svg',
    title,
    svg: lineChart({
      title,
      xLabel: 'context length (tokens)',
      yLabel: 'decode cache size',
      series: r.kvCache.map((s) => ({
        name: `${s.mechanism}${s.variant === 'default' ? '' : `/${s.variant}`} ${s.dtype}`,
        points: s.points.map((p) => ({ x: p.context, y: p.bytes })),
      })),
      formatY: (v) => trimZeros(fmtBytes(v)),
      yBase: 2,
    }),
  }
}

export function allCharts(r: BenchResults): Chart[] {
  const kv = kvCacheChart(r)
  return [...timeCharts(r), ...(kv ? [kv] : [])]
}
