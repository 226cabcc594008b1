import { type Backend, runKernel, type Tensor } from '@attnkit/core'
import type { TpaCache } from '../cache.js'
import { fusedLanguage } from './languages.js'
import { CACHE_WRITE_KERNEL, DECODE_COMBINE_KERNEL, DECODE_PARTIAL_KERNEL } from './names.js'
import {
  cudaDecodeLayout,
  cudaMmaLayout,
  type DecodeShape,
  decodeTuning,
  planSplits,
  programmaticLaunchFits,
  wgslDecodeLayout,
} from './plan.js'

export function decodeShapeOf(cache: TpaCache): DecodeShape {
  const c = cache.config
  return {
    batch: cache.batch,
    heads: c.heads,
    headDim: c.headDim,
    kRank: c.k.rank,
    vRank: c.v.rank,
    layout: cache.layout,
    storeCap: cache.maxLen,
    tailCap: Math.max(1, cache.tailLength),
    storeLen: cache.storeLength,
    tailLen: cache.tailLength,
    dtype: c.dtype,
  }
}

/** The backend's multiprocessor (SM) count where its info reports one (the CUDA backend's details.multiprocessors). */
export function multiprocessorsOf(backend: Backend): number | undefined {
  const reported = backend.info().details?.multiprocessors
  return typeof reported === 'number' && reported > 0 ? reported : undefined
}

/** The decode kernel for a cache on its backend: its tile, and on CUDA which kernel; or why none fits. */
export function decodeKernelFor(cache: TpaCache): { tile: number; kernel?: 'fma' | 'mma' } | string {
  const s = decodeShapeOf(cache)
  if (fusedLanguage(cache.backend.name) !== 'cuda') {
    const l = wgslDecodeLayout(s)
    return typeof l === 'string' ? l : { tile: l.tile }
  }
  if (decodeTuning(cache.backend.name).tensorCores) {
    const m = cudaMmaLayout(s)
    if (typeof m !== 'string') return { tile: m.tile, kernel: 'mma' }
  }
  const l = cudaDecodeLayout(s)
  return typeof l === 'string' ? l : { tile: l.tile, kernel: 'fma' }
}

/**
 * The fused decode's launch plan for a cache as it stands: kernel, tile and split-K split, and
 * whether the launches go programmatic (CUDA tensor-core kernel, DecodeTuning.programmaticLaunch
 * where programmaticLaunchFits); or why none fits.
 */
export function decodePlanFor(cache: TpaCache):
  | {
      tile: number
      kernel?: 'fma' | 'mma'
      splits: number
      tokensPerSplit: number
      programmaticLaunch: boolean
    }
  | string {
  const choice = decodeKernelFor(cache)
  if (typeof choice === 'string') return choice
  const tuning = decodeTuning(cache.backend.name)
  const sms = multiprocessorsOf(cache.backend)
  const split = planSplits(cache.storeLength + cache.tailLength, cache.batch, choice.tile, tuning, sms)
  const c = cache.config
  const programmaticLaunch =
    choice.kernel === 'mma' &&
    tuning.programmaticLaunch &&
    programmaticLaunchFits(cache.batch, c.heads, c.headDim, sms)
  return { ...choice, ...split, programmaticLaunch }
}

/** Why the fused decode cannot take this cache on this backend, or null when it can. */
export function fusedDecodeUnsupported(cache: TpaCache): string | null {
  const k = decodeKernelFor(cache)
  return typeof k === 'string' ? k : null
}

/**
 * Factor-space decode attention with the fused kernels: q [B, h, d_h] (already rotated and
 * built from its factors) against every cached token, read in place from the store's used rows
 * and the tail. Returns [B, h, d_h] in the cache dtype.
 */
export function fusedFactorAttention(q: Tensor, cache: TpaCache): Tensor {
  const s = decodeShapeOf(cache)
  const plan = decodePlanFor(cache)
  if (typeof plan === 'string') throw new Error(`tpa fused decode: ${plan}`)
  const { splits, tokensPerSplit } = plan
  const inputs: Record<string, Tensor> = { q, store: cache.store, tail: cache.tail ?? cache.store }
  if (cache.aKConst) inputs.aKc = cache.aKConst
  if (cache.aVConst) inputs.aVc = cache.aVConst
  const scoreScale = Math.LOG2E / Math.sqrt(s.headDim) / s.kRank
  const { programmaticLaunch } = plan
  const [partO, partML] = runKernel(DECODE_PARTIAL_KERNEL, inputs, {
    shape: s,
    kernel: plan.kernel,
    splits,
    tokensPerSplit,
    scoreScale,
    programmaticLaunch,
  })
  try {
    return runKernel(
      DECODE_COMBINE_KERNEL,
      { partO, partML },
      { shape: s, splits, outScale: 1 / s.vRank, programmaticLaunch },
    )[0]
  } finally {
    partO.dispose()
    partML.dispose()
  }
}

/** A new store with rows [offset, offset + n) replaced by records [B, n, record]. */
export function runCacheWriteKernel(store: Tensor, records: Tensor, offset: number): Tensor {
  return runKernel(CACHE_WRITE_KERNEL, { store, src: records }, { offset })[0]
}
