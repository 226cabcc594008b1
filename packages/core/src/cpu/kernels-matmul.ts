import { registerCoreKernel } from '../registry.js'
import { broadcastShapes, broadcastStrides, sizeOf } from '../shape.js'
import type { CpuBackend } from './cpu-backend.js'
import { odometer } from './iter.js'

const KC = 128

/**
 * Packs a logical [rows, K] matrix (row i, column k at src[off + i*rs + k*ks]) into a dense
 * float64 [rows, K] array, so the inner loop reads contiguous float64 whatever the transpose.
 */
function pack(
  src: ArrayLike<number>,
  off: number,
  rowsN: number,
  K: number,
  rs: number,
  ks: number,
): Float64Array {
  const out = new Float64Array(rowsN * K)
  for (let i = 0; i < rowsN; i++) {
    const o = i * K
    const s = off + i * rs
    for (let k = 0; k < K; k++) out[o + k] = src[s + k * ks]
  }
  return out
}

/** C[M, N] += A[M, K] * Bt[N, K]^T, float64, 4x4 register blocks, K blocked for cache. */
export function gemmPacked(
  A: Float64Array,
  Bt: Float64Array,
  C: Float64Array,
  M: number,
  N: number,
  K: number,
): void {
  for (let k0 = 0; k0 < K; k0 += KC) {
    const k1 = Math.min(K, k0 + KC)
    for (let i0 = 0; i0 < M; i0 += 4) {
      const fullI = i0 + 4 <= M
      for (let j0 = 0; j0 < N; j0 += 4) {
        if (fullI && j0 + 4 <= N) {
          const pa0 = i0 * K
          const pa1 = pa0 + K
          const pa2 = pa1 + K
          const pa3 = pa2 + K
          const pb0 = j0 * K
          const pb1 = pb0 + K
          const pb2 = pb1 + K
          const pb3 = pb2 + K
          let c00 = 0,
            c01 = 0,
            c02 = 0,
            c03 = 0
          let c10 = 0,
            c11 = 0,
            c12 = 0,
            c13 = 0
          let c20 = 0,
            c21 = 0,
            c22 = 0,
            c23 = 0
          let c30 = 0,
            c31 = 0,
            c32 = 0,
            c33 = 0
          for (let k = k0; k < k1; k++) {
            const a0 = A[pa0 + k]
            const a1 = A[pa1 + k]
            const a2 = A[pa2 + k]
            const a3 = A[pa3 + k]
            const b0 = Bt[pb0 + k]
            const b1 = Bt[pb1 + k]
            const b2 = Bt[pb2 + k]
            const b3 = Bt[pb3 + k]
            c00 += a0 * b0
            c01 += a0 * b1
            c02 += a0 * b2
            c03 += a0 * b3
            c10 += a1 * b0
            c11 += a1 * b1
            c12 += a1 * b2
            c13 += a1 * b3
            c20 += a2 * b0
            c21 += a2 * b1
            c22 += a2 * b2
            c23 += a2 * b3
            c30 += a3 * b0
            c31 += a3 * b1
            c32 += a3 * b2
            c33 += a3 * b3
          }
          let o = i0 * N + j0
          C[o] += c00
          C[o + 1] += c01
          C[o + 2] += c02
          C[o + 3] += c03
          o += N
          C[o] += c10
          C[o + 1] += c11
          C[o + 2] += c12
          C[o + 3] += c13
          o += N
          C[o] += c20
          C[o + 1] += c21
          C[o + 2] += c22
          C[o + 3] += c23
          o += N
          C[o] += c30
          C[o + 1] += c31
          C[o + 2] += c32
          C[o + 3] += c33
        } else {
          for (let i = i0; i < Math.min(M, i0 + 4); i++) {
            for (let j = j0; j < Math.min(N, j0 + 4); j++) {
              let s = 0
              for (let k = k0; k < k1; k++) s += A[i * K + k] * Bt[j * K + k]
              C[i * N + j] += s
            }
          }
        }
      }
    }
  }
}

export function registerMatmulKernels(): void {
  registerCoreKernel<'matmul', CpuBackend>('matmul', 'cpu', ({ inputs, attrs, backend }) => {
    const { a, b } = inputs
    const ra = a.shape.length
    const rb = b.shape.length
    const [aRows, aCols] = [a.shape[ra - 2], a.shape[ra - 1]]
    const [bRows, bCols] = [b.shape[rb - 2], b.shape[rb - 1]]
    const M = attrs.transposeA ? aCols : aRows
    const K = attrs.transposeA ? aRows : aCols
    const N = attrs.transposeB ? bRows : bCols
    const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2))
    const outShape = [...batchShape, M, N]
    const va = backend.values(a)
    const vb = backend.values(b)
    const out = backend.alloc(a.dtype, sizeOf(outShape))
    const sa = broadcastStrides(a.shape.slice(0, -2), batchShape).map((s) => s * aRows * aCols)
    const sb = broadcastStrides(b.shape.slice(0, -2), batchShape).map((s) => s * bRows * bCols)
    const C = new Float64Array(M * N)
    // A as [M, K]: row stride / k stride depend on the transpose; B packed as Bt [N, K].
    const [ars, aks] = attrs.transposeA ? [1, aCols] : [aCols, 1]
    const [brs, bks] = attrs.transposeB ? [bCols, 1] : [1, bCols]
    let lastA = -1
    let lastB = -1
    let A: Float64Array = new Float64Array(0)
    let Bt: Float64Array = new Float64Array(0)
    odometer(batchShape, [sa, sb], (batch, offs) => {
      if (offs[0] !== lastA) {
        A = pack(va, offs[0], M, K, ars, aks)
        lastA = offs[0]
      }
      if (offs[1] !== lastB) {
        Bt = pack(vb, offs[1], N, K, brs, bks)
        lastB = offs[1]
      }
      C.fill(0)
      gemmPacked(A, Bt, C, M, N, K)
      out.set(C, batch * M * N)
    })
    return backend.output(out, outShape, a.dtype)
  })
}
