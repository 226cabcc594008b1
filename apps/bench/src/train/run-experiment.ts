import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { memory } from '@attnkit/core'
import { firstLine } from '../optional-imports.js'
import type { MachineInfo } from '../schema.js'
import { gitInfo, machineInfo } from '../versions.js'
import { loadCheckpoint } from './checkpoint.js'
import type { BrownCorpus } from './data/brown.js'
import {
  EXPERIMENTS,
  type ExperimentName,
  type ExperimentRun,
  type Measurements,
  type PlanOverrides,
  type Scale,
  withSteps,
} from './experiments.js'
import { type RunSummary, runTraining } from './loop.js'
import { fmtSeconds, TrainProgress } from './progress.js'
import {
  type Calibration,
  RESULTS_FORMAT,
  type RunResult,
  type TrainResults,
  writeResults,
} from './results.js'
import { createTask } from './tasks.js'
import { type Precision, type TrainConfig, Trainer } from './trainer.js'

export interface SessionOptions {
  corpus: BrownCorpus
  outDir: string
  backend: { name: string; device?: string }
  precision: Precision
  command: string
  /** Progress and notes (stderr). */
  log: NodeJS.WritableStream & { isTTY?: boolean }
  quiet?: boolean
  /** Write each run's checkpoint as <outDir>/<id>.safetensors (at the end, and every saveEvery steps). */
  saveCheckpoints?: boolean
  saveEvery?: number
  /** Per-run time cap (s) when the session is not calibrated; undefined: none. */
  runCapSeconds?: number
  /** No time cap at all (calibrated sessions otherwise cap each run at twice its estimate). */
  noCap?: boolean
  machine?: MachineInfo
}

export interface PlannedRun extends ExperimentRun {
  resumeFrom?: string
}

export interface PlannedSession {
  experiment: ExperimentName | 'custom'
  title: string
  claim?: string
  scale?: Scale
  budgetSeconds?: number
  /**
   * Size the runs to a time budget: every run is timed for a few steps first, then all get
   * the same number of steps (equal tokens) such that their training fits trainSeconds.
   */
  calibrate?: { trainSeconds: number; minSteps: number; maxSteps: number }
  runs: PlannedRun[]
  measure?: (typeof EXPERIMENTS)[ExperimentName]['measure']
}

interface Opened {
  trainer: Trainer
  config: TrainConfig
  fallback?: string
}

const CALIBRATION_STEPS = 4

/**
 * A trainer for a run. In bf16 its first step is taken here: a backend may lack a bfloat16
 * kernel some mixer needs, and then the run goes on in float32 and says so (`fallback`),
 * rather than being lost.
 */
async function openTrainer(
  run: PlannedRun,
  config: TrainConfig,
  corpus: BrownCorpus,
  say: (s: string) => void,
): Promise<Opened> {
  const start = (c: TrainConfig) => {
    const task = createTask(c.data, c, corpus, c.evalBatches)
    return run.resumeFrom
      ? loadCheckpoint(run.resumeFrom, () => task, { steps: c.steps })
      : Trainer.create(c, task)
  }
  const trainer = await start(config)
  if (config.precision !== 'bf16' || trainer.step > 0) return { trainer, config }
  try {
    await trainer.trainStep()
    return { trainer, config }
  } catch (e) {
    trainer.dispose()
    const reason = firstLine((e as Error).message)
    say(`  FALLBACK to fp32 for ${run.id}: its bf16 step failed: ${reason}`)
    const c: TrainConfig = { ...config, precision: 'fp32' }
    return {
      trainer: await start(c),
      config: c,
      fallback: `bf16 failed at the first step (${reason}); ran in fp32`,
    }
  }
}

/** Times each run for a few steps and picks one step count for all of them. */
async function calibrate(
  plan: PlannedSession,
  budget: NonNullable<PlannedSession['calibrate']>,
  corpus: BrownCorpus,
  say: (s: string) => void,
): Promise<Calibration> {
  const secondsPerStep: Record<string, number> = {}
  const fallbacks: Record<string, string> = {}
  for (const run of plan.runs) {
    let opened: Opened | undefined
    try {
      opened = await openTrainer(run, withSteps(run.config, budget.maxSteps), corpus, say)
      const t = opened.trainer
      const times: number[] = []
      while (t.step < CALIBRATION_STEPS) times.push((await t.trainStep()).ms)
      // The first step compiles kernels: time the ones after it.
      const timed = times.slice(-(CALIBRATION_STEPS - 1))
      secondsPerStep[run.id] = timed.reduce((a, b) => a + b, 0) / timed.length / 1e3
      if (opened.fallback) fallbacks[run.id] = opened.fallback
      say(`  calibration ${run.id}: ${(secondsPerStep[run.id] * 1e3).toFixed(0)} ms/step`)
    } catch (e) {
      say(`  calibration ${run.id} failed (${firstLine((e as Error).message)}); the run will report it`)
    } finally {
      opened?.trainer.dispose()
    }
  }
  const total = Object.values(secondsPerStep).reduce((a, b) => a + b, 0)
  const fit = total > 0 ? Math.floor(budget.trainSeconds / total) : budget.minSteps
  const steps = Math.max(budget.minSteps, Math.min(budget.maxSteps, fit))
  say(
    `  ${steps} steps per run (fits ${fmtSeconds(budget.trainSeconds)} of training: ${fmtSeconds(total * steps)} estimated; bounds ${budget.minSteps}..${budget.maxSteps})`,
  )
  return { trainSeconds: budget.trainSeconds, secondsPerStep, steps, fallbacks }
}

/**
 * Trains every run of a session in turn (each on the task its config names), measures it,
 * and rewrites results.json / loss.svg / results.md after every run, so a session cut short
 * (a device time limit) still leaves the runs it finished. A run that fails is recorded with
 * its error and the session goes on.
 */
export async function runSession(plan: PlannedSession, o: SessionOptions): Promise<TrainResults> {
  const started = performance.now()
  mkdirSync(o.outDir, { recursive: true })
  const say = (s: string) => {
    if (!o.quiet) o.log.write(`${s}\n`)
  }
  const results: TrainResults = {
    format: RESULTS_FORMAT,
    experiment: plan.experiment,
    title: plan.title,
    claim: plan.claim,
    scale: plan.scale,
    createdAt: new Date().toISOString(),
    command: o.command,
    git: gitInfo(),
    machine: o.machine ?? machineInfo(),
    backend: o.backend,
    precision: o.precision,
    budgetSeconds: plan.budgetSeconds,
    wallSeconds: 0,
    task: '',
    runs: [],
  }
  const first = plan.runs[0]?.config
  if (first) results.task = createTask(first.data, first, o.corpus, first.evalBatches).describe()
  if (plan.calibrate) {
    results.calibration = await calibrate(plan, plan.calibrate, o.corpus, say)
    results.calibrationSeconds = (performance.now() - started) / 1e3
  }
  const cal = results.calibration
  for (const [i, run] of plan.runs.entries()) {
    let config = cal ? withSteps(run.config, cal.steps) : run.config
    if (cal?.fallbacks[run.id]) config = { ...config, precision: 'fp32' }
    const result: RunResult = { id: run.id, role: run.role, config, measurements: {} }
    results.runs.push(result)
    const liveBefore = memory().liveTensors
    let trainer: Trainer | undefined
    try {
      const opened = await openTrainer(run, config, o.corpus, say)
      trainer = opened.trainer
      config = result.config = opened.config
      const fallback = opened.fallback ?? cal?.fallbacks[run.id]
      if (fallback) result.measurements.precisionFallback = fallback
      if (run.resumeFrom) say(`  resumed from ${run.resumeFrom} at step ${trainer.step}`)
      say(
        `[${i + 1}/${plan.runs.length}] ${run.id}: ${run.role}; ${trainer.paramCount()} params, ${config.steps} steps of ${config.batch}x${config.seqLen} tokens, ${config.precision}`,
      )
      // Calibrated: a run may take twice its estimate before the cap stops it.
      const perStep = cal?.secondsPerStep[run.id]
      const cap = o.noCap ? undefined : perStep ? Math.max(30, 2 * perStep * config.steps) : o.runCapSeconds
      const summary: RunSummary = await runTraining(trainer, {
        progress: new TrainProgress(o.log, run.id, config.steps, o.quiet),
        maxSeconds: cap,
        checkpoint: o.saveCheckpoints ? path.join(o.outDir, `${run.id}.safetensors`) : undefined,
        saveEvery: o.saveEvery,
      })
      result.summary = summary
      if (plan.measure) {
        const measured: Measurements = await plan.measure({
          trainer,
          run: { ...run, config },
          corpus: o.corpus,
          scale: plan.scale ?? 'full',
        })
        Object.assign(result.measurements, measured)
      }
      const final = Object.entries(summary.final)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(', ')
      say(
        `  done in ${fmtSeconds(summary.wallSeconds)}: ${summary.tokensPerSecond.toFixed(0)} tok/s, final ${final}`,
      )
    } catch (e) {
      result.error = firstLine((e as Error).message)
      say(`  ${run.id} FAILED: ${(e as Error).stack ?? result.error}`)
    } finally {
      trainer?.dispose()
    }
    const leaked = memory().liveTensors - liveBefore
    if (leaked > 0) {
      result.measurements.leakedTensors = leaked
      say(`  warning: ${leaked} tensors still alive after run ${run.id}`)
    }
    results.wallSeconds = (performance.now() - started) / 1e3
    writeResults(o.outDir, results)
  }
  return results
}

/** An experiment preset as a session (calibrated to its H100 budget at full scale unless steps are given). */
export async function planExperiment(
  name: ExperimentName,
  scale: Scale,
  overrides: PlanOverrides,
): Promise<PlannedSession> {
  const e = EXPERIMENTS[name]
  const fixed = overrides.steps !== undefined || overrides.tokens !== undefined
  return {
    experiment: name,
    title: e.title,
    claim: e.claim,
    scale,
    budgetSeconds: scale === 'full' ? e.budgetSeconds : undefined,
    calibrate: scale === 'full' && !fixed ? e.calibrate : undefined,
    runs: await e.plan(scale, overrides),
    measure: e.measure,
  }
}
