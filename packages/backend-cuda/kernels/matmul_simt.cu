// Fallback matmul for shapes cuBLASLt offers no algorithm for: out[b] = Am[b] (M x K) * B[b] (K x N),
// with element (i, k) of Am at a + b*a_batch + i*a_rs + k*a_ks (likewise B). 16x16 tiles, float32 accumulation.
#include "common.cuh"

#ifndef DT
#define DT float
#endif

#define TILE 16

extern "C" __global__ void matmul_simt_k(const DT* __restrict__ a, const DT* __restrict__ b, DT* __restrict__ out,
                                         int M, int N, int K, i64 a_batch, i64 b_batch, int a_rs, int a_ks,
                                         int b_ks, int b_cs) {
  __shared__ float as[TILE][TILE + 1];
  __shared__ float bs[TILE][TILE + 1];
  const int batch = blockIdx.z;
  const DT* Am = a + batch * a_batch;
  const DT* Bm = b + batch * b_batch;
  const int row = blockIdx.y * TILE + threadIdx.y;
  const int col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    const int ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (row < M && ka < K) ? to_f(Am[(i64)row * a_rs + (i64)ka * a_ks]) : 0.f;
    bs[threadIdx.y][threadIdx.x] = (kb < K && col < N) ? to_f(Bm[(i64)kb * b_ks + (i64)col * b_cs]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TILE; ++kk) acc += as[threadIdx.y][kk] * bs[kk][threadIdx.x];
    __syncthreads();
  }
  if (row < M && col < N) out[(i64)batch * M * N + (i64)row * N + col] = from_f<DT>(acc);
}
