// Data movement that only copies elements, for any dtype of ES bytes (1, 2 or 4): strided copies
// (transpose, slice, concat, pad, broadcast), gather and take-along-axis.
#include "common.cuh"

#ifndef ES
#define ES 4
#endif
#if ES == 1
typedef u8 E;
#elif ES == 2
typedef u16 E;
#else
typedef u32 E;
#endif

// dst[dst_base + sum c*stride[1]] = src[src_base + sum c*stride[0]] for every coordinate c of g.shape.
extern "C" __global__ void strided_copy_k(const E* __restrict__ src, E* __restrict__ dst, i64 n, Geom g,
                                          i64 src_base, i64 dst_base) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    i64 os, od;
    geom_offsets2(g, i, os, od);
    dst[dst_base + od] = src[src_base + os];
  }
}

// out [outer, nidx, inner] = x [outer, len, inner] at idx.
extern "C" __global__ void gather_k(const E* __restrict__ x, const int* __restrict__ idx, E* __restrict__ out,
                                    i64 n, int len, int nidx, int inner, int* err) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 r = i % inner;
    const i64 t = i / inner;
    const i64 j = t % nidx;
    const i64 o = t / nidx;
    const int k = idx[j];
    if (k < 0 || k >= len) {
      report_bad_index(err, 1, k, len);
      out[i] = 0;
      continue;
    }
    out[i] = x[(o * len + k) * inner + r];
  }
}

// out (indices' shape) = x at idx along the axis: g.shape = indices' shape, g.stride[0] = x's strides
// with the axis' stride zeroed, axis_stride = x's stride of the axis.
extern "C" __global__ void take_along_k(const E* __restrict__ x, const int* __restrict__ idx, E* __restrict__ out,
                                        i64 n, Geom g, int axis_stride, int len, int* err) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const int k = idx[i];
    if (k < 0 || k >= len) {
      report_bad_index(err, 2, k, len);
      out[i] = 0;
      continue;
    }
    out[i] = x[geom_offset(g, i, 0) + (i64)k * axis_stride];
  }
}
