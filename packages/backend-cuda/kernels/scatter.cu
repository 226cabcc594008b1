// scatter-add: acc (x's shape, accumulator type DTA: float, int or unsigned) += updates (type DTU) at
// indices along an axis. g.shape = indices' shape; g.stride[0] = acc's strides with the axis zeroed.
#include "common.cuh"

#ifndef DTU
#define DTU float
#define DTA float
#endif

__device__ __forceinline__ DTA upd_value(DTU v) {
#if defined(DTA_IS_FLOAT)
  return to_f(v);
#else
  return (DTA)v;
#endif
}

extern "C" __global__ void scatter_add_k(const int* __restrict__ idx, const DTU* __restrict__ upd, DTA* acc, i64 n,
                                         Geom g, int axis_stride, int len, int* err) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const int k = idx[i];
    if (k < 0 || k >= len) {
      report_bad_index(err, 3, k, len);
      continue;
    }
    atomicAdd(acc + geom_offset(g, i, 0) + (i64)k * axis_stride, upd_value(upd[i]));
  }
}
