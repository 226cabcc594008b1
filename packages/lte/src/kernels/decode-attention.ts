import { argumentError, runKernel, type Tensor } from '@attnkit/core'
import { KERNELS } from './names.js'
import { kernelAvailable } from './register.js'

export interface DecodeAttentionAttrs {
  scale: number
}

/** Whether the fused LTE decode attention can run for q's backend and dtype (with `strict`, why not). */
export function fusedDecodeAvailable(q: Tensor, strict: boolean): boolean {
  const b = q.backend
  const why = !kernelAvailable(KERNELS.decodeAttention, b)
    ? `no '${KERNELS.decodeAttention}' kernel for backend '${b.name}'`
    : q.dtype !== 'float32'
      ? `the kernel takes float32, got ${q.dtype}`
      : ''
  if (why && strict)
    throw argumentError('attentionDecode', 'kernel', `a usable fused kernel (${why})`, 'fused')
  return why === ''
}

/**
 * Fused decode attention over the cache slots plus the new token, one kernel: q [B, H, 1, Dh],
 * slot k/v [B, Hk, N, Dh], pos int32 [B, Hk, N] (slot used when >= 0), kNew/vNew [B, Hk, 1, Dh]
 * -> [B, H, 1, Dh]. Equal to core's attention over concat(slots, new) with keep = pos >= 0.
 */
export function fusedDecodeAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  pos: Tensor,
  kNew: Tensor,
  vNew: Tensor,
): Tensor {
  const attrs: DecodeAttentionAttrs = { scale: 1 / Math.sqrt(q.shape[3]) }
  return runKernel(KERNELS.decodeAttention, { q, k, v, pos, kNew, vNew }, attrs)[0]
}
