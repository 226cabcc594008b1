import {
  argumentError,
  type Backend,
  BackendError,
  type ProgramSpec,
  registerKernel,
  runKernel,
  type Tensor,
  type TensorInfo,
} from '@attnkit/core'
import { decodeAttentionCudaSource } from './cuda/decode-attention.js'
import { KERNELS } from './names.js'
import { kernelAvailable } from './register.js'
import { decodeAttentionWgslSource } from './wgsl/decode-attention.js'

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
      : q.shape[3] > DECODE_MAX_HEAD_DIM
        ? `the kernel takes head dim <= ${DECODE_MAX_HEAD_DIM}, got ${q.shape[3]}`
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

type DecodeInputs = Record<'q' | 'k' | 'v' | 'pos' | 'kNew' | 'vNew', TensorInfo>

/** Head dimensions the fused decode kernel takes (one thread per output feature). */
export const DECODE_MAX_HEAD_DIM = 256

function decodeProgram(
  backend: Backend,
  lang: 'cuda' | 'wgsl',
  x: DecodeInputs,
  attrs: DecodeAttentionAttrs,
) {
  const [B, H, , D] = x.q.shape
  const [, Hk, N] = x.k.shape
  if (D > DECODE_MAX_HEAD_DIM)
    throw new BackendError(`lte.decodeAttention: head dim ${D} exceeds ${DECODE_MAX_HEAD_DIM}`)
  if (typeof backend.runProgram !== 'function')
    throw new BackendError(`lte: backend '${backend.name}' cannot run programs (no runProgram)`)
  const spec: ProgramSpec = {
    language: lang,
    name: `lte.decode_attention.D${D}`,
    source: lang === 'cuda' ? decodeAttentionCudaSource(D) : decodeAttentionWgslSource(D),
    entryPoint: 'lte_decode_attention',
    grid: [H, B, 1],
    block: [256, 1, 1],
    inputs: [x.q, x.k, x.v, x.pos, x.kNew, x.vNew],
    outputs: [{ shape: [B, H, 1, D], dtype: 'float32' }],
    scalars: [
      { type: 'u32', value: N },
      { type: 'u32', value: H },
      { type: 'u32', value: Hk },
      { type: 'f32', value: attrs.scale },
    ],
  }
  return backend.runProgram(spec)
}

export function registerDecodeAttentionKernels(): void {
  for (const [backendName, lang] of [
    ['cuda', 'cuda'],
    ['webgpu', 'wgsl'],
  ] as const) {
    registerKernel<Backend, DecodeAttentionAttrs, DecodeInputs>({
      kernelName: KERNELS.decodeAttention,
      backendName,
      kernelFunc: ({ inputs, attrs, backend }) => decodeProgram(backend, lang, inputs, attrs),
    })
  }
}
