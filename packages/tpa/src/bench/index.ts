/**
 * @attnkit/tpa/bench: timing helpers for the TPA decode path and its baselines, on whatever
 * backend is active (the shared bench app and bench/h100.ts call these). Every function
 * creates, times and frees its own tensors; timings come from the backend's device timers when
 * it has them (`source` says which).
 */
import {
  add,
  attention,
  type Backend,
  byteSize,
  concat,
  type DType,
  dispose,
  getBackend,
  hasKernel,
  Rng,
  runKernel,
  slice,
  type Tensor,
  tensor,
} from '@attnkit/core'
import { createCache, type TpaCache } from '../cache.js'
import { type ResolvedTpaConfig, resolveConfig, type TpaConfig } from '../config.js'
import { cost } from '../cost.js'
import { decode, factorAttention } from '../decode.js'
import { forward } from '../forward.js'
import type { Impl } from '../impl.js'
import { decodePlanFor } from '../kernels/fused.js'
import { COPY_KERNEL, DECODE_PARTIAL_KERNEL, DEVICE_DELAY_KERNEL } from '../kernels/names.js'
import { ensureKernelsRegistered } from '../kernels/register.js'
import { init } from '../params.js'

export interface Timing {
  /** Milliseconds per call, device time when available. */
  ms: number
  source: 'device' | 'host'
  iterations: number
}

/** Times `iterations` calls of `step` (after `warmup` untimed ones), one device timing region. */
export async function timeSteps(
  backend: Backend,
  step: () => Tensor | undefined,
  iterations = 20,
  warmup = 3,
): Promise<Timing> {
  for (let i = 0; i < warmup; i++) step()?.dispose()
  await backend.synchronize()
  const t = await backend.time(() => {
    for (let i = 0; i < iterations; i++) step()?.dispose()
  })
  return { ms: t.deviceMs / iterations, source: t.source, iterations }
}

/** A timing of calls queued ahead of the GPU (timeQueuedAhead): the GPU's own time per call. */
export interface KernelTiming extends Timing {
  /**
   * Every timed call was queued before the delay kernel released the GPU, so the calls ran back
   * to back and the time is the GPU's alone; false: the host still bounded it (as in Timing).
   */
  hostHidden: boolean
  /** Host milliseconds to issue one call (an untimed pass before). */
  hostIssueMs: number
  /** Distinct inputs the calls cycle through. */
  rotation: number
}

/**
 * Bytes the inputs of a kernel timing cycle through: several times the largest L2 cache in use
 * (50 MiB on an H100), so every call reads its inputs from device memory as a decode step does
 * (between two steps of one layer, every other layer's cache and weights pass through L2).
 */
export const L2_DEFEAT_BYTES = 256 * 2 ** 20
/** At most this many copies of small inputs (a 4K-token cache at batch 1 is 2.6 MB). */
const MAX_ROTATION = 64

/** How many copies of `bytes` of inputs make up L2_DEFEAT_BYTES. */
export function rotationCount(bytes: number): number {
  return Math.max(1, Math.min(MAX_ROTATION, Math.ceil(L2_DEFEAT_BYTES / Math.max(1, bytes))))
}

/**
 * The GPU's own time per call, where the backend has the delay kernel (CUDA): a pass measures
 * how long the host takes to issue a call, a delay kernel then holds the GPU for twice as long
 * as issuing all the timed calls takes, the calls are queued behind it between two events, and
 * so run back to back with no host gaps (nvbench's blocking-kernel method). `steps` are called
 * in turn (call i runs steps[i % n]), so inputs rotated over several copies are read from
 * memory, not L2. Null where the backend has no delay kernel.
 */
export async function timeQueuedAhead(
  backend: Backend,
  steps: (() => Tensor | undefined)[],
  iterations = 20,
  warmup = 3,
): Promise<KernelTiming | null> {
  if (!hasKernel(DEVICE_DELAY_KERNEL, backend.name) || !backend.runProgram) return null
  const call = (i: number) => steps[i % steps.length]()?.dispose()
  for (let i = 0; i < Math.max(warmup, steps.length); i++) call(i)
  await backend.synchronize()
  const issueStart = performance.now()
  for (let i = 0; i < iterations; i++) call(i)
  const hostIssueMs = (performance.now() - issueStart) / iterations
  await backend.synchronize()
  const micros = Math.min(500_000, Math.ceil(2000 * iterations * hostIssueMs) + 1000)
  const queuedAt = performance.now()
  const delay = runKernel(DEVICE_DELAY_KERNEL, {}, { micros })[0]
  let issuedAfterMs = Number.POSITIVE_INFINITY
  const t = await backend.time(() => {
    for (let i = 0; i < iterations; i++) call(i)
    issuedAfterMs = performance.now() - queuedAt
  })
  delay.dispose()
  return {
    ms: t.deviceMs / iterations,
    source: t.source,
    iterations,
    hostHidden: issuedAfterMs < micros / 1000,
    hostIssueMs,
    rotation: steps.length,
  }
}

/** Random normal values (never zeros) of `shape`, generated on the host in blocks and tiled along `axis`. */
function tiledNormal(shape: number[], axis: number, dtype: DType, rng: Rng, block = 1024): Tensor {
  const n = shape[axis]
  const b = Math.min(block, n)
  const blockShape = shape.map((d, i) => (i === axis ? b : d))
  const piece = rng.normal(blockShape, 0, 1, { dtype })
  if (b === n) return piece
  const parts: Tensor[] = []
  for (let done = 0; done < n; done += b) parts.push(piece)
  const full = concat(parts, axis)
  if (full.shape[axis] === n) {
    piece.dispose()
    return full
  }
  const out = slice(
    full,
    shape.map(() => 0),
    shape,
  )
  dispose([piece, full])
  return out
}

/**
 * A cache holding `context` random tokens (store plus a partly filled tail, as in a running
 * decode); `spare` more tokens of capacity.
 */
export function filledCache(
  config: TpaConfig | ResolvedTpaConfig,
  o: { batch: number; context: number; spare?: number; tailTokens?: number; seed?: number },
): TpaCache {
  const c = resolveConfig(config)
  const tailTokens = Math.min(o.tailTokens ?? 32, o.context)
  const cache = createCache(c, { batch: o.batch, maxLen: o.context + (o.spare ?? 0), tailCapacity: 64 })
  const rng = new Rng(o.seed ?? 1)
  const storeTokens = o.context - tailTokens
  try {
    const block = Math.max(64, Math.min(2048, storeTokens))
    if (storeTokens > 0) {
      const piece = rng.normal([o.batch, Math.min(block, storeTokens), cache.layout.size], 0, 1, {
        dtype: c.dtype,
      })
      for (let done = 0; done < storeTokens; ) {
        const n = Math.min(block, storeTokens - done)
        if (n === piece.shape[1]) cache.append(piece)
        else {
          const part = slice(piece, [0, 0, 0], [o.batch, n, cache.layout.size])
          cache.append(part)
          part.dispose()
        }
        cache.flush()
        done += n
      }
      piece.dispose()
    }
    if (tailTokens > 0) {
      const tail = rng.normal([o.batch, tailTokens, cache.layout.size], 0, 1, { dtype: c.dtype })
      cache.append(tail)
      tail.dispose()
    }
  } catch (e) {
    cache.dispose()
    throw e
  }
  return cache
}

export interface DecodeAttentionResult {
  what: string
  backend: string
  variant: string
  dtype: DType
  batch: number
  context: number
  impl: 'fused' | 'portable' | 'flash'
  /** CUDA fused decode: 'fma' (CUDA cores) or 'mma' (tensor cores). */
  kernel?: string
  /** Fused decode: the split-K plan (splits per batch row, tokens per split). */
  splits?: number
  tokensPerSplit?: number
  /** Fused decode: whether its launches went programmatic (DecodeTuning.programmaticLaunch). */
  programmaticLaunch?: boolean
  /**
   * Calls timed back to back as the host issues them, on one cache: where the host issues
   * slower than the GPU runs (small caches), this is the host's launch rate, not the kernels'.
   */
  timing: Timing
  /** The GPU's own time per call, the calls queued ahead and the inputs rotated (timeQueuedAhead); null where the backend cannot. */
  kernelTiming: KernelTiming | null
  /** KV-cache bytes one call reads (the whole cache once). */
  cacheBytes: number
  /** cacheBytes / timing. */
  bytesPerSecond: number
  /** cacheBytes / kernelTiming: the rate the kernels read the cache at. */
  kernelBytesPerSecond: number | null
}

/**
 * Caches of `context` random tokens for a decode timing: the first for the as-issued timing,
 * and as many in all as rotationCount gives where the backend can queue calls ahead (CUDA).
 */
export function decodeBenchCaches(
  config: TpaConfig | ResolvedTpaConfig,
  o: { batch: number; context: number },
): TpaCache[] {
  const c = resolveConfig(config)
  const backend = getBackend()
  ensureKernelsRegistered()
  const bytes = cost(c, { seqLen: 1 }).kvCache.bytesPerToken.tpa * o.batch * o.context
  const n = hasKernel(DEVICE_DELAY_KERNEL, backend.name) ? rotationCount(bytes) : 1
  const caches: TpaCache[] = []
  try {
    for (let i = 0; i < n; i++)
      caches.push(filledCache(c, { batch: o.batch, context: o.context, seed: 1 + i }))
  } catch (e) {
    for (const cache of caches) cache.dispose()
    throw e
  }
  return caches
}

/**
 * TPA's factor-space decode attention alone (one query token over the cache). `caches` (from
 * decodeBenchCaches, left to the caller) lets several timings share them; else they are made
 * here and freed.
 */
export async function benchTpaDecodeAttention(o: {
  config: TpaConfig
  batch: number
  context: number
  impl?: Impl
  iterations?: number
  caches?: TpaCache[]
}): Promise<DecodeAttentionResult> {
  const c = resolveConfig(o.config)
  const backend = getBackend()
  ensureKernelsRegistered()
  const impl = o.impl ?? 'auto'
  const caches = o.caches ?? decodeBenchCaches(c, { batch: o.batch, context: o.context })
  const cache = caches[0]
  const q = new Rng(2).normal([o.batch, c.heads, c.headDim], 0, 1, { dtype: c.dtype })
  try {
    const iterations = o.iterations ?? 20
    const timing = await timeSteps(backend, () => factorAttention(q, cache, { impl }), iterations)
    const kernelTiming = await timeQueuedAhead(
      backend,
      caches.map((k) => () => factorAttention(q, k, { impl })),
      iterations,
    )
    const fused = impl === 'fused' || (impl === 'auto' && hasKernel(DECODE_PARTIAL_KERNEL, backend.name))
    const plan = fused ? decodePlanFor(cache) : undefined
    const planned = typeof plan === 'object' ? plan : undefined
    const cacheBytes = cache.bytes().used
    return {
      what: 'tpa decode attention',
      backend: backend.name,
      variant: c.variant,
      dtype: c.dtype,
      batch: o.batch,
      context: o.context,
      impl: fused ? 'fused' : 'portable',
      kernel: planned?.kernel,
      splits: planned?.splits,
      tokensPerSplit: planned?.tokensPerSplit,
      programmaticLaunch: planned?.programmaticLaunch,
      timing,
      kernelTiming,
      cacheBytes,
      bytesPerSecond: cacheBytes / (timing.ms / 1e3),
      kernelBytesPerSecond: kernelTiming ? cacheBytes / (kernelTiming.ms / 1e3) : null,
    }
  } finally {
    q.dispose()
    if (!o.caches) for (const k of caches) k.dispose()
  }
}

/** The baseline: one query token against a plain K/V cache with the backend's own fused attention. */
export async function benchDenseDecodeAttention(o: {
  heads: number
  kvHeads: number
  headDim: number
  dtype: DType
  batch: number
  context: number
  iterations?: number
}): Promise<DecodeAttentionResult> {
  const backend = getBackend()
  const rng = new Rng(3)
  const shape = [o.batch, o.kvHeads, o.context, o.headDim]
  const cacheBytes = 2 * o.batch * o.kvHeads * o.context * o.headDim * byteSize(o.dtype)
  const copies = hasKernel(DEVICE_DELAY_KERNEL, backend.name) ? rotationCount(cacheBytes) : 1
  const kv: [Tensor, Tensor][] = []
  const q = rng.normal([o.batch, o.heads, 1, o.headDim], 0, 1, { dtype: o.dtype })
  try {
    for (let i = 0; i < copies; i++)
      kv.push([tiledNormal(shape, 2, o.dtype, rng), tiledNormal(shape, 2, o.dtype, rng)])
    const [k, v] = kv[0]
    const iterations = o.iterations ?? 20
    const timing = await timeSteps(backend, () => attention(q, k, v, { causal: true }), iterations)
    const kernelTiming = await timeQueuedAhead(
      backend,
      kv.map(
        ([kk, vv]) =>
          () =>
            attention(q, kk, vv, { causal: true }),
      ),
      iterations,
    )
    return {
      what: o.kvHeads === o.heads ? 'mha decode attention' : `gqa(${o.kvHeads}) decode attention`,
      backend: backend.name,
      variant: o.kvHeads === o.heads ? 'mha' : o.kvHeads === 1 ? 'mqa' : 'gqa',
      dtype: o.dtype,
      batch: o.batch,
      context: o.context,
      impl: 'flash',
      timing,
      kernelTiming,
      cacheBytes,
      bytesPerSecond: cacheBytes / (timing.ms / 1e3),
      kernelBytesPerSecond: kernelTiming ? cacheBytes / (kernelTiming.ms / 1e3) : null,
    }
  } finally {
    dispose([q, ...kv.flat()])
  }
}

export interface DecodeStepResult {
  what: string
  backend: string
  variant: string
  dtype: DType
  batch: number
  context: number
  timing: Timing
}

/**
 * A whole TPA decode step (projections, RoPE, cache append with its amortised flushes,
 * factor-space attention, output projection) at a context of about `context` tokens.
 */
export async function benchTpaDecodeStep(o: {
  config: TpaConfig
  batch: number
  context: number
  impl?: Impl
  iterations?: number
}): Promise<DecodeStepResult> {
  const c = resolveConfig(o.config)
  const backend = getBackend()
  const iterations = o.iterations ?? 20
  const warmup = 3
  const params = init(c, new Rng(4))
  const cache = filledCache(c, { batch: o.batch, context: o.context, spare: iterations + warmup })
  const xt = new Rng(5).normal([o.batch, c.dModel], 0, 1, { dtype: c.dtype })
  try {
    const timing = await timeSteps(
      backend,
      () => decode(params, cache, xt, { impl: o.impl }),
      iterations,
      warmup,
    )
    return {
      what: 'tpa decode step',
      backend: backend.name,
      variant: c.variant,
      dtype: c.dtype,
      batch: o.batch,
      context: o.context,
      timing,
    }
  } finally {
    dispose([params, xt])
    cache.dispose()
  }
}

/** The layer's forward over `seqLen` tokens (prefill without a cache). */
export async function benchTpaPrefill(o: {
  config: TpaConfig
  batch: number
  seqLen: number
  iterations?: number
}): Promise<DecodeStepResult & { flopsPerSecond: number }> {
  const c = resolveConfig(o.config)
  const backend = getBackend()
  const params = init(c, new Rng(6))
  const x = new Rng(7).normal([o.batch, o.seqLen, c.dModel], 0, 1, { dtype: c.dtype })
  try {
    const timing = await timeSteps(backend, () => forward(params, x), o.iterations ?? 5, 1)
    const flops = cost(c, { seqLen: o.seqLen, batch: o.batch }).forward.flops
    return {
      what: 'tpa prefill (forward)',
      backend: backend.name,
      variant: c.variant,
      dtype: c.dtype,
      batch: o.batch,
      context: o.seqLen,
      timing,
      flopsPerSecond: flops / (timing.ms / 1e3),
    }
  } finally {
    dispose([params, x])
  }
}

/**
 * Device-to-device copy bandwidth, counting the bytes read and written: the package's copy
 * kernel when the backend has it, and a core elementwise op (x + 0) for comparison.
 */
export async function measureCopyBandwidth(o: { bytes?: number; iterations?: number } = {}): Promise<{
  kernel: { bytesPerSecond: number; timing: Timing } | null
  coreAdd: { bytesPerSecond: number; timing: Timing }
  bytes: number
}> {
  const backend = getBackend()
  ensureKernelsRegistered()
  const bytes = Math.floor((o.bytes ?? 1 << 30) / 16) * 16
  const n = bytes / 4
  const x = tensor(new Float32Array(n).fill(1.5), [n], 'float32')
  const zero = tensor([0], [1], 'float32')
  try {
    const iterations = o.iterations ?? 10
    let kernel: { bytesPerSecond: number; timing: Timing } | null = null
    if (hasKernel(COPY_KERNEL, backend.name) && backend.runProgram) {
      const timing = await timeSteps(backend, () => runKernel(COPY_KERNEL, { x }, {})[0], iterations)
      kernel = { bytesPerSecond: (2 * bytes) / (timing.ms / 1e3), timing }
    }
    const timing = await timeSteps(backend, () => add(x, zero), iterations)
    return { kernel, coreAdd: { bytesPerSecond: (2 * bytes) / (timing.ms / 1e3), timing }, bytes }
  } finally {
    dispose([x, zero])
  }
}

/** KV-cache bytes per token per layer for a set of configs (from cost()). */
export function kvCacheTable(
  configs: { name: string; config: TpaConfig }[],
): { name: string; valuesPerToken: number; bytesPerToken: number; vsMha: number }[] {
  return configs.map(({ name, config }) => {
    const k = cost(config, { seqLen: 1 }).kvCache
    return { name, valuesPerToken: k.valuesPerToken.tpa, bytesPerToken: k.bytesPerToken.tpa, vsMha: k.ratio }
  })
}
