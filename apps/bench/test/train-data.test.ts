import path from 'node:path'
import { Rng } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { exportBrown, loadBrown, stripTags, stripTagsLine } from '../src/train/data/brown.js'
import { evenWindows, randomWindows } from '../src/train/data/lm.js'
import {
  IGNORE,
  needleText,
  niahBatch,
  niahDigitHits,
  niahExactMatch,
  niahLossWeights,
  niahOverhead,
  niahQuestionHits,
  niahSample,
  questionText,
} from '../src/train/data/niah.js'
import { curriculumLength } from '../src/train/tasks.js'
import { decodeBytes, encodeBytes } from '../src/train/tokenizer.js'
import { tempDir } from './helpers.js'

const text = (bytes: Uint8Array) => decodeBytes(bytes)

function count(hay: string, needle: string): number {
  let n = 0
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) n++
  return n
}

describe('Brown corpus loader', () => {
  it('strips the POS tags and rebuilds English spacing', () => {
    expect(
      stripTagsLine("\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, 1-1/2/cd miles/nns ./."),
    ).toBe('The jury said "no evidence", 1-1/2 miles.')
    expect(stripTagsLine('(/( see/vb below/rb )/) ;/. ok/uh')).toBe('(see below); ok')
    expect(stripTags('\n\n\tA/at cat/nn ./.\n\n\n\tIt/pps sat/vbd ./.\n')).toBe('A cat.\nIt sat.\n')
  })

  const corpus = loadBrown()

  it('splits by file, deterministically: every 10th file is held out', () => {
    expect(corpus.trainFiles + corpus.validationFiles).toBe(500)
    expect(corpus.validationFiles).toBe(50)
    expect(corpus.train.length).toBeGreaterThan(4_000_000)
    expect(corpus.validation.length).toBeGreaterThan(400_000)
    const train = text(corpus.train.subarray(0, 2_000_000))
    expect(train.startsWith('The Fulton County Grand Jury said Friday an investigation')).toBe(true)
    // No tag survives: tags are '/' plus lower-case letters, '$', '-' or '*' after a word.
    expect(train).not.toMatch(/[A-Za-z]\/(at|nn|vbd|in|jj|np)\b/)
    expect(loadBrown().validation).toEqual(corpus.validation)
  })

  it('round-trips through the gzipped export (for machines without node_modules)', () => {
    const file = path.join(tempDir(), 'brown.json.gz')
    const r = exportBrown(file)
    expect(r.files).toBe(500)
    expect(r.bytes).toBeLessThan(3 * 2 ** 20)
    const again = loadBrown(file)
    expect(again.train).toEqual(corpus.train)
    expect(again.validation).toEqual(corpus.validation)
  })

  it('names the argument when the corpus is missing', () => {
    expect(() => loadBrown('/nonexistent/brown')).toThrow(/argument 'data' expected an existing path/)
  })

  it('cuts next-token windows whose targets are the inputs shifted by one', () => {
    const b = randomWindows(new Rng(3), corpus.validation, 4, 32)
    for (let r = 0; r < 4; r++)
      for (let i = 0; i < 31; i++) expect(b.targets[r * 32 + i]).toBe(b.inputs[r * 32 + i + 1])
    const starts = evenWindows(corpus.validation, 10, 100)
    expect(starts).toHaveLength(10)
    expect(new Set(starts).size).toBe(10)
    expect(Math.max(...starts) + 101).toBeLessThanOrEqual(corpus.validation.length)
  })
})

describe('S-NIAH generator', () => {
  const filler = encodeBytes(
    'It was a bright cold day in April, and the clocks were striking thirteen.\n'.repeat(200),
  )

  it('places one key-value needle in the filler and asks for it at the end', () => {
    for (let i = 0; i < 40; i++) {
      const length = 150 + 7 * i
      const s = niahSample(new Rng(1).fork(i), filler, { length })
      expect(s.tokens.length).toBe(length + 1)
      const t = text(s.tokens)
      expect(s.key).toMatch(/^[A-Z]{5}$/)
      expect(s.value).toMatch(/^[0-9]{6}$/)
      expect(count(t, needleText(s.key, s.value))).toBe(1)
      expect(count(t, s.key)).toBe(2)
      expect(t.endsWith(`${questionText(s.key)}${s.value}`)).toBe(true)
      expect(text(s.tokens.subarray(s.needleAt)).startsWith(needleText(s.key, s.value))).toBe(true)
      expect(text(s.tokens.subarray(s.answerStart + 1))).toBe(s.value)
    }
  })

  it('asks for every needle of a multi-needle sample, each once', () => {
    for (let i = 0; i < 20; i++) {
      const s = niahSample(new Rng(8).fork(i), filler, { length: 600, needles: 4 })
      const t = text(s.tokens)
      expect(s.tokens.length).toBe(601)
      expect(new Set(s.needles.map((n) => n.key)).size).toBe(4)
      expect(s.answerPositions).toHaveLength(24)
      const asked = s.answerPositions.filter((_, j) => j % 6 === 0).map((p) => t.slice(p - 5, p))
      expect([...asked].sort()).toEqual(s.needles.map((n) => n.key).sort())
      for (const n of s.needles) {
        expect(count(t, needleText(n.key, n.value))).toBe(1)
        expect(text(s.tokens.subarray(n.at)).startsWith(needleText(n.key, n.value))).toBe(true)
        expect(count(t, `${questionText(n.key)}${n.value}`)).toBe(1)
      }
      // Every needle comes before every question.
      expect(Math.max(...s.needles.map((n) => n.at))).toBeLessThan(s.answerPositions[0])
    }
  })

  it('spreads the needle over the depth of the haystack and is reproducible', () => {
    const depths = Array.from(
      { length: 60 },
      (_, i) => niahSample(new Rng(2).fork(i), filler, { length: 400 }).depth,
    )
    expect(Math.min(...depths)).toBeLessThan(0.15)
    expect(Math.max(...depths)).toBeGreaterThan(0.85)
    const a = niahSample(new Rng(5), filler, { length: 300 })
    const b = niahSample(new Rng(5), filler, { length: 300 })
    expect(a.tokens).toEqual(b.tokens)
    expect(niahSample(new Rng(6), filler, { length: 300 }).tokens).not.toEqual(a.tokens)
  })

  it('puts loss only on the answer digits and scores exact matches', () => {
    const b = niahBatch(new Rng(9), filler, 3, { length: 200 })
    const from = 200 - 6
    for (let r = 0; r < 3; r++) {
      const targets = [...b.targets.subarray(r * 200, (r + 1) * 200)]
      expect(targets.slice(0, from).every((t) => t === IGNORE)).toBe(true)
      expect(decodeBytes(targets.slice(from))).toBe(b.samples[r].value)
    }
    const perfect = new Int32Array(3 * 6)
    for (let r = 0; r < 3; r++) perfect.set(encodeBytes(b.samples[r].value), r * 6)
    expect(niahExactMatch(b, perfect, from)).toEqual([true, true, true])
    const wrong = perfect.slice()
    wrong[6 + 5] = wrong[6 + 5] === 48 ? 49 : 48 // last digit of row 1
    expect(niahExactMatch(b, wrong, from)).toEqual([true, false, true])
    expect(niahDigitHits(b, perfect, from)).toBe(18)
    expect(niahDigitHits(b, wrong, from)).toBe(17)
    expect(niahQuestionHits(b, perfect, from)).toBe(3)
    expect(niahQuestionHits(b, wrong, from)).toBe(2)
  })

  it('scores each question of a multi-needle sample on its own', () => {
    const b = niahBatch(new Rng(12), filler, 2, { length: 600, needles: 3 })
    const from = Math.min(...b.samples.map((s) => s.answerPositions[0]))
    const W = 600 - from
    const perfect = new Int32Array(2 * W)
    b.samples.forEach((s, r) => {
      for (const i of s.answerPositions) perfect[r * W + i - from] = s.tokens[i + 1]
    })
    expect(niahQuestionHits(b, perfect, from)).toBe(6)
    // One wrong digit in the second question of sample 1, two in the first of sample 0.
    const wrong = perfect.slice()
    const flip = (r: number, i: number) => {
      wrong[r * W + i - from] = wrong[r * W + i - from] === 48 ? 49 : 48
    }
    flip(1, b.samples[1].answerPositions[6 + 2])
    flip(0, b.samples[0].answerPositions[0])
    flip(0, b.samples[0].answerPositions[5])
    expect(niahQuestionHits(b, wrong, from)).toBe(4)
    expect(niahDigitHits(b, wrong, from)).toBe(36 - 3)
  })

  it('weights the answer digits and the haystack separately', () => {
    const b = niahBatch(new Rng(4), filler, 2, { length: 180 })
    const w = niahLossWeights(b, 0.25)
    let answer = 0
    let rest = 0
    w.forEach((x, i) => {
      if (b.targets[i] === IGNORE) rest += x
      else answer += x
    })
    expect(answer).toBeCloseTo(1, 6)
    expect(rest).toBeCloseTo(0.25, 6)
    expect(b.nextTokens.subarray(0, 179)).toEqual(b.inputs.subarray(1, 180))
    expect(niahLossWeights(b, 0).filter((x, i) => b.targets[i] === IGNORE && x !== 0)).toHaveLength(0)
  })

  it('rejects lengths too short for the needle and question', () => {
    const min = niahOverhead()
    expect(() => niahSample(new Rng(0), filler, { length: min - 2 })).toThrow(
      /argument 'length' expected an integer >=/,
    )
    expect(() => niahSample(new Rng(0), filler.subarray(0, 50), { length: 400 })).toThrow(/argument 'filler'/)
  })
})

describe('S-NIAH length curriculum', () => {
  const lengths = [1024, 128, 512, 256]
  const drawn = (step: number, steps: number, fraction: number) => {
    const rng = new Rng(3)
    return new Set(
      Array.from({ length: 400 }, (_, i) =>
        curriculumLength(lengths, step, steps, fraction, rng.fork(i).uniformArray(2)),
      ),
    )
  }

  it('opens the lengths shortest first, evenly over the ramp, then keeps them all', () => {
    // Ramp 0.5 x 1000 = 500 steps over 3 openings: a new length at steps 167, 334 and 500.
    expect([...drawn(0, 1000, 0.5)]).toEqual([128])
    expect([...drawn(166, 1000, 0.5)].sort((a, b) => a - b)).toEqual([128])
    expect([...drawn(167, 1000, 0.5)].sort((a, b) => a - b)).toEqual([128, 256])
    expect([...drawn(400, 1000, 0.5)].sort((a, b) => a - b)).toEqual([128, 256, 512])
    expect([...drawn(500, 1000, 0.5)].sort((a, b) => a - b)).toEqual([128, 256, 512, 1024])
    expect([...drawn(999, 1000, 0.5)].sort((a, b) => a - b)).toEqual([128, 256, 512, 1024])
  })

  it('takes the longest open length half of the time', () => {
    const rng = new Rng(4)
    const picks = Array.from({ length: 4000 }, (_, i) =>
      curriculumLength(lengths, 700, 1000, 0.5, rng.fork(i).uniformArray(2)),
    )
    const longest = picks.filter((L) => L === 1024).length / picks.length
    // 1/2 + 1/2 x 1/4 = 0.625, within sampling noise.
    expect(longest).toBeGreaterThan(0.59)
    expect(longest).toBeLessThan(0.66)
  })

  it('without a curriculum, draws every length uniformly from the first step', () => {
    expect([...drawn(0, 1000, 0)].sort((a, b) => a - b)).toEqual([128, 256, 512, 1024])
  })
})
