// Tensor-core building blocks for the flash-attention kernels (sm_80+ instructions, run on Hopper):
// cp.async, ldmatrix, mma.sync m16n8k16 with float32 accumulation, and the attention mask rule.
#pragma once
#include "common.cuh"

#ifndef DT
#define DT __nv_bfloat16
#endif

#ifdef ATTNKIT_EMULATE
// CPU emulation (tests without a GPU): see test/fake-cuda/emu.h.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  if (src_bytes) memcpy(dst, src, 16);
  else memset(dst, 0, 16);
}
__device__ __forceinline__ void cp_async_commit() {}
template <int N> __device__ __forceinline__ void cp_async_wait() {}
__device__ __forceinline__ void ldmatrix_x4(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  u32 r[4];
  emu::ldmatrix_x4(r, p, false);
  r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  u32 r[4];
  emu::ldmatrix_x4(r, p, true);
  r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
__device__ __forceinline__ void mma16816(float* d, const u32* a, u32 b0, u32 b1) {
#if defined(DT_IS_HALF)
  emu::mma16816(d, a, b0, b1, true);
#else
  emu::mma16816(d, a, b0, b1, false);
#endif
}
#else
__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

// 16-byte async copy global -> shared; src_bytes 0 fills the 16 bytes with zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}

// d += a (16x16, row) * b (16x8, col), float32 accumulators.
__device__ __forceinline__ void mma16816(float* d, const u32* a, u32 b0, u32 b1) {
#if defined(DT_IS_HALF)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

#endif

// Two floats as one register of two 16-bit values (lo in the low half).
__device__ __forceinline__ u32 pack2(float lo, float hi) {
#if defined(DT_IS_HALF)
  __half2 h = __floats2half2_rn(lo, hi);
#else
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
#endif
  return *reinterpret_cast<u32*>(&h);
}

__device__ __forceinline__ float2 unpack2(u32 v) {
#if defined(DT_IS_HALF)
  return __half22float2(*reinterpret_cast<__half2*>(&v));
#else
  return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&v));
#endif
}

// Element offset of 16-byte chunk `chunk` of row `row` in a tile whose rows hold `row_chunks`
// chunks (>= 8), XOR-swizzled so that ldmatrix's eight row reads hit distinct banks.
__device__ __forceinline__ int swz(int row, int chunk, int row_chunks) {
  return row * row_chunks * 8 + ((chunk ^ (row & 7)) << 3);
}

// 2^x: the MUFU instruction directly (flush-to-zero) with FAST_EXP, else exp2f.
#if defined(FAST_EXP) && !defined(ATTNKIT_EMULATE)
__device__ __forceinline__ float ex2_fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#define EXP2(x) ex2_fast(x)
#else
#define EXP2(x) exp2f(x)
#endif

// The contract's visibility rule (packages/core/src/attention-mask.ts); keep_v < 0: no keep mask.
__device__ __forceinline__ bool key_visible(int qp, int kp, int keep_v, int causal, int window, int sinks) {
  if (causal && kp > qp) return false;
  if (window <= 0 && keep_v < 0) return true;
  if (window > 0) {
    const long long d = (long long)qp - (long long)kp;
    if ((d < 0 ? -d : d) < window) return true;
  }
  if (kp < sinks) return true;
  return keep_v == 1;
}

// Per key tile: min and max key position, whether any key is kept, whether the tile is full.
struct TileBounds {
  int kmin, kmax, any_keep, full;
};

// Can any (query in [qmin, qmax], key in the tile) pair be visible?
__device__ __forceinline__ bool tile_may_be_visible(int qmin, int qmax, const TileBounds& kb, int causal, int window,
                                                    int sinks, int has_keep) {
  if (causal && kb.kmin > qmax) return false;
  if (window <= 0 && !has_keep) return true;
  if (window > 0) {
    const long long gap = max((long long)kb.kmin - qmax, (long long)qmin - kb.kmax);
    if (gap < window) return true;
  }
  if (kb.kmin < sinks) return true;
  return has_keep && kb.any_keep;
}

// The lowest and highest position among rows [q0, min(q0 + rows, tq)) of `pos`, for every thread of
// the block: a CTA's query range, against which whole key tiles are skipped or left unmasked.
// Every thread of the block must call it (it synchronises).
__device__ __forceinline__ void block_position_range(const int* pos, int q0, int rows, int tq, int& lo, int& hi) {
  __shared__ int s_lo, s_hi;
  const int tid = threadIdx.x, nthreads = blockDim.x;
  if (tid == 0) {
    s_lo = 0x7fffffff;
    s_hi = (int)0x80000000;
  }
  __syncthreads();
  for (int r = tid; r < rows; r += nthreads) {
    if (q0 + r >= tq) break;
    const int p = pos[q0 + r];
    atomicMin(&s_lo, p);
    atomicMax(&s_hi, p);
  }
  __syncthreads();
  lo = s_lo;
  hi = s_hi;
}

// Is every (query, key) pair of the tile visible (no masking needed)?
__device__ __forceinline__ bool tile_all_visible(int qmin, int qmax, const TileBounds& kb, int causal, int window,
                                                 int sinks, int has_keep) {
  if (!kb.full) return false;
  if (causal && kb.kmax > qmin) return false;
  if (window <= 0 && !has_keep) return true;
  if (window > 0 && (long long)qmax - kb.kmin < window && (long long)kb.kmax - qmin < window) return true;
  if (kb.kmax < sinks) return true;
  return false;
}
