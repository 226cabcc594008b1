import { cast, hasKernel, runKernel, type Tensor, tidy } from '@attnkit/core'
import type { ResolvedConfig } from '../config.js'
import type { HeadProjections } from '../params.js'
import { ALL_KERNELS, KERNELS } from './names.js'
import { ensureFusedKernels, LANGUAGES } from './register.js'

export interface FusedSupport {
  ok: boolean
  reason?: string
}

/**
 * Input dtypes of the fused path. The kernels compute in float32; 16-bit layers run them on
 * float32 copies (mixed precision: 16-bit storage, float32 maths, the output cast back), which
 * beats core's ops in 16 bits and, unlike the portable path, needs no [B, Hs, k, dModel] gather
 * indices (over WebGPU's 2 GiB binding limit in the paper's T = 8192 layers).
 */
const FUSED_DTYPES: readonly string[] = ['float32', 'float16', 'bfloat16']

/** Largest head dimension the fused kernels take (they keep a whole head row per tile). */
export const FUSED_MAX_HEAD_DIM = 128

/** Whether the fused MoSA kernels can run for this config on x's backend, and if not, why. */
export function fusedSupport(c: ResolvedConfig, x: Tensor): FusedSupport {
  ensureFusedKernels()
  const b = x.backend
  if (typeof b.runProgram !== 'function') {
    return { ok: false, reason: `backend '${b.name}' cannot run kernel programs (it has no runProgram)` }
  }
  const missing = ALL_KERNELS.filter((n) => !hasKernel(n, b.name))
  if (missing.length) return { ok: false, reason: `no fused MoSA kernels for backend '${b.name}'` }
  if (!FUSED_DTYPES.includes(x.dtype)) {
    return {
      ok: false,
      reason: `the fused kernels take float32 (float16 and bfloat16 cast up to it), got ${x.dtype}`,
    }
  }
  const maxD = LANGUAGES.find((l) => l.backendName === b.name)?.maxHeadDim ?? FUSED_MAX_HEAD_DIM
  if (c.headDim % 32 !== 0 || c.headDim > maxD) {
    return {
      ok: false,
      reason: `the fused kernels on '${b.name}' take headDim a multiple of 32 up to ${maxD}, got ${c.headDim}`,
    }
  }
  return { ok: true }
}

/**
 * Causal attention of the dense heads ([B, H, T, D] each) through the fused MoSA attention
 * kernel (every token selected, so slot order is position order), for float32 layers on CUDA,
 * where core's float32 attention is a warp-per-query SIMT kernel; undefined elsewhere (core's
 * attention runs: flash kernels in 16 bits, WebGPU's own).
 */
export function fusedDenseAttention(
  c: ResolvedConfig,
  x: Tensor,
): ((q: Tensor, k: Tensor, v: Tensor) => Tensor) | undefined {
  if (x.dtype !== 'float32' || x.backend.name !== 'cuda') return undefined
  const scale = 1 / Math.sqrt(c.headDim)
  return (q, k, v) => runKernel(KERNELS.attend, { q, k, v }, { scale })[0]
}

/**
 * The MoSA heads through the fused kernels: select (top-k + position sort + sigmoid, one launch),
 * project (row gather + Q/K/V GEMM + RoPE, one launch), attend (causal flash attention, one
 * launch), outScatter (score scaling + output GEMM + scatter-add, one launch).
 */
export function sparseHeadsFused(
  c: ResolvedConfig,
  w: HeadProjections,
  x: Tensor,
  logits: Tensor,
  k: number,
): { y: Tensor; indices: Tensor; scores: Tensor } {
  if (x.dtype !== 'float32')
    return tidy(() => {
      const up = (t: Tensor) => cast(t, 'float32')
      const r = sparseHeadsFused(c, { q: up(w.q), k: up(w.k), v: up(w.v), o: up(w.o) }, up(x), up(logits), k)
      return { y: cast(r.y, x.dtype), indices: r.indices, scores: cast(r.scores, x.dtype) }
    })
  return tidy(() => {
    const [indices, scores] = runKernel(KERNELS.select, { logits }, { k, headDim: c.headDim })
    const [q, kk, v] = runKernel(
      KERNELS.project,
      { x, indices, wq: w.q, wk: w.k, wv: w.v },
      { ropeBase: c.ropeBase },
    )
    const [o] = runKernel(KERNELS.attend, { q, k: kk, v }, { scale: 1 / Math.sqrt(c.headDim) })
    const [y] = runKernel(KERNELS.outScatter, { o, scores, indices, wo: w.o }, { seqLen: x.shape[1] })
    return { y, indices, scores }
  })
}
