import type { CellResult } from './schema.js'

/**
 * Progress on stderr: a redrawn bar on a terminal, one plain line per finished cell otherwise
 * (CI logs), nothing when quiet.
 */
export class Progress {
  private total = 0
  private done = 0
  /** Labels of the cells running now (more than one when the CPU runs alongside a GPU). */
  private readonly active: string[] = []
  private readonly startedAt = performance.now()

  constructor(
    private readonly stream: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean },
    private readonly quiet = false,
  ) {}

  private get tty(): boolean {
    return Boolean(this.stream.isTTY) && !this.quiet
  }

  start(total: number): void {
    this.total = total
    this.done = 0
  }

  /** Cells an earlier session of a resumed run finished. */
  resumed(n: number): void {
    this.done += n
  }

  /** Cells that will not run (a sweep stopped early). */
  drop(n: number): void {
    this.total -= n
  }

  begin(label: string): void {
    this.active.push(label)
    if (this.tty) this.draw()
  }

  end(r: CellResult, label: string): void {
    this.done++
    const at = this.active.indexOf(label)
    if (at >= 0) this.active.splice(at, 1)
    if (this.quiet) return
    if (this.tty) this.draw()
    else this.stream.write(`[${this.done}/${this.total}] ${label}: ${summarise(r)}\n`)
  }

  finish(): void {
    if (this.tty) this.stream.write('\r\x1b[2K')
  }

  private draw(): void {
    const width = 24
    const frac = this.total > 0 ? this.done / this.total : 1
    const filled = Math.round(frac * width)
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`
    const elapsed = ((performance.now() - this.startedAt) / 1e3).toFixed(0)
    const cols = (this.stream as NodeJS.WriteStream).columns ?? 100
    const line = `[${bar}] ${this.done}/${this.total} ${elapsed}s ${this.active.join(' | ')}`
    this.stream.write(`\r\x1b[2K${line.slice(0, cols - 1)}`)
  }
}

export function summarise(r: CellResult): string {
  if (r.status === 'ok' || r.status === 'failed') {
    const t = r.timing ? `${r.timing.medianMs.toPrecision(3)} ms` : ''
    return r.status === 'ok' ? `ok ${t}` : `FAILED ${t}: ${r.reason}`
  }
  return `${r.status}: ${r.reason}`
}
