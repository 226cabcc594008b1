import type { Backend, DeviceTiming } from '@attnkit/core'

export interface KernelTiming {
  /** Median device time of one call of `fn`, in milliseconds. */
  medianMs: number
  /** Fastest call. */
  minMs: number
  /** Every timed sample (one per repetition, each averaged over `inner` calls). */
  samplesMs: number[]
  /** 'device' when timestamp queries measured the GPU, 'host' otherwise. */
  source: DeviceTiming['source']
}

export interface TimeKernelOptions {
  /** Untimed calls first (pipeline compilation, pool warm-up). Default 2. */
  warmup?: number
  /** Timed repetitions. Default 5. */
  repetitions?: number
  /** Calls per repetition, averaged (amortises launch gaps and timer resolution). Default 5. */
  inner?: number
}

/**
 * Times `fn` (which launches device work and returns what it created, to be disposed) on a
 * backend: warm-up calls, then repetitions of `inner` calls each timed by backend.time(),
 * which uses timestamp queries on WebGPU when the adapter has them. For benchmarks.
 */
export async function timeKernel(
  backend: Backend,
  fn: () => { dispose(): void } | { dispose(): void }[],
  opts: TimeKernelOptions = {},
): Promise<KernelTiming> {
  const warmup = opts.warmup ?? 2
  const repetitions = opts.repetitions ?? 5
  const inner = opts.inner ?? 5
  const release = (r: { dispose(): void } | { dispose(): void }[]) => {
    for (const t of Array.isArray(r) ? r : [r]) t.dispose()
  }
  for (let i = 0; i < warmup; i++) release(fn())
  await backend.synchronize()
  const samples: number[] = []
  let source: DeviceTiming['source'] = 'device'
  for (let r = 0; r < repetitions; r++) {
    const made: ({ dispose(): void } | { dispose(): void }[])[] = []
    const t = await backend.time(() => {
      for (let i = 0; i < inner; i++) made.push(fn())
    })
    for (const m of made) release(m)
    samples.push(t.deviceMs / inner)
    if (t.source === 'host') source = 'host'
  }
  const sorted = [...samples].sort((a, b) => a - b)
  return { medianMs: sorted[Math.floor(sorted.length / 2)], minMs: sorted[0], samplesMs: samples, source }
}
