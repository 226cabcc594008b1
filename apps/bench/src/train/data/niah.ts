import type { Rng } from '@attnkit/core'
import { encodeBytes } from '../tokenizer.js'

/**
 * Single needle in a haystack (S-NIAH, as in RULER): a key-value needle sentence placed at a
 * random depth in filler text, and a question about the key at the end, followed by the value.
 * Byte tokens; the model must produce the value's digits after the question.
 */

/** Targets that carry no loss (everything but the answer). */
export const IGNORE = -1

export interface NiahOptions {
  /** Tokens the model reads (the sample has length + 1 tokens: inputs and shifted targets). */
  length: number
  /** Upper-case letters in the key (default 5). */
  keyLength?: number
  /** Digits in the value (default 6). */
  valueDigits?: number
  /**
   * Key-value needles, each asked for at the end in random order (default 1: S-NIAH). More
   * is the multi-key, multi-query variant: more answer digits, so more signal, per sample.
   */
  needles?: number
}

export interface Needle {
  key: string
  value: string
  /** Index in tokens where the needle sentence starts. */
  at: number
}

export interface NiahSample {
  /** length + 1 byte tokens: filler with the needles, then the questions and answers. */
  tokens: Uint8Array
  /** The first needle (the only one in S-NIAH). */
  key: string
  value: string
  needleAt: number
  /** First needle's position as a fraction of the filler (0 = start, 1 = just before the questions). */
  depth: number
  needles: Needle[]
  /** Input positions whose target is an answer digit (ascending). */
  answerPositions: number[]
  /** First answer position of the last question: with one needle, answers are answerStart..length-1. */
  answerStart: number
}

export const needleText = (key: string, value: string): string =>
  `\nRemember the magic number ${key}:${value}.\n`
export const questionText = (key: string): string => `\nWhat was the magic number? ${key}:`

function randomLetters(rng: Rng, n: number): string {
  return Array.from(rng.nextUint32(n), (u) => String.fromCharCode(65 + (u % 26))).join('')
}

function randomDigits(rng: Rng, n: number): string {
  return Array.from(rng.nextUint32(n), (u) => String(u % 10)).join('')
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

/** The fixed part of a sample per needle: needle + question + answer, in tokens. */
export function niahOverhead(opts: Omit<NiahOptions, 'length' | 'needles'> = {}): number {
  const key = 'k'.repeat(opts.keyLength ?? 5)
  const value = '0'.repeat(opts.valueDigits ?? 6)
  return encodeBytes(needleText(key, value) + questionText(key) + value).length
}

/** One sample, drawn from `rng` (filler: a byte-token stream, e.g. Brown text). */
export function niahSample(rng: Rng, filler: Uint8Array, opts: NiahOptions): NiahSample {
  const keyLength = opts.keyLength ?? 5
  const valueDigits = opts.valueDigits ?? 6
  const m = opts.needles ?? 1
  if (!Number.isInteger(m) || m < 1)
    throw new RangeError(`niahSample: argument 'needles' expected an integer >= 1, got ${m}`)
  const overhead = m * niahOverhead({ keyLength, valueDigits })
  const total = opts.length + 1
  if (!Number.isInteger(opts.length) || total - overhead < 1)
    throw new RangeError(
      `niahSample: argument 'length' expected an integer >= ${overhead} (${m} needle(s), question(s) and answer(s) take ${overhead} tokens), got ${opts.length}`,
    )
  const fillerLen = total - overhead
  if (filler.length < fillerLen)
    throw new RangeError(
      `niahSample: argument 'filler' expected at least ${fillerLen} tokens for length ${opts.length}, got ${filler.length}`,
    )
  const start = Math.floor(rng.uniformArray(1)[0] * (filler.length - fillerLen + 1))
  const hay = filler.subarray(start, start + fillerLen)
  const template = encodeBytes(needleText('', '') + questionText(''))
  const keys: string[] = []
  while (keys.length < m) {
    const key = randomLetters(rng, keyLength)
    // A key that also occurs in the filler, the template or another needle would make a
    // question ambiguous.
    const k = encodeBytes(key)
    if (!contains(hay, k) && !contains(template, k) && !keys.includes(key)) keys.push(key)
  }
  const values = keys.map(() => randomDigits(rng, valueDigits))
  const cuts = Array.from(rng.uniformArray(m), (u) => Math.floor(u * (fillerLen + 1)))
  const order = rng.permutation(m)
  const tokens = new Uint8Array(total)
  const needles: Needle[] = []
  let at = 0
  let from = 0
  // Needles in the order of their cut points; the first drawn is the sample's `key`.
  const byCut = Array.from({ length: m }, (_, i) => i).sort((a, b) => cuts[a] - cuts[b] || a - b)
  const placed = new Array<Needle>(m)
  for (const i of byCut) {
    tokens.set(hay.subarray(from, cuts[i]), at)
    at += cuts[i] - from
    from = cuts[i]
    const needle = encodeBytes(needleText(keys[i], values[i]))
    tokens.set(needle, at)
    placed[i] = { key: keys[i], value: values[i], at }
    at += needle.length
  }
  tokens.set(hay.subarray(from), at)
  at += fillerLen - from
  needles.push(...placed)
  const answerPositions: number[] = []
  for (const i of order) {
    const question = encodeBytes(questionText(keys[i]))
    tokens.set(question, at)
    at += question.length
    tokens.set(encodeBytes(values[i]), at)
    for (let d = 0; d < valueDigits; d++) answerPositions.push(at + d - 1)
    at += valueDigits
  }
  return {
    tokens,
    key: keys[0],
    value: values[0],
    needleAt: placed[0].at,
    depth: fillerLen > 0 ? cuts[0] / fillerLen : 0,
    needles,
    answerPositions,
    answerStart: opts.length - valueDigits,
  }
}

export interface NiahBatch {
  /** int32 [batch * length], row-major [batch, length]. */
  inputs: Int32Array
  /** The next token at answer positions, IGNORE elsewhere (what accuracy and answer loss use). */
  targets: Int32Array
  /** The next token everywhere (for a language-modelling loss on the filler as well). */
  nextTokens: Int32Array
  samples: NiahSample[]
  batch: number
  length: number
}

export function niahBatch(rng: Rng, filler: Uint8Array, batch: number, opts: NiahOptions): NiahBatch {
  const L = opts.length
  const inputs = new Int32Array(batch * L)
  const targets = new Int32Array(batch * L).fill(IGNORE)
  const nextTokens = new Int32Array(batch * L)
  const samples: NiahSample[] = []
  for (let b = 0; b < batch; b++) {
    const s = niahSample(rng.fork(b), filler, opts)
    samples.push(s)
    for (let i = 0; i < L; i++) {
      inputs[b * L + i] = s.tokens[i]
      nextTokens[b * L + i] = s.tokens[i + 1]
    }
    for (const i of s.answerPositions) targets[b * L + i] = s.tokens[i + 1]
  }
  return { inputs, targets, nextTokens, samples, batch, length: L }
}

/**
 * Per-position loss weights: the answer digits share weight 1, the other positions share
 * `fillerWeight` (0: the answer alone is trained). Sums to 1 + fillerWeight over the batch.
 */
export function niahLossWeights(b: NiahBatch, fillerWeight: number): Float32Array {
  const w = new Float32Array(b.batch * b.length)
  const answers = b.targets.reduce((n, t) => n + (t === IGNORE ? 0 : 1), 0)
  const others = w.length - answers
  for (let i = 0; i < w.length; i++)
    w[i] = b.targets[i] === IGNORE ? (others > 0 ? fillerWeight / others : 0) : 1 / answers
  return w
}

/**
 * Per sample, whether each answer digit's argmax is right (in answerPositions order). The
 * earlier digits are in the input (teacher forcing), so a sample's digits all being right is
 * the same event as greedy decoding writing its values: greedy's first wrong digit is the first
 * position that fails here. `predicted` holds the argmax at positions from..length-1 of each
 * row, [batch, length - from].
 */
function answerDigitsRight(batch: NiahBatch, predicted: ArrayLike<number>, from: number): boolean[][] {
  const W = batch.length - from
  return batch.samples.map((s, b) => {
    if (s.answerPositions[0] < from)
      throw new RangeError(`niah scoring: argument 'from' expected <= ${s.answerPositions[0]}, got ${from}`)
    return s.answerPositions.map((i) => predicted[b * W + i - from] === s.tokens[i + 1])
  })
}

/** Exact match per sample: every answer digit right (see answerDigitsRight). */
export function niahExactMatch(batch: NiahBatch, predicted: ArrayLike<number>, from: number): boolean[] {
  return answerDigitsRight(batch, predicted, from).map((digits) => digits.every(Boolean))
}

/** Answer digits whose argmax is right, over the batch. */
export function niahDigitHits(batch: NiahBatch, predicted: ArrayLike<number>, from: number): number {
  return answerDigitsRight(batch, predicted, from).reduce((n, digits) => n + digits.filter(Boolean).length, 0)
}

/**
 * Questions answered exactly (all of a needle's digits right), over the batch: with one needle
 * per sample the same count as niahExactMatch's true entries; with several (multi-key,
 * multi-query) each question counts on its own.
 */
export function niahQuestionHits(batch: NiahBatch, predicted: ArrayLike<number>, from: number): number {
  return answerDigitsRight(batch, predicted, from).reduce((n, digits, b) => {
    const perQuestion = digits.length / batch.samples[b].needles.length
    for (let q = 0; q < digits.length; q += perQuestion)
      if (digits.slice(q, q + perQuestion).every(Boolean)) n++
    return n
  }, 0)
}
