// Shared helpers for attnkit's CUDA kernels. Compiled by NVRTC at run time (and by nvcc in CI).
// No standard library headers: NVRTC provides cuda_fp16.h and cuda_bf16.h itself.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define MAX_RANK 8

// Dynamic shared memory (the emulator used by the tests gives each block a buffer instead).
#ifdef ATTNKIT_EMULATE
#define DYN_SMEM(type, name) type* name = reinterpret_cast<type*>(emu::dyn_smem())
#else
#define DYN_SMEM(type, name) extern __shared__ __align__(128) type name[]
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

// INFINITY without <math.h> (NVRTC has no standard headers).
#define F_INF (__int_as_float(0x7f800000))
#define F_NAN (__int_as_float(0x7fc00000))

// Shape and up to three operands' strides (element units); mirrors Geom in src/launch-args.ts.
struct Geom {
  int rank;
  int shape[MAX_RANK];
  int stride[3][MAX_RANK];
};

// Offset of flat (row-major over g.shape) index i into operand s.
__device__ __forceinline__ i64 geom_offset(const Geom& g, i64 i, int s) {
  i64 off = 0;
  for (int d = g.rank - 1; d >= 0; --d) {
    const int n = g.shape[d];
    const i64 q = i / n;
    off += (i - q * n) * (i64)g.stride[s][d];
    i = q;
  }
  return off;
}

__device__ __forceinline__ void geom_offsets2(const Geom& g, i64 i, i64& o0, i64& o1) {
  o0 = 0;
  o1 = 0;
  for (int d = g.rank - 1; d >= 0; --d) {
    const int n = g.shape[d];
    const i64 q = i / n;
    const i64 c = i - q * n;
    o0 += c * (i64)g.stride[0][d];
    o1 += c * (i64)g.stride[1][d];
    i = q;
  }
}

__device__ __forceinline__ void geom_offsets3(const Geom& g, i64 i, i64& o0, i64& o1, i64& o2) {
  o0 = 0;
  o1 = 0;
  o2 = 0;
  for (int d = g.rank - 1; d >= 0; --d) {
    const int n = g.shape[d];
    const i64 q = i / n;
    const i64 c = i - q * n;
    o0 += c * (i64)g.stride[0][d];
    o1 += c * (i64)g.stride[1][d];
    o2 += c * (i64)g.stride[2][d];
    i = q;
  }
}

// Conversions to and from float (compute type of the floating kernels).
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(int x) { return (float)x; }
__device__ __forceinline__ float to_f(u32 x) { return (float)x; }
__device__ __forceinline__ float to_f(u8 x) { return (float)x; }

template <typename Out> __device__ __forceinline__ Out from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Float to integer with JavaScript's ToInt32/ToUint32 wrap-around (trunc, then modulo 2^32); NaN -> 0.
__device__ __forceinline__ int f2i_wrap(float x) {
  if (!(x == x)) return 0;
  const float t = truncf(x);
  if (fabsf(t) >= 9.2e18f) return 0;
  return (int)(u32)(unsigned long long)(long long)t;
}
__device__ __forceinline__ u32 f2u_wrap(float x) { return (u32)f2i_wrap(x); }

__device__ __forceinline__ bool is_nan(float x) { return x != x; }

// Warp and block reductions (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; every thread gets the result. `scratch` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : -F_INF;
  return warp_max(v);
}

// Out-of-range index report: the first bad index wins; the host reads it at the next sync.
// err[0] = op code, err[1] = index, err[2] = bound.
__device__ __forceinline__ void report_bad_index(int* err, int code, int index, int bound) {
  if (atomicCAS(err, 0, code) == 0) {
    err[1] = index;
    err[2] = bound;
  }
}
