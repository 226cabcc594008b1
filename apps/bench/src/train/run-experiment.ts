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
  type PlanOverrides,
  type Scale,
} from './experiments.js'
import { type RunSummary, runTraining } from './loop.js'
import { fmtSeconds, TrainProgress } from './progress.js'
import { RESULTS_FORMAT, type RunResult, type TrainResults, writeResults } from './results.js'
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
  /** Per-run time cap (s); undefined: none. */
  runCapSeconds?: number
  machine?: MachineInfo
}

export interface PlannedSession {
  experiment: ExperimentName | 'custom'
  title: string
  claim?: string
  scale?: Scale
  budgetSeconds?: number
  runs: (ExperimentRun & { resumeFrom?: string })[]
  measure?: (typeof EXPERIMENTS)[ExperimentName]['measure']
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
  for (const [i, run] of plan.runs.entries()) {
    const result: RunResult = { id: run.id, role: run.role, config: run.config, measurements: {} }
    results.runs.push(result)
    const liveBefore = memory().liveTensors
    let trainer: Trainer | undefined
    try {
      let c = run.config
      const start = async (config: TrainConfig) => {
        const task = createTask(
          config.data,
          { batch: config.batch, seqLen: config.seqLen, seed: config.seed },
          o.corpus,
          config.evalBatches,
        )
        results.task ||= task.describe()
        return run.resumeFrom
          ? loadCheckpoint(run.resumeFrom, () => task, { steps: config.steps })
          : Trainer.create(config, task)
      }
      trainer = await start(c)
      if (run.resumeFrom) say(`  resumed from ${run.resumeFrom} at step ${trainer.step}`)
      say(
        `[${i + 1}/${plan.runs.length}] ${run.id}: ${run.role}; ${trainer.paramCount()} params, ${c.steps} steps of ${c.batch}x${c.seqLen} tokens, ${c.precision}`,
      )
      if (c.precision === 'bf16' && trainer.step === 0) {
        // A backend may lack a bfloat16 kernel some mixer needs: then this run goes on in
        // float32 and says so, rather than losing the run.
        try {
          await trainer.trainStep()
        } catch (e) {
          const reason = firstLine((e as Error).message)
          trainer.dispose()
          trainer = undefined
          c = { ...c, precision: 'fp32' }
          result.config = c
          result.measurements.precisionFallback = `bf16 failed at the first step (${reason}); ran in fp32 instead`
          say(`  FALLBACK to fp32: the bf16 step failed: ${reason}`)
          trainer = await start(c)
        }
      }
      const progress = new TrainProgress(o.log, run.id, c.steps, o.quiet)
      const summary: RunSummary = await runTraining(trainer, {
        progress,
        maxSeconds: o.runCapSeconds,
        checkpoint: o.saveCheckpoints ? path.join(o.outDir, `${run.id}.safetensors`) : undefined,
        saveEvery: o.saveEvery,
      })
      result.summary = summary
      if (plan.measure)
        Object.assign(
          result.measurements,
          await plan.measure({
            trainer,
            run: { ...run, config: c },
            corpus: o.corpus,
            scale: plan.scale ?? 'full',
          }),
        )
      say(
        `  done in ${fmtSeconds(summary.wallSeconds)}: ${summary.tokensPerSecond.toFixed(0)} tok/s, final ${Object.entries(
          summary.final,
        )
          .map(([k, v]) => `${k} ${v.toFixed(4)}`)
          .join(', ')}`,
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

/** An experiment preset as a session. */
export async function planExperiment(
  name: ExperimentName,
  scale: Scale,
  overrides: PlanOverrides,
): Promise<PlannedSession> {
  const e = EXPERIMENTS[name]
  return {
    experiment: name,
    title: e.title,
    claim: e.claim,
    scale,
    budgetSeconds: scale === 'full' ? e.budgetSeconds : undefined,
    runs: await e.plan(scale, overrides),
    measure: e.measure,
  }
}
