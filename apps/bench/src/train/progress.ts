import type { StepRecord } from './trainer.js'

type Stream = NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean; columns?: number }

const fmtRate = (r: number): string =>
  r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0)

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?'
  if (s < 60) return `${s.toFixed(0)}s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${m % 60}m`
}

/**
 * A training run's progress on stderr: a redrawn bar with step, loss and tokens/s on a
 * terminal; on a log (not a TTY) one line every ~5% of the steps; nothing when quiet.
 */
export class TrainProgress {
  private readonly startedAt = performance.now()
  private rate = 0
  private lastLine = 0

  constructor(
    private readonly stream: Stream,
    private readonly label: string,
    private readonly totalSteps: number,
    private readonly quiet = false,
  ) {}

  private get tty(): boolean {
    return Boolean(this.stream.isTTY) && !this.quiet
  }

  update(r: StepRecord): void {
    const inst = r.stepTokens / (r.ms / 1e3)
    // The first steps include kernel compilation: an average that forgets them quickly.
    this.rate = this.rate === 0 ? inst : 0.9 * this.rate + 0.1 * inst
    if (this.quiet) return
    const elapsed = (performance.now() - this.startedAt) / 1e3
    const eta = (elapsed / r.step) * (this.totalSteps - r.step)
    const text = `step ${r.step}/${this.totalSteps} loss ${r.loss.toFixed(4)} | ${fmtRate(this.rate)} tok/s | lr ${r.lr.toExponential(1)} | ${fmtSeconds(elapsed)}, eta ${fmtSeconds(eta)} | ${this.label}`
    if (this.tty) {
      const width = 20
      const filled = Math.round((r.step / this.totalSteps) * width)
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`
      this.stream.write(`\r\x1b[2K${line.slice(0, (this.stream.columns ?? 120) - 1)}`)
    } else {
      const every = Math.max(1, Math.floor(this.totalSteps / 20))
      if (
        r.step === 1 ||
        r.step % every === 0 ||
        r.step === this.totalSteps ||
        r.step - this.lastLine >= every
      ) {
        this.stream.write(`${text}\n`)
        this.lastLine = r.step
      }
    }
  }

  /** Tokens per second, smoothed. */
  get tokensPerSecond(): number {
    return this.rate
  }

  /** A line of its own (an evaluation, a checkpoint), above the bar. */
  note(line: string): void {
    if (this.quiet) return
    this.stream.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`)
  }

  finish(): void {
    if (this.tty) this.stream.write('\r\x1b[2K')
  }
}
