import { type Backend, getKernel, type TensorInfo } from '@attnkit/core'
import { cdiv, f32, i32, type Run } from './launch.js'

/**
 * Which implementation runs the MoSA heads' float32 GEMMs on CUDA (the Q/K/V projections, the
 * projections' input gradient and the weight gradients of Wq, Wk, Wv and Wo):
 * - 'fused': the package's gather-GEMM kernels (mosa_gemm: 3xTF32 on the tensor cores, the row
 *   gather and scatter inside the GEMM, no [B, Hs, K, dModel] intermediate);
 * - 'library': the selected rows gathered into a [B, Hs, K, dModel] slab, the backend's batched
 *   float32 matmul (cuBLASLt on CUDA, TF32 off as the backend's default), then scattered back;
 * - 'auto' (default): the library for at least `libraryMinRows` selected rows (B Hs K). H100,
 *   every bench layer (7936 to 186368 rows, T = 1024 and 8192) ran faster that way: cuBLASLt's
 *   float32 GEMMs outrun mosa_gemm by more than the slab's memory traffic costs. Below 4096 rows
 *   (not measured) the fused kernels keep their fewer launches and no slab.
 * The weight gradients take the library only for batch 1 (their per-head reduction runs over
 * the batch's rows, which the [B, Hs, ...] slabs do not hold contiguously); batch > 1 keeps the
 * fused weight-gradient kernels. At batch 1 the projections' backward is one kernel
 * (CUDA_LIBRARY_KERNELS.projectBackward: the inverse RoPE folded into stacking [dq | dk | dv],
 * which then feeds both GEMMs). The output scatter (mosa_out_scatter) and its input gradient
 * (mosa_out_backward) stay fused: there the library GEMM's gain is eaten by the slab round trip.
 * Mutable for the bench's A/B and tests.
 */
export const cudaGemms: { route: 'auto' | 'fused' | 'library'; libraryMinRows: number } = {
  route: 'auto',
  libraryMinRows: 4096,
}

/** Whether the CUDA GEMMs of a layer with `rows` selected rows (B Hs K) take the library route. */
export function cudaLibraryGemms(rows: number): boolean {
  const r = cudaGemms.route
  return r === 'auto' ? rows >= cudaGemms.libraryMinRows : r === 'library'
}

const float32 = 'float32' as const
/** Blocks of a grid-stride kernel over n elements (256 threads each). */
const strideGrid = (n: number): [number, number, number] => [Math.max(1, Math.min(cdiv(n, 256), 4096)), 1, 1]

/** The backend's own batched matmul kernel, called on raw tensors (no tape: we are inside a kernel). */
function backendMatmul(
  backend: Backend,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo {
  const k = getKernel('matmul', backend.name)
  if (!k) throw new Error(`mosa: backend '${backend.name}' has no matmul kernel for the library GEMM route`)
  const r = k.kernelFunc({ inputs: { a, b }, attrs: { transposeA, transposeB }, backend }) as
    | TensorInfo
    | TensorInfo[]
  return Array.isArray(r) ? r[0] : r
}

/** Selected rows [B, Hs, K] of x [B, T, C] gathered into [B, Hs, K, C], times the row's score if given. */
function gatherRows(run: Run, x: TensorInfo, indices: TensorInfo, scores?: TensorInfo): TensorInfo {
  const [B, T, C] = x.shape
  const [, Hs, K] = indices.shape
  const rows = B * Hs * K
  const scalars = [i32(T), i32(C), i32(Hs * K), i32(rows)]
  const out = [{ shape: [B, Hs, K, C], dtype: float32 }]
  const grid: [number, number, number] = [cdiv(rows, 8), 1, 1]
  return scores
    ? run('mosa_gather_rows_scaled', grid, [x, indices, scores], out, scalars)[0]
    : run('mosa_gather_rows', grid, [x, indices], out, scalars)[0]
}

/** The heads' [Wq_h; Wk_h; Wv_h] as one [Hs, 3D, C] operand. */
function stackedWeights(run: Run, wq: TensorInfo, wk: TensorInfo, wv: TensorInfo, Hs: number): TensorInfo {
  const [HD, C] = wq.shape
  const D = HD / Hs
  return run(
    'mosa_stack3',
    strideGrid(Hs * D * C),
    [wq, wk, wv],
    [{ shape: [Hs, 3 * D, C], dtype: float32 }],
    [i32(Hs), i32(D * C)],
  )[0]
}

/**
 * q, k, v [B, Hs, K, D] of the selected rows: gather, one batched GEMM against the stacked
 * [Wq; Wk; Wv] per head (192 columns at D = 64 run faster than three GEMMs of 64), then split
 * with RoPE at the rows' positions.
 */
export function projectLibrary(
  run: Run,
  backend: Backend,
  i: { x: TensorInfo; indices: TensorInfo; wq: TensorInfo; wk: TensorInfo; wv: TensorInfo },
  ropeBase: number,
): TensorInfo[] {
  const [B] = i.x.shape
  const [, Hs, K] = i.indices.shape
  const D = i.wq.shape[0] / Hs
  const xg = gatherRows(run, i.x, i.indices)
  const w = stackedWeights(run, i.wq, i.wk, i.wv, Hs)
  // [B, Hs, K, C] x [Hs, 3D, C]^T, the weights broadcast over the batch.
  const qkv = backendMatmul(backend, xg, w, false, true)
  backend.release(xg.dataId)
  backend.release(w.dataId)
  const rows = B * Hs * K
  const out = { shape: [B, Hs, K, D], dtype: float32 }
  const split = run(
    'mosa_unstack3_rope',
    [cdiv((rows * D) / 2, 256), 1, 1],
    [qkv, i.indices],
    [out, out, out],
    [i32(rows), f32(ropeBase)],
  )
  backend.release(qkv.dataId)
  return split
}

/** dx [B, T, C] = scatter of g [B, Hs, K, 3D] x the heads' [Wq; Wk; Wv] (one GEMM of depth 3D per head). */
function inputGradient(
  run: Run,
  backend: Backend,
  g: TensorInfo,
  i: { indices: TensorInfo; wq: TensorInfo; wk: TensorInfo; wv: TensorInfo },
  T: number,
): TensorInfo {
  const [B, Hs, K] = g.shape
  const C = i.wq.shape[1]
  const rows = B * Hs * K
  const w = stackedWeights(run, i.wq, i.wk, i.wv, Hs)
  const dxg = backendMatmul(backend, g, w, false, false)
  backend.release(w.dataId)
  const [dx] = run(
    'mosa_scatter_rows',
    [cdiv(rows, 8), 1, 1],
    [dxg, i.indices],
    [{ shape: [B, T, C], dtype: float32, zeroInit: true }],
    [i32(T), i32(C), i32(Hs * K), i32(rows)],
  )
  backend.release(dxg.dataId)
  return dx
}

/** dx [B, T, C] for [dq | dk | dv] (after the inverse RoPE), through inputGradient. */
export function projectBackwardInputLibrary(
  run: Run,
  backend: Backend,
  i: {
    dq: TensorInfo
    dk: TensorInfo
    dv: TensorInfo
    indices: TensorInfo
    wq: TensorInfo
    wk: TensorInfo
    wv: TensorInfo
  },
  T: number,
): TensorInfo[] {
  const [B, Hs, K, D] = i.dq.shape
  const rows = B * Hs * K
  const [g] = run(
    'mosa_stack3',
    strideGrid(rows * D),
    [i.dq, i.dk, i.dv],
    [{ shape: [B, Hs, K, 3 * D], dtype: float32 }],
    [i32(rows), i32(D)],
  )
  const dx = inputGradient(run, backend, g, i, T)
  backend.release(g.dataId)
  return [dx]
}

/**
 * The projections' whole backward at batch 1, one stacked operand for both GEMMs: g = [dq | dk | dv]
 * rotated back from RoPE (mosa_stack3_unrope), dx = scatter of g x [Wq_h; Wk_h; Wv_h] (depth 3D),
 * [dWq; dWk; dWv]_h = g^T x gathered x rows (one GEMM of 3D rows per head), split by mosa_unstack3.
 */
export function projectBackwardLibrary(
  run: Run,
  backend: Backend,
  i: {
    dq: TensorInfo
    dk: TensorInfo
    dv: TensorInfo
    x: TensorInfo
    indices: TensorInfo
    wq: TensorInfo
    wk: TensorInfo
    wv: TensorInfo
  },
  ropeBase: number,
): TensorInfo[] {
  const [B, Hs, K, D] = i.dq.shape
  const [, T, C] = i.x.shape
  if (B !== 1) throw new Error(`mosa: the library projection backward takes batch 1, got ${B}`)
  const rows = Hs * K
  const [g] = run(
    'mosa_stack3_unrope',
    [cdiv((rows * D) / 2, 256), 1, 1],
    [i.dq, i.dk, i.dv, i.indices],
    [{ shape: [1, Hs, K, 3 * D], dtype: float32 }],
    [i32(rows), f32(ropeBase)],
  )
  const dx = inputGradient(run, backend, g, i, T)
  const xg = gatherRows(run, i.x, i.indices)
  const dw = backendMatmul(backend, g, xg, true, false) // [1, Hs, 3D, C]
  backend.release(xg.dataId)
  backend.release(g.dataId)
  const part = { shape: [Hs * D, C], dtype: float32 }
  const dws = run('mosa_unstack3', strideGrid(Hs * D * C), [dw], [part, part, part], [i32(Hs), i32(D * C)])
  backend.release(dw.dataId)
  return [dx, ...dws]
}

/** dWo [C, Hs D]: per head (score-scaled gathered dy rows)^T x out, then heads to columns (batch 1). */
export function outBackwardWeightLibrary(
  run: Run,
  backend: Backend,
  i: { o: TensorInfo; scores: TensorInfo; dy: TensorInfo; indices: TensorInfo },
): TensorInfo[] {
  const [, Hs, , D] = i.o.shape
  const C = i.dy.shape[2]
  const dyg = gatherRows(run, i.dy, i.indices, i.scores)
  const perHead = backendMatmul(backend, dyg, i.o, true, false) // [1, Hs, C, D]
  backend.release(dyg.dataId)
  const dwo = run(
    'mosa_heads_to_columns',
    strideGrid(Hs * C * D),
    [perHead],
    [{ shape: [C, Hs * D], dtype: float32 }],
    [i32(Hs), i32(C)],
  )
  backend.release(perHead.dataId)
  return dwo
}
