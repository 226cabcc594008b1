// Elementwise kernels for one element type DT (defines: DT, DTK = 0 float-like, 1 int32, 2 uint32, 3 bool).
// Op codes mirror src/kernels/elementwise.ts. Floating maths runs in float32; results round once.
#include "common.cuh"

#ifndef DT
#define DT float
#define DTK 0
#endif

typedef DT elem_t;

#if DTK == 0
__device__ __forceinline__ float sigmoid_f(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}
__device__ __forceinline__ float softplus_f(float x) { return x > 0.f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

__device__ __forceinline__ float unary_op(int op, float x) {
  switch (op) {
    case 0: return -x;
    case 1: return fabsf(x);
    case 2: return expf(x);
    case 3: return logf(x);
    case 4: return sqrtf(x);
    case 5: return 1.f / sqrtf(x);
    case 6: return x * x;
    case 7: return 1.f / x;
    case 8: return sigmoid_f(x);
    case 9: return -softplus_f(-x);
    case 10: return tanhf(x);
    case 11: return is_nan(x) ? x : (x > 0.f ? x : 0.f);
    case 12: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case 13: return x * sigmoid_f(x);
    case 14: return softplus_f(x);
    case 15: return sinf(x);
    case 16: return cosf(x);
    case 17: return erff(x);
    case 18: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case 19: return floorf(x);
    case 20: return ceilf(x);
    case 21: return rintf(x);
    case 22: return x != 0.f ? 0.f : 1.f;
  }
  return F_NAN;
}

__device__ __forceinline__ float binary_op(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return powf(a, b);
    case 5: return (is_nan(a) || is_nan(b)) ? F_NAN : fmaxf(a, b);
    case 6: return (is_nan(a) || is_nan(b)) ? F_NAN : fminf(a, b);
    case 7: return (a != 0.f && b != 0.f) ? 1.f : 0.f;
    case 8: return (a != 0.f || b != 0.f) ? 1.f : 0.f;
  }
  return F_NAN;
}
#define LOAD(p) to_f(p)
#define STORE(v) from_f<elem_t>(v)
typedef float calc_t;
#else
// Integer and bool maths: two's-complement wrap-around, as JavaScript's Int32Array stores.
__device__ __forceinline__ elem_t unary_op(int op, elem_t x) {
#if DTK == 1
  switch (op) {
    case 0: return (int)(0u - (u32)x);
    case 1: return x < 0 ? (int)(0u - (u32)x) : x;
    case 6: return (int)((u32)x * (u32)x);
    case 18: return x > 0 ? 1 : (x < 0 ? -1 : 0);
    case 11: return x > 0 ? x : 0;
    case 22: return x ? 0 : 1;
  }
#elif DTK == 2
  switch (op) {
    case 0: return 0u - x;
    case 1: return x;
    case 6: return x * x;
    case 18: return x > 0u ? 1u : 0u;
    case 11: return x;
    case 22: return x ? 0u : 1u;
  }
#else
  switch (op) {
    case 22: return x ? 0 : 1;
    case 1: return x;
    case 11: return x;
    case 18: return x ? 1 : 0;
  }
#endif
  return 0;
}

__device__ __forceinline__ elem_t binary_op(int op, elem_t a, elem_t b) {
  switch (op) {
    case 0: return (elem_t)((u32)a + (u32)b);
    case 1: return (elem_t)((u32)a - (u32)b);
    case 2: return (elem_t)((u32)a * (u32)b);
    case 3: {
      if (b == 0) return 0;
#if DTK == 1
      if (a == (int)0x80000000 && b == -1) return a;
#endif
      return a / b;
    }
    case 4: {
      const double r = pow((double)a, (double)b);
      if (!(r == r) || r > 9.2e18 || r < -9.2e18) return 0;
      return (elem_t)(u32)(unsigned long long)(long long)r;
    }
    case 5: return a > b ? a : b;
    case 6: return a < b ? a : b;
    case 7: return (a && b) ? 1 : 0;
    case 8: return (a || b) ? 1 : 0;
  }
  return 0;
}
#define LOAD(p) (p)
#define STORE(v) (v)
typedef elem_t calc_t;
#endif

extern "C" __global__ void unary_k(const elem_t* __restrict__ x, elem_t* __restrict__ out, i64 n, int op) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    out[i] = STORE(unary_op(op, LOAD(x[i])));
  }
}

// Broadcasting binary op: g.stride[0] for a, g.stride[1] for b, output contiguous over g.shape.
extern "C" __global__ void binary_k(const elem_t* __restrict__ a, const elem_t* __restrict__ b,
                                    elem_t* __restrict__ out, i64 n, Geom g, int op) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    i64 oa, ob;
    geom_offsets2(g, i, oa, ob);
    out[i] = STORE(binary_op(op, LOAD(a[oa]), LOAD(b[ob])));
  }
}

// Same-shape fast path (no index arithmetic).
extern "C" __global__ void binary_same_k(const elem_t* __restrict__ a, const elem_t* __restrict__ b,
                                         elem_t* __restrict__ out, i64 n, int op) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    out[i] = STORE(binary_op(op, LOAD(a[i]), LOAD(b[i])));
  }
}

__device__ __forceinline__ u8 compare_op(int op, calc_t a, calc_t b) {
  switch (op) {
    case 0: return a == b;
    case 1: return a != b;
    case 2: return a < b;
    case 3: return a <= b;
    case 4: return a > b;
    case 5: return a >= b;
  }
  return 0;
}

extern "C" __global__ void compare_k(const elem_t* __restrict__ a, const elem_t* __restrict__ b,
                                     u8* __restrict__ out, i64 n, Geom g, int op) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    i64 oa, ob;
    geom_offsets2(g, i, oa, ob);
    out[i] = compare_op(op, LOAD(a[oa]), LOAD(b[ob]));
  }
}

// cond ? a : b with cond at stride[0], a at stride[1], b at stride[2].
extern "C" __global__ void where_k(const u8* __restrict__ cond, const elem_t* __restrict__ a,
                                   const elem_t* __restrict__ b, elem_t* __restrict__ out, i64 n, Geom g) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    i64 oc, oa, ob;
    geom_offsets3(g, i, oc, oa, ob);
    out[i] = cond[oc] ? a[oa] : b[ob];
  }
}
