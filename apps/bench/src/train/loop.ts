import { saveCheckpoint } from './checkpoint.js'
import { fmtSeconds, type TrainProgress } from './progress.js'
import type { Metrics } from './tasks.js'
import type { EvalRecord, Precision, StepRecord, Trainer } from './trainer.js'

export interface LoopOptions {
  progress?: TrainProgress
  /** Checkpoint path: written every saveEvery steps (if set) and at the end. */
  checkpoint?: string
  saveEvery?: number
  /** Stop after this much wall time (the run is then marked stopped early). */
  maxSeconds?: number
}

/** A point of a loss curve: the mean loss of a window of steps. */
export interface CurvePoint {
  step: number
  tokens: number
  loss: number
}

export interface RunSummary {
  name: string
  /** The distinct mixers, in layer order. */
  mixers: string[]
  params: number
  precision: Precision
  stepsPlanned: number
  stepsDone: number
  tokens: number
  batch: number
  seqLen: number
  /** Wall time of the loop, s (training + evaluations + checkpoints). */
  wallSeconds: number
  /** Sum of step times, s. */
  trainSeconds: number
  evalSeconds: number
  /** Median over steps after the first 10% (compilation and warm-up left out). */
  tokensPerSecond: number
  /** Mean training loss over the last 5% of steps (at least one). */
  finalTrainLoss: number
  final: Metrics
  evals: EvalRecord[]
  curve: CurvePoint[]
  /** Why the run stopped before stepsPlanned, if it did. */
  stoppedEarly?: string
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Mean loss over windows of steps: at most `points` points. */
export function curveOf(h: StepRecord[], points = 120): CurvePoint[] {
  const per = Math.max(1, Math.ceil(h.length / points))
  const out: CurvePoint[] = []
  for (let i = 0; i < h.length; i += per) {
    const w = h.slice(i, i + per)
    const last = w[w.length - 1]
    out.push({ step: last.step, tokens: last.tokens, loss: w.reduce((s, r) => s + r.loss, 0) / w.length })
  }
  return out
}

function fmtMetrics(m: Metrics): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(', ')
}

/** Trains to config.steps (or the time cap), evaluating every evalEvery steps and at the end. */
export async function runTraining(trainer: Trainer, opts: LoopOptions = {}): Promise<RunSummary> {
  const c = trainer.config
  const started = performance.now()
  const startStep = trainer.step
  // The time cap counts from the end of the first step here, which compiles the kernels.
  let capFrom = started
  let stoppedEarly: string | undefined
  const evalAndLog = async () => {
    const e = await trainer.evaluate()
    opts.progress?.note(`  eval @ step ${e.step} (${e.tokens} tokens): ${fmtMetrics(e.metrics)}`)
  }
  while (trainer.step < c.steps) {
    const r = await trainer.trainStep()
    opts.progress?.update(r)
    if (c.evalEvery > 0 && r.step % c.evalEvery === 0 && r.step < c.steps) await evalAndLog()
    if (opts.checkpoint && opts.saveEvery && r.step % opts.saveEvery === 0 && r.step < c.steps)
      await saveCheckpoint(opts.checkpoint, trainer)
    if (r.step === startStep + 1) capFrom = performance.now()
    const elapsed = (performance.now() - capFrom) / 1e3
    if (opts.maxSeconds && elapsed > opts.maxSeconds && trainer.step < c.steps) {
      stoppedEarly = `time cap of ${fmtSeconds(opts.maxSeconds)} reached at step ${trainer.step} of ${c.steps}`
      break
    }
  }
  opts.progress?.finish()
  if (trainer.evals.at(-1)?.step !== trainer.step) await evalAndLog()
  if (opts.checkpoint) await saveCheckpoint(opts.checkpoint, trainer)
  if (stoppedEarly) opts.progress?.note(`  stopped early: ${stoppedEarly}`)
  const h = trainer.history
  const steady = h.slice(Math.floor(h.length / 10)).filter((r) => r.step > startStep)
  const tail = h.slice(-Math.max(1, Math.ceil(h.length / 20)))
  return {
    name: c.model.name,
    mixers: [...new Set(trainer.model.mixers.map((m) => m.label))],
    params: trainer.paramCount(),
    precision: c.precision,
    stepsPlanned: c.steps,
    stepsDone: trainer.step,
    tokens: trainer.tokens,
    batch: c.batch,
    seqLen: c.seqLen,
    wallSeconds: (performance.now() - started) / 1e3,
    trainSeconds: h.filter((r) => r.step > startStep).reduce((s, r) => s + r.ms, 0) / 1e3,
    evalSeconds: trainer.evals.reduce((s, e) => s + e.ms, 0) / 1e3,
    tokensPerSecond: median(steady.map((r) => r.stepTokens / (r.ms / 1e3))),
    finalTrainLoss: tail.reduce((s, r) => s + r.loss, 0) / tail.length,
    final: trainer.evals.at(-1)?.metrics ?? {},
    evals: trainer.evals,
    curve: curveOf(trainer.history),
    stoppedEarly,
  }
}
