import type { Rng } from '@attnkit/core'

/** Next-token batches from a token stream: inputs [batch, length] and targets shifted by one. */
export interface LmBatch {
  inputs: Int32Array
  targets: Int32Array
  batch: number
  length: number
}

function window(stream: Uint8Array, start: number, length: number, out: LmBatch, row: number): void {
  const o = row * length
  for (let i = 0; i < length; i++) {
    out.inputs[o + i] = stream[start + i]
    out.targets[o + i] = stream[start + i + 1]
  }
}

function checkStream(op: string, stream: Uint8Array, length: number): void {
  if (stream.length < length + 1)
    throw new RangeError(
      `${op}: argument 'stream' expected at least length + 1 = ${length + 1} tokens, got ${stream.length}`,
    )
}

/** Windows at random offsets drawn from rng (a pure function of the rng's key and stream). */
export function randomWindows(rng: Rng, stream: Uint8Array, batch: number, length: number): LmBatch {
  checkStream('randomWindows', stream, length)
  const out: LmBatch = {
    inputs: new Int32Array(batch * length),
    targets: new Int32Array(batch * length),
    batch,
    length,
  }
  const u = rng.uniformArray(batch)
  for (let b = 0; b < batch; b++) window(stream, Math.floor(u[b] * (stream.length - length)), length, out, b)
  return out
}

/**
 * Evenly spaced, non-overlapping windows covering up to `count` x length tokens of the stream
 * (the same every time: validation batches).
 */
export function evenWindows(stream: Uint8Array, count: number, length: number): number[] {
  checkStream('evenWindows', stream, length)
  const fit = Math.floor((stream.length - 1) / length)
  const n = Math.min(count, fit)
  const stride = Math.floor(fit / n) * length
  return Array.from({ length: n }, (_, i) => i * stride)
}

export function windowsAt(stream: Uint8Array, starts: readonly number[], length: number): LmBatch {
  const out: LmBatch = {
    inputs: new Int32Array(starts.length * length),
    targets: new Int32Array(starts.length * length),
    batch: starts.length,
    length,
  }
  starts.forEach((s, b) => {
    window(stream, s, length, out, b)
  })
  return out
}
