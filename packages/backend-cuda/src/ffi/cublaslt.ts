import type { KoffiLibrary } from './koffi.js'
import { CudaCallError } from './status.js'

/** cudaDataType_t values. */
export const CUDA_R_32F = 0
export const CUDA_R_16F = 2
export const CUDA_R_16BF = 14
/** cublasComputeType_t values. */
export const CUBLAS_COMPUTE_32F = 68
export const CUBLAS_COMPUTE_32F_FAST_TF32 = 77
/** cublasLtMatmulDescAttributes_t. */
const DESC_TRANSA = 3
const DESC_TRANSB = 4
/** cublasLtMatrixLayoutAttribute_t. */
const LAYOUT_BATCH_COUNT = 5
const LAYOUT_STRIDED_BATCH_OFFSET = 6
/** cublasLtMatmulPreferenceAttributes_t. */
const PREF_MAX_WORKSPACE_BYTES = 1
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state (4) + waves (4) + reserved (16). */
export const HEURISTIC_RESULT_BYTES = 96

/** One column-major matrix operand as cuBLASLt sees it. */
export interface LtMatrix {
  dataType: number
  rows: number
  cols: number
  ld: number
  batch: number
  batchStride: number
}

/** A planned matmul: descriptors and the chosen algorithm, reusable across calls of one shape. */
export interface LtPlan {
  desc: bigint
  layouts: [bigint, bigint, bigint]
  algo: Uint8Array
  workspaceBytes: number
}

export interface CublasLt {
  readonly path: string
  version(): number
  /**
   * Plans D = op(A) op(B) (column-major) with the heuristic's first algorithm; returns
   * undefined when cuBLASLt offers none for this shape (the caller falls back).
   */
  plan(
    computeType: number,
    transA: boolean,
    transB: boolean,
    a: LtMatrix,
    b: LtMatrix,
    d: LtMatrix,
    maxWorkspace: number,
  ): LtPlan | undefined
  matmul(
    plan: LtPlan,
    a: bigint,
    b: bigint,
    d: bigint,
    workspace: bigint,
    workspaceBytes: number,
    stream: bigint,
  ): void
  destroyPlan(plan: LtPlan): void
  destroy(): void
}

export function bindCublasLt(lib: KoffiLibrary, path: string): CublasLt {
  const f = (def: string) => lib.func(def) as (...a: unknown[]) => number
  const raw = {
    cublasLtCreate: f('int cublasLtCreate(uint64_t *handle)'),
    cublasLtDestroy: f('int cublasLtDestroy(uintptr_t handle)'),
    cublasLtGetVersion: lib.func('size_t cublasLtGetVersion()') as () => number,
    cublasLtGetStatusName: lib.func('const char *cublasLtGetStatusName(int status)') as (c: number) => string,
    cublasLtMatmulDescCreate: f(
      'int cublasLtMatmulDescCreate(uint64_t *desc, int computeType, int scaleType)',
    ),
    cublasLtMatmulDescDestroy: f('int cublasLtMatmulDescDestroy(uintptr_t desc)'),
    cublasLtMatmulDescSetAttribute: f(
      'int cublasLtMatmulDescSetAttribute(uintptr_t desc, int attr, const void *buf, size_t size)',
    ),
    cublasLtMatrixLayoutCreate: f(
      'int cublasLtMatrixLayoutCreate(uint64_t *layout, int type, uint64_t rows, uint64_t cols, int64_t ld)',
    ),
    cublasLtMatrixLayoutDestroy: f('int cublasLtMatrixLayoutDestroy(uintptr_t layout)'),
    cublasLtMatrixLayoutSetAttribute: f(
      'int cublasLtMatrixLayoutSetAttribute(uintptr_t layout, int attr, const void *buf, size_t size)',
    ),
    cublasLtMatmulPreferenceCreate: f('int cublasLtMatmulPreferenceCreate(uint64_t *pref)'),
    cublasLtMatmulPreferenceDestroy: f('int cublasLtMatmulPreferenceDestroy(uintptr_t pref)'),
    cublasLtMatmulPreferenceSetAttribute: f(
      'int cublasLtMatmulPreferenceSetAttribute(uintptr_t pref, int attr, const void *buf, size_t size)',
    ),
    cublasLtMatmulAlgoGetHeuristic: f(
      'int cublasLtMatmulAlgoGetHeuristic(uintptr_t handle, uintptr_t desc, uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t d, uintptr_t pref, int requested, void *results, int *returned)',
    ),
    cublasLtMatmul: f(
      'int cublasLtMatmul(uintptr_t handle, uintptr_t desc, const void *alpha, uint64_t A, uintptr_t Adesc, uint64_t B, uintptr_t Bdesc, const void *beta, uint64_t C, uintptr_t Cdesc, uint64_t D, uintptr_t Ddesc, const void *algo, uint64_t workspace, size_t workspaceBytes, uintptr_t stream)',
    ),
  }
  const check = (call: string, code: number) => {
    if (code === 0) return
    let name = `CUBLAS_STATUS_${code}`
    try {
      name = raw.cublasLtGetStatusName(code) ?? name
    } catch {
      // keep the number
    }
    throw new CudaCallError(call, code, name)
  }
  const out = new BigUint64Array(1)
  const create = (call: string, fn: () => number) => {
    check(call, fn())
    return out[0]
  }
  const handle = create('cublasLtCreate', () => raw.cublasLtCreate(out))
  const alpha = new Float32Array([1])
  const beta = new Float32Array([0])

  const layout = (m: LtMatrix): bigint => {
    const l = create('cublasLtMatrixLayoutCreate', () =>
      raw.cublasLtMatrixLayoutCreate(out, m.dataType, m.rows, m.cols, m.ld),
    )
    if (m.batch > 1) {
      check(
        'cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)',
        raw.cublasLtMatrixLayoutSetAttribute(l, LAYOUT_BATCH_COUNT, new Int32Array([m.batch]), 4),
      )
      check(
        'cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)',
        raw.cublasLtMatrixLayoutSetAttribute(
          l,
          LAYOUT_STRIDED_BATCH_OFFSET,
          new BigInt64Array([BigInt(m.batchStride)]),
          8,
        ),
      )
    }
    return l
  }

  return {
    path,
    version: () => raw.cublasLtGetVersion(),
    plan: (computeType, transA, transB, a, b, d, maxWorkspace) => {
      const desc = create('cublasLtMatmulDescCreate', () =>
        raw.cublasLtMatmulDescCreate(out, computeType, CUDA_R_32F),
      )
      check(
        'cublasLtMatmulDescSetAttribute(TRANSA)',
        raw.cublasLtMatmulDescSetAttribute(desc, DESC_TRANSA, new Int32Array([transA ? 1 : 0]), 4),
      )
      check(
        'cublasLtMatmulDescSetAttribute(TRANSB)',
        raw.cublasLtMatmulDescSetAttribute(desc, DESC_TRANSB, new Int32Array([transB ? 1 : 0]), 4),
      )
      const layouts: [bigint, bigint, bigint] = [layout(a), layout(b), layout(d)]
      const pref = create('cublasLtMatmulPreferenceCreate', () => raw.cublasLtMatmulPreferenceCreate(out))
      try {
        check(
          'cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)',
          raw.cublasLtMatmulPreferenceSetAttribute(
            pref,
            PREF_MAX_WORKSPACE_BYTES,
            new BigUint64Array([BigInt(maxWorkspace)]),
            8,
          ),
        )
        const results = new Uint8Array(HEURISTIC_RESULT_BYTES)
        const returned = new Int32Array(1)
        const status = raw.cublasLtMatmulAlgoGetHeuristic(
          handle,
          desc,
          layouts[0],
          layouts[1],
          layouts[2],
          layouts[2],
          pref,
          1,
          results,
          returned,
        )
        // NOT_SUPPORTED (15) means no algorithm for this shape; anything else is a real failure.
        if (status === 15 || returned[0] === 0) {
          raw.cublasLtMatmulDescDestroy(desc)
          for (const l of layouts) raw.cublasLtMatrixLayoutDestroy(l)
          return undefined
        }
        check('cublasLtMatmulAlgoGetHeuristic', status)
        const dv = new DataView(results.buffer)
        const workspaceBytes = Number(dv.getBigUint64(64, true))
        return { desc, layouts, algo: results.slice(0, 64), workspaceBytes }
      } finally {
        raw.cublasLtMatmulPreferenceDestroy(pref)
      }
    },
    matmul: (plan, a, b, d, workspace, workspaceBytes, stream) =>
      check(
        'cublasLtMatmul',
        raw.cublasLtMatmul(
          handle,
          plan.desc,
          alpha,
          a,
          plan.layouts[0],
          b,
          plan.layouts[1],
          beta,
          d,
          plan.layouts[2],
          d,
          plan.layouts[2],
          plan.algo,
          workspace,
          workspaceBytes,
          stream,
        ),
      ),
    destroyPlan: (plan) => {
      raw.cublasLtMatmulDescDestroy(plan.desc)
      for (const l of plan.layouts) raw.cublasLtMatrixLayoutDestroy(l)
    },
    destroy: () => {
      raw.cublasLtDestroy(handle)
    },
  }
}
