// Attention helpers and the general (SIMT) attention kernels for any float type DT and head dims up
// to 256: float32 inputs, head dims the tensor-core kernels do not cover, and negative scales.
// One warp per query row; lanes split the head dimension.
#include "mma.cuh"

#ifndef MAXD
#define MAXD 256
#endif
#define PER_LANE (MAXD / 32)

// Per-tile position bounds for the flash kernels: key tiles (TileBounds) and query tiles (min, max).
extern "C" __global__ void attn_key_bounds_k(const int* __restrict__ kpos, const u8* __restrict__ keep,
                                             TileBounds* __restrict__ out, int BH, int Tk, int tile, int has_keep) {
  const int ntiles = (Tk + tile - 1) / tile;
  const i64 n = (i64)BH * ntiles;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 bh = i / ntiles;
    const int t = (int)(i - bh * ntiles);
    const int j0 = t * tile, j1 = min(Tk, j0 + tile);
    TileBounds r;
    r.kmin = 0x7fffffff;
    r.kmax = (int)0x80000000;
    r.any_keep = 0;
    r.full = (j1 - j0) == tile;
    for (int j = j0; j < j1; ++j) {
      const int p = kpos[bh * Tk + j];
      r.kmin = min(r.kmin, p);
      r.kmax = max(r.kmax, p);
      if (has_keep && keep[bh * Tk + j]) r.any_keep = 1;
    }
    out[i] = r;
  }
}

extern "C" __global__ void attn_query_bounds_k(const int* __restrict__ qpos, int2* __restrict__ out, int BH, int Tq,
                                               int tile) {
  const int ntiles = (Tq + tile - 1) / tile;
  const i64 n = (i64)BH * ntiles;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 bh = i / ntiles;
    const int t = (int)(i - bh * ntiles);
    const int j0 = t * tile, j1 = min(Tq, j0 + tile);
    int lo = 0x7fffffff, hi = (int)0x80000000;
    for (int j = j0; j < j1; ++j) {
      const int p = qpos[bh * Tq + j];
      lo = min(lo, p);
      hi = max(hi, p);
    }
    int2 r;
    r.x = lo;
    r.y = hi;
    out[i] = r;
  }
}

// delta[row] = sum_d dout[row, d] * out[row, d] (float32), one warp per row.
extern "C" __global__ void attn_delta_k(const DT* __restrict__ o, const DT* __restrict__ dout, float* __restrict__ delta,
                                        i64 rows, int Dv) {
  const i64 row = blockIdx.x * (i64)(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float s = 0.f;
  for (int d = lane; d < Dv; d += 32) s += to_f(o[row * Dv + d]) * to_f(dout[row * Dv + d]);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// Forward: out [B, Hq, Tq, Dv], lse [B, Hq, Tq]; online softmax over the visible keys.
extern "C" __global__ void attn_fwd_simt_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                                           const int* __restrict__ qpos, const int* __restrict__ kpos,
                                           const u8* __restrict__ keep, DT* __restrict__ out, float* __restrict__ lse,
                                           int B, int Hq, int Hk, int Tq, int Tk, int D, int Dv, float scale, int causal,
                                           int window, int sinks, int has_keep) {
  const i64 row = blockIdx.x * (i64)(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= (i64)B * Hq * Tq) return;
  const int lane = threadIdx.x & 31;
  const i64 bh = row / Tq;
  const int b = (int)(bh / Hq), h = (int)(bh - (i64)b * Hq);
  const i64 kvh = (i64)b * Hk + h / (Hq / Hk);
  const int qp = qpos[row];
  float qr[PER_LANE], acc[PER_LANE];
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int d = lane + 32 * e;
    qr[e] = d < D ? to_f(q[row * D + d]) : 0.f;
    acc[e] = 0.f;
  }
  float m = -F_INF, l = 0.f;
  for (int j = 0; j < Tk; ++j) {
    const i64 kr = kvh * Tk + j;
    const int kv = has_keep ? (int)keep[kr] : -1;
    if (!key_visible(qp, kpos[kr], kv, causal, window, sinks)) continue;
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int d = lane + 32 * e;
      if (d < D) s += qr[e] * to_f(k[kr * D + d]);
    }
    s = warp_sum(s) * scale;
    if (s > m) {
      const float c = expf(m - s);
      l *= c;
#pragma unroll
      for (int e = 0; e < PER_LANE; ++e) acc[e] *= c;
      m = s;
    }
    const float p = expf(s - m);
    l += p;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int d = lane + 32 * e;
      if (d < Dv) acc[e] += p * to_f(v[kr * Dv + d]);
    }
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int d = lane + 32 * e;
    if (d < Dv) out[row * Dv + d] = from_f<DT>(acc[e] * inv);
  }
  if (lane == 0) lse[row] = l > 0.f ? m + logf(l) : -F_INF;
}

// Backward: dq written per row; dk, dv accumulated atomically in float32 (dk_acc, dv_acc, zeroed).
extern "C" __global__ void attn_bwd_simt_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                                           const DT* __restrict__ o, const float* __restrict__ lse,
                                           const DT* __restrict__ dout, const int* __restrict__ qpos,
                                           const int* __restrict__ kpos, const u8* __restrict__ keep,
                                           DT* __restrict__ dq, float* __restrict__ dk_acc, float* __restrict__ dv_acc,
                                           int B, int Hq, int Hk, int Tq, int Tk, int D, int Dv, float scale,
                                           int causal, int window, int sinks, int has_keep) {
  const i64 row = blockIdx.x * (i64)(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= (i64)B * Hq * Tq) return;
  const int lane = threadIdx.x & 31;
  const i64 bh = row / Tq;
  const int b = (int)(bh / Hq), h = (int)(bh - (i64)b * Hq);
  const i64 kvh = (i64)b * Hk + h / (Hq / Hk);
  const int qp = qpos[row];
  const float L = lse[row];
  float qr[PER_LANE], dor[PER_LANE], dqa[PER_LANE];
  float dl = 0.f;
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int d = lane + 32 * e;
    qr[e] = d < D ? to_f(q[row * D + d]) : 0.f;
    dor[e] = d < Dv ? to_f(dout[row * Dv + d]) : 0.f;
    if (d < Dv) dl += dor[e] * to_f(o[row * Dv + d]);
    dqa[e] = 0.f;
  }
  dl = warp_sum(dl);
  if (L != -F_INF) {
    for (int j = 0; j < Tk; ++j) {
      const i64 kr = kvh * Tk + j;
      const int kv = has_keep ? (int)keep[kr] : -1;
      if (!key_visible(qp, kpos[kr], kv, causal, window, sinks)) continue;
      float s = 0.f, dp = 0.f;
#pragma unroll
      for (int e = 0; e < PER_LANE; ++e) {
        const int d = lane + 32 * e;
        if (d < D) s += qr[e] * to_f(k[kr * D + d]);
        if (d < Dv) dp += dor[e] * to_f(v[kr * Dv + d]);
      }
      s = warp_sum(s);
      dp = warp_sum(dp);
      const float p = expf(s * scale - L);
      const float ds = p * (dp - dl) * scale;
#pragma unroll
      for (int e = 0; e < PER_LANE; ++e) {
        const int d = lane + 32 * e;
        if (d < D) {
          dqa[e] += ds * to_f(k[kr * D + d]);
          atomicAdd(dk_acc + kr * D + d, ds * qr[e]);
        }
        if (d < Dv) atomicAdd(dv_acc + kr * Dv + d, p * dor[e]);
      }
    }
  }
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int d = lane + 32 * e;
    if (d < D) dq[row * D + d] = from_f<DT>(dqa[e]);
  }
}
