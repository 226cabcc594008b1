// Top-k along the last axis for element type DT (kind DTK: 0 float-like, 1 int32, 2 uint32).
// Order: by key (NaN counts as +inf when largest, -inf when smallest), ties by lower index; the
// values written are the original elements.
#include "common.cuh"

#ifndef DT
#define DT float
#define DTK 0
#endif

#if DTK == 0
typedef float key_t_;
__device__ __forceinline__ key_t_ key_of(DT v, int largest) {
  const float f = to_f(v);
  return is_nan(f) ? (largest ? F_INF : -F_INF) : f;
}
#else
typedef DT key_t_;
__device__ __forceinline__ key_t_ key_of(DT v, int) { return v; }
#endif

// True when (ka, ia) comes before (kb, ib) in the output order.
__device__ __forceinline__ bool before(key_t_ ka, int ia, key_t_ kb, int ib, int largest) {
  if (ka != kb) return largest ? ka > kb : ka < kb;
  return ia < ib;
}

#define SORT_CAP 4096

// One block per row; bitonic sort of (key, index) pairs in shared memory (d <= SORT_CAP).
extern "C" __global__ void topk_sort_k(const DT* __restrict__ x, DT* __restrict__ values, int* __restrict__ indices,
                                       int d, int k, int p, int largest) {
  __shared__ key_t_ keys[SORT_CAP];
  __shared__ int ids[SORT_CAP];
  const DT* row = x + (i64)blockIdx.x * d;
  for (int j = threadIdx.x; j < p; j += blockDim.x) {
    if (j < d) {
      keys[j] = key_of(row[j], largest);
      ids[j] = j;
    } else {
      ids[j] = -1;  // padding sorts last
    }
  }
  __syncthreads();
  for (int size = 2; size <= p; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < p / 2; t += blockDim.x) {
        const int lo = 2 * t - (t & (stride - 1));
        const int hi = lo + stride;
        const bool asc = (lo & size) == 0;
        const int ia = ids[lo], ib = ids[hi];
        bool hi_first;
        if (ia < 0) hi_first = ib >= 0;
        else if (ib < 0) hi_first = false;
        else hi_first = before(keys[hi], ib, keys[lo], ia, largest);
        if (hi_first == asc) {
          const key_t_ tk = keys[lo];
          keys[lo] = keys[hi];
          keys[hi] = tk;
          ids[lo] = ib;
          ids[hi] = ia;
        }
      }
      __syncthreads();
    }
  }
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    const int id = ids[j];
    values[(i64)blockIdx.x * k + j] = row[id];
    indices[(i64)blockIdx.x * k + j] = id;
  }
}

// Rows too long for shared memory: k rounds of a block-wide search for the first element that
// comes strictly after the previous pick in the order.
extern "C" __global__ void topk_select_k(const DT* __restrict__ x, DT* __restrict__ values, int* __restrict__ indices,
                                         int d, int k, int largest) {
  __shared__ key_t_ skey[32];
  __shared__ int sid[32];
  const DT* row = x + (i64)blockIdx.x * d;
  key_t_ prev_k = 0;
  int prev_i = -1;
  for (int r = 0; r < k; ++r) {
    key_t_ bk = 0;
    int bi = -1;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
      const key_t_ kj = key_of(row[j], largest);
      if (prev_i >= 0 && !before(prev_k, prev_i, kj, j, largest)) continue;
      if (bi < 0 || before(kj, j, bk, bi, largest)) {
        bk = kj;
        bi = j;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const key_t_ ok = __shfl_xor_sync(0xffffffffu, bk, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi >= 0 && (bi < 0 || before(ok, oi, bk, bi, largest))) {
        bk = ok;
        bi = oi;
      }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
      skey[warp] = bk;
      sid[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nw; ++w) {
        if (sid[w] >= 0 && (bi < 0 || before(skey[w], sid[w], bk, bi, largest))) {
          bk = skey[w];
          bi = sid[w];
        }
      }
      skey[0] = bk;
      sid[0] = bi;
      values[(i64)blockIdx.x * k + r] = row[bi];
      indices[(i64)blockIdx.x * k + r] = bi;
    }
    __syncthreads();
    prev_k = skey[0];
    prev_i = sid[0];
    __syncthreads();
  }
}
