/** A small, dependency-free SVG line chart with log axes and a legend. */

export interface Series {
  name: string
  points: { x: number; y: number }[]
}

export interface ChartSpec {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Formats tick values. */
  formatX?: (v: number) => string
  formatY?: (v: number) => string
  /** Log base of the axis ticks: 2 suits sequence lengths and bytes, 10 (with 2x, 5x) times. */
  xBase?: number
  yBase?: number
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
]
const DASHES = ['', '6 3', '2 3', '8 3 2 3']

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

/** Ticks at powers of `base` spanning [lo, hi]; adds 2x and 5x for decades spanning little. */
function logTicks(lo: number, hi: number, base: number): number[] {
  const first = Math.floor(Math.log(lo) / Math.log(base) + 1e-9)
  const last = Math.ceil(Math.log(hi) / Math.log(base) - 1e-9)
  const ticks: number[] = []
  for (let e = first; e <= last; e++) ticks.push(base ** e)
  if (base === 10 && ticks.length <= 3) {
    for (let e = first; e < last; e++) ticks.push(2 * 10 ** e, 5 * 10 ** e)
    ticks.sort((a, b) => a - b)
  }
  const step = Math.max(1, Math.ceil(ticks.length / 10))
  return ticks.filter((_, i) => i % step === 0)
}

const compact = (v: number): string => {
  if (v >= 1024 && Number.isInteger(Math.log2(v))) return `${v / 1024}K`
  return Number(v.toPrecision(3)).toString()
}

/** Renders the chart; series with no positive points are left out of the plot but kept in the legend. */
export function lineChart(spec: ChartSpec): string {
  const W = 760
  const H = Math.max(440, 80 + spec.series.length * 18)
  const legendW = 230
  const m = { left: 78, right: legendW + 20, top: 44, bottom: 58 }
  const pw = W - m.left - m.right
  const ph = H - m.top - m.bottom
  const all = spec.series.flatMap((s) => s.points).filter((p) => p.x > 0 && p.y > 0)
  const fx = spec.formatX ?? compact
  const fy = spec.formatY ?? compact
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12" role="img">`,
    // The title names the chart for screen readers and tooltips (and satisfies a11y lints).
    `<title>${escapeXml(spec.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.left + pw / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`,
  )
  if (all.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`, '</svg>')
    return out.join('\n')
  }
  const xs = all.map((p) => p.x)
  const ys = all.map((p) => p.y)
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)]
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)]
  // A single value gets a span around it, so the axis has a range.
  if (x0 === x1) [x0, x1] = [x0 / 2, x1 * 2]
  if (y0 === y1) [y0, y1] = [y0 / 2, y1 * 2]
  const xb = spec.xBase ?? 2
  const xTicks = logTicks(x0, x1, xb)
  const yTicks = logTicks(y0, y1, spec.yBase ?? 10)
  const lx0 = Math.log(Math.min(x0, xTicks[0]))
  const lx1 = Math.log(Math.max(x1, xTicks.at(-1)!))
  const ly0 = Math.log(Math.min(y0, yTicks[0]))
  const ly1 = Math.log(Math.max(y1, yTicks.at(-1)!))
  const px = (x: number) => m.left + ((Math.log(x) - lx0) / (lx1 - lx0 || 1)) * pw
  const py = (y: number) => m.top + ph - ((Math.log(y) - ly0) / (ly1 - ly0 || 1)) * ph
  const r = (v: number) => v.toFixed(1)

  out.push(`<g stroke="#e5e5e5">`)
  for (const t of xTicks)
    out.push(`<line x1="${r(px(t))}" y1="${m.top}" x2="${r(px(t))}" y2="${m.top + ph}"/>`)
  for (const t of yTicks)
    out.push(`<line x1="${m.left}" y1="${r(py(t))}" x2="${m.left + pw}" y2="${r(py(t))}"/>`)
  out.push('</g>')
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  for (const t of xTicks)
    out.push(`<text x="${r(px(t))}" y="${m.top + ph + 16}" text-anchor="middle">${escapeXml(fx(t))}</text>`)
  for (const t of yTicks)
    out.push(`<text x="${m.left - 6}" y="${r(py(t) + 4)}" text-anchor="end">${escapeXml(fy(t))}</text>`)
  out.push(
    `<text x="${m.left + pw / 2}" y="${H - 16}" text-anchor="middle">${escapeXml(spec.xLabel)} (log scale)</text>`,
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)} (log scale)</text>`,
  )
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length]
    const pts = s.points.filter((p) => p.x > 0 && p.y > 0).sort((a, b) => a.x - b.x)
    if (pts.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts
          .map((p) => `${r(px(p.x))},${r(py(p.y))}`)
          .join(' ')}"/>`,
      )
    for (const p of pts)
      out.push(
        `<circle cx="${r(px(p.x))}" cy="${r(py(p.y))}" r="3.5" fill="${color}"><title>${escapeXml(
          `${s.name}: ${fx(p.x)}, ${fy(p.y)}`,
        )}</title></circle>`,
      )
    const ly = m.top + 8 + i * 18
    const lx = W - legendW
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      `<circle cx="${lx + 11}" cy="${ly}" r="3.5" fill="${color}"/>`,
      `<text x="${lx + 28}" y="${ly + 4}">${escapeXml(s.name.length > 32 ? `${s.name.slice(0, 31)}...` : s.name)}</text>`,
    )
  })
  out.push('</svg>')
  return out.join('\n')
}
