// dtype conversion from DT (kind DTK) to DTO (kind DTOK): kinds 0 float-like, 1 int32, 2 uint32, 3 bool.
// Float to integer truncates toward zero and wraps modulo 2^32 (JavaScript's ToInt32); to bool is x != 0.
#include "common.cuh"

#ifndef DT
#define DT float
#define DTK 0
#define DTO int
#define DTOK 1
#endif

__device__ __forceinline__ DTO convert(DT x) {
#if DTOK == 3
#if DTK == 0
  return to_f(x) != 0.f ? 1 : 0;
#else
  return x != 0 ? 1 : 0;
#endif
#elif DTOK == 1
#if DTK == 0
  return f2i_wrap(to_f(x));
#else
  return (int)x;
#endif
#elif DTOK == 2
#if DTK == 0
  return f2u_wrap(to_f(x));
#else
  return (u32)x;
#endif
#else
#if DTK == 0
  return from_f<DTO>(to_f(x));
#elif DTK == 1
  return from_f<DTO>((float)(int)x);
#else
  return from_f<DTO>((float)x);
#endif
#endif
}

extern "C" __global__ void cast_k(const DT* __restrict__ x, DTO* __restrict__ out, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    out[i] = convert(x[i]);
  }
}
