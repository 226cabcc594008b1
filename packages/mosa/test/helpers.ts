import { Rng, type Tensor, tensor } from '@attnkit/core'
import { init, type MosaConfig, type MosaParams } from '../src/index.js'

/** max |a - e| / max |e|: the error normalised by the reference's scale. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY
  let scale = 0
  let err = 0
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]))
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i])
    if (!(d <= err)) err = d // NaN propagates as a failure
  }
  return err / (scale || 1)
}

export interface Problem {
  config: MosaConfig
  params: MosaParams
  x: Tensor
  xHost: Float64Array
  B: number
  T: number
}

/** Random parameters and input (normal, never zeros) on the active backend. */
export function problem(
  config: MosaConfig,
  B: number,
  T: number,
  seed = 1,
  makeX?: (rng: Rng) => Float64Array,
): Problem {
  const rng = new Rng(seed)
  const params = init(config, rng)
  const xHost = makeX ? makeX(rng) : rng.normalArray(B * T * config.dModel)
  const dtype = config.dtype ?? 'float32'
  const x = tensor(xHost, [B, T, config.dModel], dtype)
  // The values x holds (no read-back: WebGPU cannot read synchronously).
  const held = dtype === 'float32' ? Float64Array.from(Float32Array.from(xHost)) : xHost
  return { config, params, x, xHost: held, B, T }
}
