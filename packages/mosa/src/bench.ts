import { dispose, memory, resetPeakMemory, sum, type Tensor, valueAndGrad } from '@attnkit/core'
import { forward, type MosaPath } from './forward.js'
import type { MosaParams } from './params.js'

export interface TimingOptions {
  path?: MosaPath
  /** Also run the backward pass (gradients of sum(y) w.r.t. every parameter and x). Default true. */
  backward?: boolean
  warmup?: number
  iters?: number
}

export interface TimingResult {
  /** Median milliseconds per iteration (device timers where the backend has them). */
  ms: number
  /** Every iteration's milliseconds. */
  samples: number[]
  source: 'device' | 'host'
  /** Peak bytes the backend held during one iteration, above what was live before it. */
  peakBytes: number
  path: MosaPath
}

function step(params: MosaParams, x: Tensor, path: MosaPath, backward: boolean): void {
  if (!backward) {
    forward(params, x, { path }).dispose()
    return
  }
  const { value, grads } = valueAndGrad((p: { params: MosaParams; x: Tensor }) =>
    sum(forward(p.params, p.x, { path })),
  )({
    params,
    x,
  })
  dispose([value, grads])
}

/**
 * Times the layer's forward (and backward) on the backend x lives on: warm-up runs, then the
 * median of `iters` runs, each measured with the backend's timer (CUDA events, WebGPU timestamp
 * queries, host clock elsewhere). Used by the package's H100 bench and by apps/bench.
 */
export async function timeLayer(
  params: MosaParams,
  x: Tensor,
  opts: TimingOptions = {},
): Promise<TimingResult> {
  const path = opts.path ?? 'auto'
  const backward = opts.backward ?? true
  const backend = x.backend
  for (let i = 0; i < (opts.warmup ?? 2); i++) step(params, x, path, backward)
  await backend.synchronize()
  const before = memory(backend.name).liveBytes
  resetPeakMemory(backend.name)
  step(params, x, path, backward)
  await backend.synchronize()
  const peakBytes = memory(backend.name).peakBytes - before
  const samples: number[] = []
  let source: 'device' | 'host' = 'host'
  for (let i = 0; i < (opts.iters ?? 5); i++) {
    const t = await backend.time(() => step(params, x, path, backward))
    samples.push(t.deviceMs)
    source = t.source
  }
  const sorted = [...samples].sort((a, b) => a - b)
  return { ms: sorted[Math.floor(sorted.length / 2)], samples, source, peakBytes, path }
}
