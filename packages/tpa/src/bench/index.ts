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
import { decodeKernelFor } from '../kernels/fused.js'
import { COPY_KERNEL, DECODE_PARTIAL_KERNEL } from '../kernels/names.js'
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
  timing: Timing
  /** KV-cache bytes one call reads (the whole cache once). */
  cacheBytes: number
  /** cacheBytes / time. */
  bytesPerSecond: number
}

/** TPA's factor-space decode attention alone (one query token over the cache). */
export async function benchTpaDecodeAttention(o: {
  config: TpaConfig
  batch: number
  context: number
  impl?: Impl
  iterations?: number
}): Promise<DecodeAttentionResult> {
  const c = resolveConfig(o.config)
  const backend = getBackend()
  ensureKernelsRegistered()
  const impl = o.impl ?? 'auto'
  const cache = filledCache(c, { batch: o.batch, context: o.context })
  const q = new Rng(2).normal([o.batch, c.heads, c.headDim], 0, 1, { dtype: c.dtype })
  try {
    const timing = await timeSteps(backend, () => factorAttention(q, cache, { impl }), o.iterations ?? 20)
    const fused = impl === 'fused' || (impl === 'auto' && hasKernel(DECODE_PARTIAL_KERNEL, backend.name))
    const choice = fused ? decodeKernelFor(cache) : undefined
    const cacheBytes = cache.bytes().used
    return {
      what: 'tpa decode attention',
      backend: backend.name,
      variant: c.variant,
      dtype: c.dtype,
      batch: o.batch,
      context: o.context,
      impl: fused ? 'fused' : 'portable',
      kernel: typeof choice === 'object' ? choice.kernel : undefined,
      timing,
      cacheBytes,
      bytesPerSecond: cacheBytes / (timing.ms / 1e3),
    }
  } finally {
    q.dispose()
    cache.dispose()
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
  const k = tiledNormal(shape, 2, o.dtype, rng)
  const v = tiledNormal(shape, 2, o.dtype, rng)
  const q = rng.normal([o.batch, o.heads, 1, o.headDim], 0, 1, { dtype: o.dtype })
  try {
    const timing = await timeSteps(backend, () => attention(q, k, v, { causal: true }), o.iterations ?? 20)
    const cacheBytes = 2 * o.batch * o.kvHeads * o.context * o.headDim * byteSize(o.dtype)
    return {
      what: o.kvHeads === o.heads ? 'mha decode attention' : `gqa(${o.kvHeads}) decode attention`,
      backend: backend.name,
      variant: o.kvHeads === o.heads ? 'mha' : o.kvHeads === 1 ? 'mqa' : 'gqa',
      dtype: o.dtype,
      batch: o.batch,
      context: o.context,
      impl: 'flash',
      timing,
      cacheBytes,
      bytesPerSecond: cacheBytes / (timing.ms / 1e3),
    }
  } finally {
    dispose([q, k, v])
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
