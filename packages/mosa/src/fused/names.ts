/** The package's fused kernels, registered per backend ('cuda', 'webgpu'). */
export const KERNELS = {
  /** logits [B,Hs,T] -> indices int32 [B,Hs,k] ascending, scores [B,Hs,k] = sigmoid(selected logits). */
  select: 'mosa.select',
  /** x, indices, wq, wk, wv -> q, k, v [B,Hs,k,D] for the selected rows, RoPE at original positions. */
  project: 'mosa.project',
  /** q, k, v -> out [B,Hs,k,D], lse [B,Hs,k]: attention causal in (ascending) position order. */
  attend: 'mosa.attend',
  /** out, scores, indices, wo -> y [B,T,C]: rows times score, per-head output projection, scatter-add. */
  outScatter: 'mosa.outScatter',
  /** Gradients of attend: dq, dk, dv. */
  attendBackward: 'mosa.attendBackward',
  /** Gradients of outScatter w.r.t. out and scores. */
  outBackward: 'mosa.outBackward',
  /** Gradient of outScatter w.r.t. wo. */
  outBackwardWeight: 'mosa.outBackwardWeight',
  /** Gradient of project w.r.t. x (scatter-add into [B,T,C]). */
  projectBackwardInput: 'mosa.projectBackwardInput',
  /** Gradients of project w.r.t. wq, wk, wv. */
  projectBackwardWeight: 'mosa.projectBackwardWeight',
} as const

export const ALL_KERNELS: readonly string[] = Object.values(KERNELS)

/**
 * CUDA-only kernels of the library-GEMM route (not part of ALL_KERNELS, which every backend with
 * fused kernels registers).
 */
export const CUDA_LIBRARY_KERNELS = {
  /**
   * The projections' whole backward at batch 1: dq, dk (before the inverse RoPE), dv, x, indices,
   * wq, wk, wv -> dx, dwq, dwk, dwv.
   */
  projectBackward: 'mosa.projectBackwardLibrary',
} as const
