// Reductions, arg-reductions, softmax and norms for element type DT (kind DTK: 0 float-like, 1 int32, 2 uint32).
// Op codes: 0 sum, 1 mean, 2 max, 3 min. Floating accumulation in float32, integer sums in 64 bits.
#include "common.cuh"

#ifndef DT
#define DT float
#define DTK 0
#endif

#if DTK == 0
typedef float acc_t;
__device__ __forceinline__ acc_t load_acc(DT v) { return to_f(v); }
__device__ __forceinline__ DT store_acc(acc_t v) { return from_f<DT>(v); }
__device__ __forceinline__ acc_t acc_init(int op) { return op == 2 ? -F_INF : (op == 3 ? F_INF : 0.f); }
__device__ __forceinline__ acc_t combine(int op, acc_t a, acc_t b) {
  if (op <= 1) return a + b;
  if (is_nan(a)) return a;
  if (is_nan(b)) return b;
  return op == 2 ? fmaxf(a, b) : fminf(a, b);
}
__device__ __forceinline__ acc_t finish(int op, acc_t a, float inv_count) { return op == 1 ? a * inv_count : a; }
#else
typedef long long acc_t;
__device__ __forceinline__ acc_t load_acc(DT v) { return (acc_t)v; }
__device__ __forceinline__ DT store_acc(acc_t v) { return (DT)(u32)(unsigned long long)v; }
__device__ __forceinline__ acc_t acc_init(int op) {
#if DTK == 1
  return op == 2 ? -2147483648LL : (op == 3 ? 2147483647LL : 0);
#else
  return op == 2 ? 0 : (op == 3 ? 4294967295LL : 0);
#endif
}
__device__ __forceinline__ acc_t combine(int op, acc_t a, acc_t b) {
  if (op <= 1) return a + b;
  return op == 2 ? (a > b ? a : b) : (a < b ? a : b);
}
__device__ __forceinline__ acc_t finish(int op, acc_t a, float inv_count) {
  // JavaScript stores mean's float result through ToInt32: truncate the exact quotient.
  return op == 1 ? (acc_t)((double)a / (double)rintf(1.0f / inv_count)) : a;
}
#endif

__device__ __forceinline__ acc_t block_combine(int op, acc_t v, acc_t* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nw ? scratch[lane] : acc_init(op);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
  }
  return v;
}

// One block per row of `len` contiguous elements.
extern "C" __global__ void reduce_rows_k(const DT* __restrict__ x, DT* __restrict__ out, int len, int op,
                                         float inv_count) {
  __shared__ acc_t scratch[32];
  const DT* row = x + (i64)blockIdx.x * len;
  acc_t v = acc_init(op);
  for (int j = threadIdx.x; j < len; j += blockDim.x) v = combine(op, v, load_acc(row[j]));
  v = block_combine(op, v, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = store_acc(finish(op, v, inv_count));
}

// Few long rows (a whole tensor summed to one value): one block per row would leave all but a
// few SMs idle, so blocks (part, row) reduce `chunk` elements each into partials in acc_t (float32,
// or exact 64-bit integers), and reduce_partials_k finishes each row.
extern "C" __global__ void reduce_rows_partial_k(const DT* __restrict__ x, acc_t* __restrict__ partial, int len,
                                                 int chunk, int op) {
  __shared__ acc_t scratch[32];
  const DT* row = x + (i64)blockIdx.y * len;
  const int begin = blockIdx.x * chunk, end = min(len, begin + chunk);
  acc_t v = acc_init(op);
  for (int j = begin + threadIdx.x; j < end; j += blockDim.x) v = combine(op, v, load_acc(row[j]));
  v = block_combine(op, v, scratch);
  if (threadIdx.x == 0) partial[(i64)blockIdx.y * gridDim.x + blockIdx.x] = v;
}

extern "C" __global__ void reduce_partials_k(const acc_t* __restrict__ partial, DT* __restrict__ out, int parts,
                                             int op, float inv_count) {
  __shared__ acc_t scratch[32];
  const acc_t* p = partial + (i64)blockIdx.x * parts;
  acc_t v = acc_init(op);
  for (int j = threadIdx.x; j < parts; j += blockDim.x) v = combine(op, v, p[j]);
  v = block_combine(op, v, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = store_acc(finish(op, v, inv_count));
}

// x viewed as [outer, len, inner]; one thread per (outer, inner), coalesced over inner.
extern "C" __global__ void reduce_mid_k(const DT* __restrict__ x, DT* __restrict__ out, i64 outer, int len,
                                        int inner, int op, float inv_count) {
  const i64 n = outer * inner;
  for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 o = t / inner, i = t - o * inner;
    const DT* p = x + o * len * inner + i;
    acc_t v = acc_init(op);
    for (int j = 0; j < len; ++j) v = combine(op, v, load_acc(p[(i64)j * inner]));
    out[t] = store_acc(finish(op, v, inv_count));
  }
}

// argmax / argmin along the middle axis of [outer, len, inner]; ties keep the lowest index,
// the first NaN wins (as the CPU reference).
extern "C" __global__ void argreduce_k(const DT* __restrict__ x, int* __restrict__ out, i64 outer, int len,
                                       int inner, int is_max) {
  const i64 n = outer * inner;
  for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 o = t / inner, i = t - o * inner;
    const DT* p = x + o * len * inner + i;
#if DTK == 0
    float best = to_f(p[0]);
    int best_i = 0;
    for (int j = 1; j < len; ++j) {
      const float v = to_f(p[(i64)j * inner]);
      const bool better = is_max ? v > best : v < best;
      if (better || (is_nan(v) && !is_nan(best))) {
        best = v;
        best_i = j;
      }
    }
#else
    DT best = p[0];
    int best_i = 0;
    for (int j = 1; j < len; ++j) {
      const DT v = p[(i64)j * inner];
      if (is_max ? v > best : v < best) {
        best = v;
        best_i = j;
      }
    }
#endif
    out[t] = best_i;
  }
}

#if DTK == 0
// Softmax / log-softmax over rows of d contiguous elements, one block per row.
extern "C" __global__ void softmax_k(const DT* __restrict__ x, DT* __restrict__ out, int d, int is_log) {
  __shared__ float scratch[32];
  const DT* row = x + (i64)blockIdx.x * d;
  DT* orow = out + (i64)blockIdx.x * d;
  float m = -F_INF;
  for (int j = threadIdx.x; j < d; j += blockDim.x) m = fmaxf(m, to_f(row[j]));
  m = block_max(m, scratch);
  float s = 0.f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) s += expf(to_f(row[j]) - m);
  s = block_sum(s, scratch);
  if (is_log) {
    const float lse = m + logf(s);
    for (int j = threadIdx.x; j < d; j += blockDim.x) orow[j] = from_f<DT>(to_f(row[j]) - lse);
  } else {
    const float inv = 1.f / s;
    for (int j = threadIdx.x; j < d; j += blockDim.x) orow[j] = from_f<DT>(expf(to_f(row[j]) - m) * inv);
  }
}

// y = x / sqrt(mean(x^2) + eps) * w (w optional), one block per row.
extern "C" __global__ void rmsnorm_k(const DT* __restrict__ x, const DT* __restrict__ w, DT* __restrict__ out,
                                     int d, float eps, int has_w) {
  __shared__ float scratch[32];
  const DT* row = x + (i64)blockIdx.x * d;
  DT* orow = out + (i64)blockIdx.x * d;
  float ss = 0.f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = to_f(row[j]);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float inv = 1.f / sqrtf(ss / (float)d + eps);
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = to_f(row[j]) * inv;
    orow[j] = from_f<DT>(has_w ? v * to_f(w[j]) : v);
  }
}

// y = (x - mean) / sqrt(var + eps) * w + b (w, b optional), one block per row; two passes.
extern "C" __global__ void layernorm_k(const DT* __restrict__ x, const DT* __restrict__ w, const DT* __restrict__ b,
                                       DT* __restrict__ out, int d, float eps, int has_w, int has_b) {
  __shared__ float scratch[32];
  const DT* row = x + (i64)blockIdx.x * d;
  DT* orow = out + (i64)blockIdx.x * d;
  float s = 0.f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) s += to_f(row[j]);
  const float mu = block_sum(s, scratch) / (float)d;
  float v = 0.f;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    const float c = to_f(row[j]) - mu;
    v += c * c;
  }
  const float inv = 1.f / sqrtf(block_sum(v, scratch) / (float)d + eps);
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float y = (to_f(row[j]) - mu) * inv;
    if (has_w) y *= to_f(w[j]);
    if (has_b) y += to_f(b[j]);
    orow[j] = from_f<DT>(y);
  }
}
#endif
