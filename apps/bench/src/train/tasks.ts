import { Rng, type Tensor } from '@attnkit/core'
import type { BrownCorpus } from './data/brown.js'
import { evenWindows, randomWindows, windowsAt } from './data/lm.js'
import { niahBatch, niahDigitHits, niahLossWeights, niahOverhead, niahQuestionHits } from './data/niah.js'
import { type ForwardContext, type Model, type ModelParams, tokensTensor } from './model.js'

/** What a run trains on; JSON (stored in checkpoints). */
export type DataConfig =
  | { kind: 'brown' }
  | {
      kind: 'niah'
      /** Training lengths; each step draws one, with batch x seqLen / length rows (same tokens per step). */
      lengths: number[]
      /** Lengths accuracy is measured at. */
      evalLengths: number[]
      /** Samples per evaluation length. */
      evalSamples: number
      keyLength: number
      valueDigits: number
      /** Needles per training sample, each asked for (multi-query); evaluation is always single-needle. */
      trainNeedles: number
      /**
       * Training loss = mean over the answer digits + fillerWeight x mean over every other
       * position (language modelling of the haystack, which teaches copying from context).
       */
      fillerWeight: number
      /**
       * Length curriculum: over this fraction of the run's steps the longest training length
       * grows from the shortest to the longest (0 or absent: every length from the start).
       * Retrieval is learned first where the haystack is short (attention to the needle starts
       * at 1/length, so the answer's gradient reaching it does too), then extended.
       */
      curriculum?: number
      /**
       * Needles per evaluation sample, each asked for (default 1: S-NIAH). More is the
       * multi-key, multi-query variant; accuracy then counts each question on its own.
       */
      evalNeedles?: number
    }

export interface Batch {
  inputs: Int32Array
  targets: Int32Array
  /** Per-position loss weights (default: the mean over targets that are not IGNORE). */
  weights?: Float32Array
  batch: number
  length: number
}

export interface TaskShape {
  /** Rows per step at seqLen (NIAH scales rows so every step has batch x seqLen tokens). */
  batch: number
  seqLen: number
  seed: number
  /** The run's total steps (the NIAH length curriculum is a fraction of them). */
  steps: number
}

/** Metric name -> value, e.g. val_loss, val_ppl, or niah_acc@1024. */
export type Metrics = Record<string, number>

export interface Task {
  describe(): string
  /** The training batch of a step: a pure function of (seed, step), so resuming replays nothing. */
  batch(step: number): Batch
  evaluate(model: Model, params: ModelParams, ctx: ForwardContext): Promise<Metrics>
  /** The metric that says how good a run is (lower or higher is better). */
  headline: { metric: string; better: 'lower' | 'higher' }
}

// Evaluation samples are the same for every run and seed, so runs compare on identical data.
const EVAL_SEED = 20240611

export function createTask(
  data: DataConfig,
  shape: TaskShape,
  corpus: BrownCorpus,
  evalBatches: number,
): Task {
  if (data.kind === 'brown') return brownTask(shape, corpus, evalBatches)
  if (data.kind === 'niah') return niahTask(data, shape, corpus)
  throw new Error(
    `createTask: argument 'data.kind' expected 'brown' | 'niah', got ${JSON.stringify((data as { kind: unknown }).kind)}`,
  )
}

async function meanLoss(model: Model, params: ModelParams, b: Batch, ctx: ForwardContext): Promise<number> {
  const inputs = tokensTensor(b.inputs, b.batch, b.length)
  const targets = tokensTensor(b.targets, b.batch, b.length)
  let loss: Tensor | undefined
  try {
    loss = model.loss(params, inputs, targets, { ...ctx, training: false })
    return (await loss.data())[0]
  } finally {
    for (const t of [inputs, targets, loss]) t?.dispose()
  }
}

function brownTask(shape: TaskShape, corpus: BrownCorpus, evalBatches: number): Task {
  const dataRng = new Rng(shape.seed).fork(1)
  const starts = evenWindows(corpus.validation, evalBatches * shape.batch, shape.seqLen)
  return {
    describe: () =>
      `Brown corpus, byte tokens: ${corpus.train.length} training / ${corpus.validation.length} validation bytes (${corpus.trainFiles} / ${corpus.validationFiles} files); validation on ${starts.length} windows of ${shape.seqLen}`,
    batch: (step) => randomWindows(dataRng.fork(step), corpus.train, shape.batch, shape.seqLen),
    headline: { metric: 'val_loss', better: 'lower' },
    evaluate: async (model, params, ctx) => {
      // Cross-entropy only (no LTE penalty); every window has the same number of tokens.
      let total = 0
      let n = 0
      for (let i = 0; i < starts.length; i += shape.batch) {
        const b = windowsAt(corpus.validation, starts.slice(i, i + shape.batch), shape.seqLen)
        total += (await meanLoss(model, params, b, ctx)) * b.batch
        n += b.batch
      }
      const loss = total / n
      return { val_loss: loss, val_ppl: Math.exp(loss), val_bpb: loss / Math.LN2 }
    },
  }
}

function niahTask(data: Extract<DataConfig, { kind: 'niah' }>, shape: TaskShape, corpus: BrownCorpus): Task {
  const opts = { keyLength: data.keyLength, valueDigits: data.valueDigits }
  const perNeedle = niahOverhead(opts)
  const check = (L: number, needles: number) => {
    if (!Number.isInteger(L) || L < needles * perNeedle + 1)
      throw new Error(
        `niah: lengths expected integers >= ${needles * perNeedle + 1} (${needles} needle(s)), got ${L}`,
      )
  }
  for (const L of data.lengths) check(L, data.trainNeedles)
  const evalNeedles = data.evalNeedles ?? 1
  for (const L of data.evalLengths) check(L, evalNeedles)
  const tokensPerStep = shape.batch * shape.seqLen
  const rowsFor = (L: number) => Math.max(1, Math.round(tokensPerStep / L))
  const dataRng = new Rng(shape.seed).fork(2)
  return {
    describe: () =>
      `S-NIAH (key ${data.keyLength} letters, value ${data.valueDigits} digits) in Brown filler; trained on ${data.trainNeedles > 1 ? `${data.trainNeedles}-needle, ${data.trainNeedles}-question samples` : 'single-needle samples'} of lengths ${data.lengths.join('/')} (${tokensPerStep} tokens per step${data.curriculum ? `; length curriculum: the longest length grows over the first ${Math.round(data.curriculum * 100)}% of the steps, and each step takes the longest length open with probability 1/2, else one of the open lengths uniformly` : ''}), training loss = mean over the answer digits${data.fillerWeight > 0 ? ` + ${data.fillerWeight} x mean over the other positions` : ' only'}; accuracy = exact match of the ${data.valueDigits} digits (and the fraction of digits right) at ${data.evalLengths.join('/')} over ${data.evalSamples} held-out samples each (validation-split filler${evalNeedles > 1 ? `; ${evalNeedles} needles per sample, all asked for, each question scored on its own` : ''})`,
    batch: (step) => {
      const rng = dataRng.fork(step)
      const curriculum = data.curriculum ?? 0
      // One draw without a curriculum, as before it existed (so earlier runs' batches replay).
      const u = rng.uniformArray(curriculum > 0 ? 2 : 1)
      const L = curriculumLength(data.lengths, step, shape.steps, curriculum, u)
      const b = niahBatch(rng, corpus.train, rowsFor(L), { length: L, ...opts, needles: data.trainNeedles })
      if (!(data.fillerWeight > 0)) return b
      return { ...b, targets: b.nextTokens, weights: niahLossWeights(b, data.fillerWeight) }
    },
    headline: { metric: `niah_acc@${Math.max(...data.evalLengths)}`, better: 'higher' },
    evaluate: async (model, params, ctx) => {
      const out: Metrics = {}
      for (const L of data.evalLengths) {
        const rng = new Rng(EVAL_SEED).fork(L)
        const rows = rowsFor(L)
        let correct = 0
        let digits = 0
        let answerLoss = 0
        for (let done = 0, i = 0; done < data.evalSamples; i++) {
          const b = niahBatch(rng.fork(i), corpus.validation, Math.min(rows, data.evalSamples - done), {
            length: L,
            ...opts,
            needles: evalNeedles,
          })
          // The questions and answers end every sample alike: the first answer digit's position.
          const from = b.samples[0].answerPositions[0]
          const inputs = tokensTensor(b.inputs, b.batch, L)
          const targets = tokensTensor(b.targets, b.batch, L)
          let r: { argmax: Tensor; loss: Tensor } | undefined
          try {
            r = model.predict(params, inputs, targets, from, { ...ctx, training: false })
            const predicted = await r.argmax.data()
            correct += niahQuestionHits(b, predicted, from)
            digits += niahDigitHits(b, predicted, from)
            answerLoss += (await r.loss.data())[0] * b.batch
          } finally {
            for (const t of [inputs, targets, r?.argmax, r?.loss]) t?.dispose()
          }
          done += b.batch
        }
        out[`niah_acc@${L}`] = correct / (data.evalSamples * evalNeedles)
        out[`digit_acc@${L}`] = digits / (data.evalSamples * evalNeedles * data.valueDigits)
        out[`answer_loss@${L}`] = answerLoss / data.evalSamples
      }
      return out
    },
  }
}

/**
 * The training length of a step. Without a curriculum, one of `lengths` uniformly. With one
 * (fraction f of `steps`), the sorted lengths open one by one, evenly over the first f x steps;
 * a step takes the longest open length with probability 1/2, else one of the open lengths
 * uniformly, so every newly opened length is trained at once while the shorter ones stay in the
 * mix. `u`: uniform draws in [0, 1), two with a curriculum.
 */
export function curriculumLength(
  lengths: readonly number[],
  step: number,
  steps: number,
  fraction: number,
  u: ArrayLike<number>,
): number {
  const sorted = [...lengths].sort((a, b) => a - b)
  if (!(fraction > 0) || sorted.length === 1) return lengths[Math.floor(u[0] * lengths.length)]
  const ramp = fraction * steps
  const open = Math.min(sorted.length, 1 + Math.floor((step / ramp) * (sorted.length - 1)))
  return u[1] < 0.5 ? sorted[open - 1] : sorted[Math.floor(u[0] * open)]
}
