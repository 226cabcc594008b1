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
  /** Lower-case letters in the key (default 5). */
  keyLength?: number
  /** Digits in the value (default 6). */
  valueDigits?: number
}

export interface NiahSample {
  /** length + 1 byte tokens: filler with the needle, then question and answer. */
  tokens: Uint8Array
  key: string
  value: string
  /** Index in tokens where the needle sentence starts. */
  needleAt: number
  /** Needle position as a fraction of the filler (0 = start, 1 = just before the question). */
  depth: number
  /** First input position whose target is an answer digit; answer targets are answerStart..length-1. */
  answerStart: number
}

export const needleText = (key: string, value: string): string =>
  `\nThe magic number for ${key} is ${value}.\n`
/**
 * The question repeats the needle's wording up to the value (as RULER's template does), so
 * the answer is the continuation of a context seen once before: what induction heads learn.
 */
export const questionText = (key: string): string =>
  `\nWhat is the magic number for ${key}? The magic number for ${key} is `

function randomLetters(rng: Rng, n: number): string {
  return Array.from(rng.nextUint32(n), (u) => String.fromCharCode(97 + (u % 26))).join('')
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

/** The fixed part of a sample: needle + question + answer, in tokens. */
export function niahOverhead(opts: Omit<NiahOptions, 'length'> = {}): number {
  const key = 'k'.repeat(opts.keyLength ?? 5)
  const value = '0'.repeat(opts.valueDigits ?? 6)
  return encodeBytes(needleText(key, value) + questionText(key) + value).length
}

/** One sample, drawn from `rng` (filler: a byte-token stream, e.g. Brown text). */
export function niahSample(rng: Rng, filler: Uint8Array, opts: NiahOptions): NiahSample {
  const keyLength = opts.keyLength ?? 5
  const valueDigits = opts.valueDigits ?? 6
  const overhead = niahOverhead({ keyLength, valueDigits })
  const total = opts.length + 1
  if (!Number.isInteger(opts.length) || total - overhead < 1)
    throw new RangeError(
      `niahSample: argument 'length' expected an integer >= ${overhead} (needle, question and answer take ${overhead} tokens), got ${opts.length}`,
    )
  const fillerLen = total - overhead
  if (filler.length < fillerLen)
    throw new RangeError(
      `niahSample: argument 'filler' expected at least ${fillerLen} tokens for length ${opts.length}, got ${filler.length}`,
    )
  const [u0, u1] = rng.uniformArray(2)
  const start = Math.floor(u0 * (filler.length - fillerLen + 1))
  const hay = filler.subarray(start, start + fillerLen)
  const template = encodeBytes(needleText('', '') + questionText(''))
  let key = randomLetters(rng, keyLength)
  // A key that is also a word of the filler (or of the template: 'umber') would make the
  // question ambiguous.
  while (contains(hay, encodeBytes(key)) || contains(template, encodeBytes(key)))
    key = randomLetters(rng, keyLength)
  const value = randomDigits(rng, valueDigits)
  const cut = Math.floor(u1 * (fillerLen + 1))
  const needle = encodeBytes(needleText(key, value))
  const tail = encodeBytes(questionText(key) + value)
  const tokens = new Uint8Array(total)
  tokens.set(hay.subarray(0, cut), 0)
  tokens.set(needle, cut)
  tokens.set(hay.subarray(cut), cut + needle.length)
  tokens.set(tail, total - tail.length)
  return {
    tokens,
    key,
    value,
    needleAt: cut,
    depth: fillerLen > 0 ? cut / fillerLen : 0,
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
    for (let i = s.answerStart; i < L; i++) targets[b * L + i] = s.tokens[i + 1]
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
 * Exact match per sample: every answer position's argmax equals the value's digit. The earlier
 * digits are in the input (teacher forcing), so this is the same event as greedy decoding
 * writing the whole value: greedy's first wrong digit is the first position that fails here.
 * `predicted` holds the argmax at positions from..length-1 of each row, [batch, length - from].
 */
export function niahExactMatch(batch: NiahBatch, predicted: ArrayLike<number>, from: number): boolean[] {
  const L = batch.length
  const W = L - from
  return batch.samples.map((s, b) => {
    if (s.answerStart < from)
      throw new RangeError(`niahExactMatch: argument 'from' expected <= ${s.answerStart}, got ${from}`)
    for (let i = s.answerStart; i < L; i++) if (predicted[b * W + i - from] !== s.tokens[i + 1]) return false
    return true
  })
}
