import { argumentError, cast, dtypeError, gatedDeltaRule, runKernel, type Tensor } from '@attnkit/core'
import { type GdnKernelAttrs, KERNELS } from '../kernels/names.js'
import { ensureKernelsRegistered, kernelAvailable } from '../kernels/register.js'
import { assertIntArg, assertNumberArg, assertShapeArg, assertTensorArg } from '../validate.js'

/** Which implementation runs: this package's chunkwise kernel, core's op, or whichever is best. */
export type KernelChoice = 'auto' | 'fused' | 'portable'

export interface GatedDeltaOptions {
  /** State carried in, [B, H, Dk, Dv] (float32; float64 for float64 inputs). Zeros when absent. */
  initialState?: Tensor
  /** Multiplies q (default 1/sqrt(Dk)). */
  scale?: number
  /** 'chunked' (sequences, default) or 'recurrent' (decode, and the reference). */
  mode?: 'chunked' | 'recurrent'
  /** Chunk length of the chunked form (default 64). */
  chunkSize?: number
  /**
   * 'fused': this package's chunkwise kernel (forward and an explicit chunkwise backward) for the
   * tensors' backend, or an error naming why it cannot run; 'portable': core's `gatedDeltaRule`;
   * 'auto' (default): fused on a GPU backend that has the kernel, else portable. The GPU kernels
   * compute in float32: float16/bfloat16 inputs are cast up for them and the output cast back
   * (the recurrence's state is float32 either way).
   * On the CPU 'auto' takes core's op (faster there); the package's CPU kernel is the float64
   * reference of the chunkwise algorithm, chosen with 'fused'.
   */
  kernel?: KernelChoice
}

/**
 * The gated delta rule with core's conventions (state S [Dk, Dv]):
 *   S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T (scale q_t).
 * q, k [B, H, T, Dk], v [B, H, T, Dv], g [B, H, T] (log decay, <= 0), beta [B, H, T] in (0, 1).
 * Returns o [B, H, T, Dv] and the final state. Differentiable in every input.
 */
export function gatedDelta(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  opts: GatedDeltaOptions = {},
): { out: Tensor; state: Tensor } {
  const op = 'gatedDelta'
  const mode = opts.mode ?? 'chunked'
  if (mode !== 'chunked' && mode !== 'recurrent')
    throw argumentError(op, 'mode', "'chunked' | 'recurrent'", mode)
  const kernel = opts.kernel ?? 'auto'
  if (kernel !== 'auto' && kernel !== 'fused' && kernel !== 'portable')
    throw argumentError(op, 'kernel', "'auto' | 'fused' | 'portable'", kernel)
  const useFused =
    mode === 'chunked' &&
    (kernel === 'fused' || (kernel === 'auto' && q.backend.name !== 'cpu')) &&
    fusedGdnUsable(q, kernel === 'fused')
  if (!useFused) {
    if (kernel === 'fused')
      throw argumentError(
        op,
        'kernel',
        "'auto' or 'portable' in recurrent mode (the fused kernel is chunkwise)",
        kernel,
      )
    return gatedDeltaRule(q, k, v, g, beta, opts)
  }
  for (const [name, t] of Object.entries({ q, k, v, g, beta })) assertTensorArg(op, name, t)
  if (q.rank !== 4) assertShapeArg(op, 'q', q, [null, null, null, null], ['B', 'H', 'T', 'Dk'])
  const [B, H, T, Dk] = q.shape
  assertShapeArg(op, 'k', k, [B, H, T, Dk], ['B', 'H', 'T', 'Dk'])
  assertShapeArg(op, 'v', v, [B, H, T, null], ['B', 'H', 'T', 'Dv'])
  assertShapeArg(op, 'g', g, [B, H, T], ['B', 'H', 'T'])
  assertShapeArg(op, 'beta', beta, [B, H, T], ['B', 'H', 'T'])
  for (const [name, t] of Object.entries({ k, v, g, beta }))
    if (t.dtype !== q.dtype) throw dtypeError(op, name, `${q.dtype} (the dtype of 'q')`, t.dtype)
  const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
  if (opts.initialState) {
    assertTensorArg(op, 'initialState', opts.initialState)
    assertShapeArg(op, 'initialState', opts.initialState, [B, H, Dk, v.shape[3]], ['B', 'H', 'Dk', 'Dv'])
    if (opts.initialState.dtype !== stateDType)
      throw dtypeError(op, 'initialState', stateDType, opts.initialState.dtype)
  }
  const attrs: GdnKernelAttrs = {
    scale: assertNumberArg(op, 'scale', opts.scale ?? 1 / Math.sqrt(Dk)),
    chunkSize: assertIntArg(op, 'chunkSize', opts.chunkSize ?? 64, 1),
  }
  if (q.backend.name !== 'cpu' && q.dtype !== 'float32')
    return upcastFused(q, k, v, g, beta, opts.initialState, attrs)
  const [out, state] = runKernel(KERNELS.gdnForward, { q, k, v, g, beta, state: opts.initialState }, attrs)
  return { out, state }
}

/**
 * 16-bit inputs through the float32 GPU kernel: mixed precision as training wants it (bf16
 * activations, float32 recurrence), rather than core's op step by step in 16 bits, which is
 * slower by an order of magnitude at training sizes. Gradients flow back through the casts.
 */
function upcastFused(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  g: Tensor,
  beta: Tensor,
  initialState: Tensor | undefined,
  attrs: GdnKernelAttrs,
): { out: Tensor; state: Tensor } {
  const up = [q, k, v, g, beta].map((t) => cast(t, 'float32'))
  const [q32, k32, v32, g32, beta32] = up
  try {
    const [out32, state] = runKernel(
      KERNELS.gdnForward,
      { q: q32, k: k32, v: v32, g: g32, beta: beta32, state: initialState },
      attrs,
    )
    const out = cast(out32, q.dtype)
    out32.dispose()
    return { out, state }
  } finally {
    for (const t of up) t.dispose()
  }
}

/** Whether the fused chunkwise kernel can take `q`'s backend and dtype; with `strict`, why not. */
function fusedGdnUsable(q: Tensor, strict: boolean): boolean {
  ensureKernelsRegistered()
  const b = q.backend
  const why = !kernelAvailable(KERNELS.gdnForward, b)
    ? `no '${KERNELS.gdnForward}' kernel for backend '${b.name}'${b.name === 'cpu' ? '' : ' (or it cannot run programs)'}`
    : b.name !== 'cpu' && !['float32', 'float16', 'bfloat16'].includes(q.dtype)
      ? `the ${b.name} kernel takes float32 (16-bit inputs cast up), got ${q.dtype}`
      : ''
  if (why && strict) throw argumentError('gatedDelta', 'kernel', `a usable fused kernel (${why})`, 'fused')
  return why === ''
}
