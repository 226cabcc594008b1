import { argmax, type DType, flattenTree, tidy } from '@attnkit/core'
import { castTree, type Model, type ModelParams, tokensTensor } from './model.js'

export interface DecodeMemoryPoint {
  /** Tokens in the decode state. */
  tokens: number
  /** Bytes of every layer's decode state, per sequence. */
  bytesPerSequence: number
}

export interface DecodeMemory {
  /** 'step': token by token through each layer's decode path; 'prefill': each length at once. */
  path: 'step' | 'prefill'
  batch: number
  dtype: DType
  points: DecodeMemoryPoint[]
  /** Step path with answer positions given: exact match of the answer through the decode path. */
  answers?: { correct: number; samples: number }
  seconds: number
  /** Set when the time cap stopped the pass before the last snapshot. */
  stoppedEarly?: string
}

export interface DecodeMemoryOptions {
  /** Token rows int32 [batch, length] (row-major), e.g. S-NIAH prompts. */
  tokens: Int32Array
  batch: number
  length: number
  /** Measure after this many tokens (each <= length). */
  snapshots: number[]
  dtype: DType
  /** Step path: answers are checked at positions from..length-1 against targets (IGNORE elsewhere). */
  answer?: { from: number; targets: Int32Array }
  maxSeconds?: number
}

/**
 * Decode memory of a trained model, measured: the bytes its layers' decode states hold after
 * n tokens, for each n in snapshots. Models whose every layer can decode token by token are
 * stepped through the tokens once (snapshots on the way); others are prefilled at each length.
 */
export async function measureDecodeMemory(
  model: Model,
  masters: ModelParams,
  o: DecodeMemoryOptions,
): Promise<DecodeMemory> {
  const support = model.decodeSupport()
  if (!support.step && !support.prefill)
    throw new Error(`decode memory: no decode path for ${support.missing.join(', ')}`)
  const started = performance.now()
  const snapshots = [...new Set(o.snapshots)].sort((a, b) => a - b)
  if (snapshots.some((n) => !Number.isInteger(n) || n < 1 || n > o.length))
    throw new Error(
      `decode memory: argument 'snapshots' expected integers in [1, ${o.length}], got ${snapshots.join(', ')}`,
    )
  const p = tidy(() => castTree(masters, o.dtype))
  const points: DecodeMemoryPoint[] = []
  const column = (t: number) => {
    const col = new Int32Array(o.batch)
    for (let b = 0; b < o.batch; b++) col[b] = o.tokens[b * o.length + t]
    return tokensTensor(col, o.batch, 1)
  }
  try {
    if (!support.step) {
      for (const n of snapshots) {
        const rows = new Int32Array(o.batch * n)
        for (let b = 0; b < o.batch; b++) rows.set(o.tokens.subarray(b * o.length, b * o.length + n), b * n)
        const cache = model.createCache(o.batch, n, o.dtype)
        const input = tokensTensor(rows, o.batch, n)
        try {
          const h = model.prefill(p, cache, input)
          await h.data()
          h.dispose()
          points.push({ tokens: n, bytesPerSequence: cache.bytes() / o.batch })
        } finally {
          input.dispose()
          cache.dispose()
        }
      }
      return {
        path: 'prefill',
        batch: o.batch,
        dtype: o.dtype,
        points,
        seconds: (performance.now() - started) / 1e3,
      }
    }
    const last = snapshots[snapshots.length - 1]
    const cache = model.createCache(o.batch, last, o.dtype)
    const ok = new Array<boolean>(o.batch).fill(true)
    let stoppedEarly: string | undefined
    try {
      for (let t = 0; t < last; t++) {
        const input = column(t)
        const h = model.step(p, cache, input)
        input.dispose()
        if (o.answer && t >= o.answer.from) {
          const pred = tidy(() => argmax(model.logits(p, h), -1))
          const got = await pred.data()
          pred.dispose()
          for (let b = 0; b < o.batch; b++) {
            const want = o.answer.targets[b * o.length + t]
            if (want >= 0 && got[b] !== want) ok[b] = false
          }
        }
        if (snapshots.includes(t + 1)) {
          await h.data()
          points.push({ tokens: t + 1, bytesPerSequence: cache.bytes() / o.batch })
        }
        h.dispose()
        const elapsed = (performance.now() - started) / 1e3
        if (o.maxSeconds && elapsed > o.maxSeconds && t + 1 < last) {
          stoppedEarly = `time cap of ${o.maxSeconds}s reached after ${t + 1} of ${last} tokens`
          break
        }
      }
    } finally {
      cache.dispose()
    }
    const answered = o.answer && !stoppedEarly && last === o.length
    return {
      path: 'step',
      batch: o.batch,
      dtype: o.dtype,
      points,
      answers: answered ? { correct: ok.filter(Boolean).length, samples: o.batch } : undefined,
      seconds: (performance.now() - started) / 1e3,
      stoppedEarly,
    }
  } finally {
    // castTree hands back the masters themselves where no cast was needed (float32).
    const own = new Set(flattenTree(masters))
    for (const t of flattenTree(p)) if (!own.has(t)) t.dispose()
  }
}
