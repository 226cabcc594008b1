// Self-test of the wgmma building blocks in kernels/wgmma.cuh on the GPU (one warpgroup):
//  1. S = Q K^T with Q (64 x 128) and K (128 x 128) in SW128 shared tiles, K-major descriptors,
//     8 k16 steps (two 64-column blocks), as flash_fwd_wgmma.cu's first GEMM;
//  2. O = P V with P (64 x 128) in registers and V (128 keys x 128) read MN-major (transposed),
//     with V's LBO/SBO as flash_fwd_wgmma.cu has them, and swapped;
//  3. dQ = dS K as flash_bwd_wgmma.cu: dS^T (128 keys x 64 queries) and K (128 keys x 128) in
//     SW128 tiles, both read MN-major (wgmma_ss_tt_n64), one launch per 64-column block of K;
// each against a float64 CPU product, on random bf16 data. Prints one line per test.
// Build (sm_90a): nvcc -gencode=arch=compute_90a,code=sm_90a -std=c++17 -Ikernels -o selftest device/wgmma_selftest.cu
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <cuda_runtime.h>
#include "wgmma.cuh"

#define CK(x)                                                                     \
  do {                                                                            \
    cudaError_t e_ = (x);                                                         \
    if (e_ != cudaSuccess) {                                                      \
      printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

typedef __nv_bfloat16 bf;

// Q: 64 x 128, K: 128 x 128 (row-major in global); out: 64 x 128 float.
__global__ void __launch_bounds__(128) qk_test(const bf* q, const bf* k, float* out) {
  extern __shared__ __align__(128) unsigned char raw[];
  unsigned char* sm = raw + ((1024u - (smem_addr(raw) & 1023u)) & 1023u);
  bf* sQ = (bf*)sm;
  bf* sK = sQ + 64 * 128;
  const int tid = threadIdx.x;
  for (int c = tid; c < 64 * 16; c += 128) {
    const int r = c / 16, ch = c % 16;
    *(uint4*)(sQ + sw128_off(r, ch, 64)) = *(const uint4*)(q + r * 128 + ch * 8);
  }
  for (int c = tid; c < 128 * 16; c += 128) {
    const int r = c / 16, ch = c % 16;
    *(uint4*)(sK + sw128_off(r, ch, 128)) = *(const uint4*)(k + r * 128 + ch * 8);
  }
  fence_proxy_async();
  __syncthreads();
  float s[64];
  const u32 qa = smem_addr(sQ), ka = smem_addr(sK);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk)
    wgmma_ss_n128(s, sw128_desc(qa + (kk >> 2) * 64 * 128 + (kk & 3) * 32, 16, 1024),
                  sw128_desc(ka + (kk >> 2) * 128 * 128 + (kk & 3) * 32, 16, 1024), kk);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs<64>(s);
  const int wq = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  for (int nb = 0; nb < 16; ++nb)
    for (int i = 0; i < 4; ++i) {
      const int row = 16 * wq + g + 8 * (i >> 1), col = 8 * nb + 2 * t4 + (i & 1);
      out[row * 128 + col] = s[nb * 4 + i];
    }
}

// P: 64 x 128 (keys), V: 128 keys x 128; out: 64 x 128 float.
__global__ void __launch_bounds__(128) pv_test(const bf* p, const bf* v, float* out, int lbo, int sbo) {
  extern __shared__ __align__(128) unsigned char raw[];
  unsigned char* sm = raw + ((1024u - (smem_addr(raw) & 1023u)) & 1023u);
  bf* sV = (bf*)sm;
  const int tid = threadIdx.x;
  for (int c = tid; c < 128 * 16; c += 128) {
    const int r = c / 16, ch = c % 16;
    *(uint4*)(sV + sw128_off(r, ch, 128)) = *(const uint4*)(v + r * 128 + ch * 8);
  }
  fence_proxy_async();
  __syncthreads();
  const int wq = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  u32 pa[8][4];
  for (int kk = 0; kk < 8; ++kk)
    for (int i = 0; i < 4; ++i) {
      const int row = 16 * wq + g + 8 * (i & 1), col = 16 * kk + 8 * (i >> 1) + 2 * t4;
      pa[kk][i] = *(const u32*)(p + row * 128 + col);
    }
  float o[64];
  for (int i = 0; i < 64; ++i) o[i] = 0.f;
  const u32 va = smem_addr(sV);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) wgmma_rs_n128(o, pa[kk], sw128_desc(va + kk * 16 * 128, lbo, sbo), 1);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs<64>(o);
  for (int nb = 0; nb < 16; ++nb)
    for (int i = 0; i < 4; ++i) {
      const int row = 16 * wq + g + 8 * (i >> 1), col = 8 * nb + 2 * t4 + (i & 1);
      out[row * 128 + col] = o[nb * 4 + i];
    }
}

// dsT: 128 keys x 64 queries, K: 128 keys x 128; out: 64 x 128 float (columns 64 * blk ...).
__global__ void __launch_bounds__(128) dq_test(const bf* dst, const bf* k, float* out, int blk) {
  extern __shared__ __align__(128) unsigned char raw[];
  unsigned char* sm = raw + ((1024u - (smem_addr(raw) & 1023u)) & 1023u);
  bf* sK = (bf*)sm;
  bf* sS = sK + 128 * 128;
  const int tid = threadIdx.x;
  for (int c = tid; c < 128 * 16; c += 128) {
    const int r = c / 16, ch = c % 16;
    *(uint4*)(sK + sw128_off(r, ch, 128)) = *(const uint4*)(k + r * 128 + ch * 8);
  }
  for (int c = tid; c < 128 * 8; c += 128) {
    const int r = c / 8, ch = c % 8;
    *(uint4*)(sS + sw128_off(r, ch, 128)) = *(const uint4*)(dst + r * 64 + ch * 8);
  }
  fence_proxy_async();
  __syncthreads();
  float d[32];
  const u32 ka = smem_addr(sK), sa = smem_addr(sS);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk)
    wgmma_ss_tt_n64(d, sw128_desc(sa + kk * 16 * 128, 128 * 128, 1024),
                    sw128_desc(ka + blk * 128 * 128 + kk * 16 * 128, 128 * 128, 1024), kk);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs<32>(d);
  const int wq = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  for (int nb = 0; nb < 8; ++nb)
    for (int i = 0; i < 4; ++i) {
      const int row = 16 * wq + g + 8 * (i >> 1), col = 64 * blk + 8 * nb + 2 * t4 + (i & 1);
      out[row * 128 + col] = d[nb * 4 + i];
    }
}

static float b2f(bf x) { return __bfloat162float(x); }

static double rel_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = got[i] - ref[i];
    num += (got[i] == got[i]) ? d * d : 1e30;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

int main() {
  srand(1234);
  auto rnd = [](int n) {
    std::vector<bf> x(n);
    for (auto& e : x) e = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
    return x;
  };
  std::vector<bf> hq = rnd(64 * 128), hk = rnd(128 * 128), hp = rnd(64 * 128), hv = rnd(128 * 128);
  bf *dq, *dk, *dp, *dv;
  float* dout;
  CK(cudaMalloc(&dq, 64 * 128 * 2));
  CK(cudaMalloc(&dk, 128 * 128 * 2));
  CK(cudaMalloc(&dp, 64 * 128 * 2));
  CK(cudaMalloc(&dv, 128 * 128 * 2));
  CK(cudaMalloc(&dout, 64 * 128 * 4));
  CK(cudaMemcpy(dq, hq.data(), 64 * 128 * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dk, hk.data(), 128 * 128 * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dp, hp.data(), 64 * 128 * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv, hv.data(), 128 * 128 * 2, cudaMemcpyHostToDevice));
  std::vector<double> ref(64 * 128);
  std::vector<float> got(64 * 128);
  int fails = 0;
  // 1. S = Q K^T
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 128; ++j) {
      double a = 0;
      for (int d = 0; d < 128; ++d) a += (double)b2f(hq[i * 128 + d]) * b2f(hk[j * 128 + d]);
      ref[i * 128 + j] = a;
    }
  CK(cudaFuncSetAttribute(qk_test, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  CK(cudaMemset(dout, 0xff, 64 * 128 * 4));
  qk_test<<<1, 128, 48 * 1024 + 1024>>>(dq, dk, dout);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(got.data(), dout, 64 * 128 * 4, cudaMemcpyDeviceToHost));
  double e = rel_err(got, ref);
  printf("selftest qk (SS, K-major SW128, SBO 1024): rel err %.2e %s\n", e, e < 1e-3 ? "ok" : "WRONG");
  fails += e >= 1e-3;
  // 2. O = P V, both LBO/SBO assignments
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 128; ++j) {
      double a = 0;
      for (int t = 0; t < 128; ++t) a += (double)b2f(hp[i * 128 + t]) * b2f(hv[t * 128 + j]);
      ref[i * 128 + j] = a;
    }
  CK(cudaFuncSetAttribute(pv_test, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  const int cfg[2][2] = {{128 * 128, 1024}, {1024, 128 * 128}};
  for (int c = 0; c < 2; ++c) {
    CK(cudaMemset(dout, 0xff, 64 * 128 * 4));
    pv_test<<<1, 128, 32 * 1024 + 1024>>>(dp, dv, dout, cfg[c][0], cfg[c][1]);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got.data(), dout, 64 * 128 * 4, cudaMemcpyDeviceToHost));
    e = rel_err(got, ref);
    printf("selftest pv (RS, V MN-major SW128, LBO %d SBO %d)%s: rel err %.2e %s\n", cfg[c][0], cfg[c][1],
           c == 0 ? " [kernel's choice]" : " [swapped]", e, e < 1e-3 ? "ok" : "WRONG");
    if (c == 0) fails += e >= 1e-3;
  }
  // 3. dQ = dS K with dS^T (128 x 64) = hp viewed as 128 rows of 64
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 128; ++j) {
      double a = 0;
      for (int t = 0; t < 128; ++t) a += (double)b2f(hp[t * 64 + i]) * b2f(hk[t * 128 + j]);
      ref[i * 128 + j] = a;
    }
  CK(cudaFuncSetAttribute(dq_test, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  CK(cudaMemset(dout, 0xff, 64 * 128 * 4));
  for (int blk = 0; blk < 2; ++blk) dq_test<<<1, 128, 48 * 1024 + 1024>>>(dp, dk, dout, blk);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(got.data(), dout, 64 * 128 * 4, cudaMemcpyDeviceToHost));
  e = rel_err(got, ref);
  printf("selftest dq (SS, A and B MN-major SW128): rel err %.2e %s\n", e, e < 1e-3 ? "ok" : "WRONG");
  fails += e >= 1e-3;
  printf("selftest: %s\n", fails ? "FAILED" : "passed");
  return fails ? 1 : 0;
}
