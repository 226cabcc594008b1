import { broadcastShapes, type DType, registerCoreKernel, sizeOf, type TensorInfo } from '@attnkit/core'
import type { Block } from '../allocator.js'
import type { CudaBackend } from '../backend.js'
import {
  CUBLAS_COMPUTE_32F,
  CUBLAS_COMPUTE_32F_FAST_TF32,
  CUDA_R_16BF,
  CUDA_R_16F,
  CUDA_R_32F,
  type LtPlan,
} from '../ffi/cublaslt.js'
import { ctype } from '../host-convert.js'
import { expand } from './layout.js'

/** cuBLASLt workspace (what PyTorch gives cuBLAS on Hopper). */
const WORKSPACE_BYTES = 32 * 1024 * 1024

const LT_TYPE: Partial<Record<DType, number>> = {
  float32: CUDA_R_32F,
  float16: CUDA_R_16F,
  bfloat16: CUDA_R_16BF,
}

class MatmulState {
  readonly plans = new Map<string, LtPlan | null>()
  workspace: Block | undefined
  constructor(private readonly backend: CudaBackend) {}
  dispose(): void {
    for (const p of this.plans.values()) if (p) this.backend.lt.destroyPlan(p)
    this.plans.clear()
  }
}

function stateOf(backend: CudaBackend): MatmulState {
  let s = backend.state.get('matmul') as MatmulState | undefined
  if (!s) {
    s = new MatmulState(backend)
    backend.state.set('matmul', s)
  }
  return s
}

export interface MatmulArgs {
  a: TensorInfo
  b: TensorInfo
  transposeA: boolean
  transposeB: boolean
}

/** Row-major batched matmul with broadcast batch dims, through cuBLASLt (SIMT kernel when it has no algorithm). */
export function matmul(backend: CudaBackend, { a, b, transposeA, transposeB }: MatmulArgs): TensorInfo {
  const ra = a.shape.length
  const rb = b.shape.length
  const [aRows, aCols] = [a.shape[ra - 2], a.shape[ra - 1]]
  const [bRows, bCols] = [b.shape[rb - 2], b.shape[rb - 1]]
  const M = transposeA ? aCols : aRows
  const K = transposeA ? aRows : aCols
  const N = transposeB ? bRows : bCols
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2))
  const batch = sizeOf(batchShape)
  const out = backend.alloc([...batchShape, M, N], a.dtype)
  if (batch * M * N === 0) return out
  if (K === 0) {
    backend.zero(out)
    return out
  }
  // Each operand's batch stride: full, 0 (one matrix for all), or expanded when partially broadcast.
  const temps: TensorInfo[] = []
  const operand = (x: TensorInfo): { t: TensorInfo; stride: number } => {
    const xb = x.shape.slice(0, -2)
    const per = x.shape[x.shape.length - 2] * x.shape[x.shape.length - 1]
    const nb = sizeOf(xb)
    // Equal sizes imply equal (left-padded) batch dims, so the layout already matches.
    if (nb === batch) return { t: x, stride: per }
    if (nb === 1) return { t: x, stride: 0 }
    const e = expand(backend, x, [...batchShape, ...x.shape.slice(-2)])
    temps.push(e)
    return { t: e, stride: per }
  }
  const A = operand(a)
  const B = operand(b)
  const dtype = a.dtype
  const ltType = LT_TYPE[dtype]
  const st = stateOf(backend)
  let plan: LtPlan | null | undefined
  if (ltType !== undefined) {
    const compute =
      dtype === 'float32' && backend.allowTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F
    const key = [dtype, compute, transposeA, transposeB, M, N, K, batch, A.stride, B.stride].join(',')
    plan = st.plans.get(key)
    if (plan === undefined) {
      plan =
        backend.lt.plan(
          compute,
          transposeB,
          transposeA,
          { dataType: ltType, rows: bCols, cols: bRows, ld: bCols, batch, batchStride: B.stride },
          { dataType: ltType, rows: aCols, cols: aRows, ld: aCols, batch, batchStride: A.stride },
          { dataType: ltType, rows: N, cols: M, ld: N, batch, batchStride: M * N },
          WORKSPACE_BYTES,
        ) ?? null
      st.plans.set(key, plan)
    }
  }
  if (plan) {
    st.workspace ??= backend.scratch(WORKSPACE_BYTES)
    backend.lt.matmul(
      plan,
      backend.ptr(B.t),
      backend.ptr(A.t),
      backend.ptr(out),
      st.workspace.ptr,
      Math.min(plan.workspaceBytes, WORKSPACE_BYTES),
      backend.stream,
    )
  } else {
    backend.reportFallback(
      `matmul-${dtype}`,
      `cuBLASLt offered no algorithm for a ${dtype} matmul (M=${M}, N=${N}, K=${K}, batch ${batch}); using the SIMT kernel (slower)`,
    )
    const k = backend.kernel('matmul_simt.cu', { DT: ctype(dtype) }, 'matmul_simt_k', [
      'ptr',
      'ptr',
      'ptr',
      'i32',
      'i32',
      'i32',
      'i64',
      'i64',
      'i32',
      'i32',
      'i32',
      'i32',
    ])
    backend.launch(k, [Math.ceil(N / 16), Math.ceil(M / 16), batch], [16, 16, 1], 0, [
      backend.ptr(A.t),
      backend.ptr(B.t),
      backend.ptr(out),
      M,
      N,
      K,
      A.stride,
      B.stride,
      transposeA ? 1 : aCols,
      transposeA ? aCols : 1,
      transposeB ? 1 : bCols,
      transposeB ? bCols : 1,
    ])
  }
  for (const t of temps) backend.release(t.dataId)
  return out
}

export function registerMatmulKernels(): void {
  registerCoreKernel<'matmul', CudaBackend>('matmul', 'cuda', ({ inputs, attrs, backend }) =>
    matmul(backend, { a: inputs.a, b: inputs.b, transposeA: attrs.transposeA, transposeB: attrs.transposeB }),
  )
}
