import { cudaTiles } from './tiles.js'

/**
 * CUDA C source of the fused MoSA kernels for one head dimension (NVRTC or nvcc; float32 data,
 * float32 accumulation; RoPE angles in double). Every kernel runs 256 threads. Binding follows
 * core's ProgramSpec convention: input pointers, output pointers, then scalars.
 *
 * Kernels (per batch element b and MoSA head h; K = selected tokens, C = dModel):
 *  mosa_select                  radix top-k of the router logits + compaction in position order
 *  mosa_project                 gathered rows x W_h^T for Q, K, V + RoPE at original positions
 *  mosa_attend                  causal flash attention among the K tokens (+ log-sum-exp)
 *  mosa_out_scatter             (score * out) x Wo_h^T, atomically added at the selected rows
 *  mosa_out_backward            d out and d score from dy (gathered rows) x Wo_h
 *  mosa_attend_backward_kv      dK, dV per key tile
 *  mosa_attend_backward_q       dQ per query tile
 *  mosa_project_backward_input  [dq | dk | dv] x W_h, atomically added at the selected rows of dx
 *  mosa_weight_grad_qkv         dWq, dWk, dWv = [dq | dk | dv]^T x gathered x rows
 *  mosa_weight_grad_out         dWo = gathered dy rows^T x (score * out)
 */
export function mosaCudaSource(D: number): string {
  const t = cudaTiles(D)
  if (D % 32 !== 0 || D > 128)
    throw new Error(`mosaCudaSource: head dim must be a multiple of 32 up to 128, got ${D}`)
  return `// @attnkit/mosa fused kernels, head dim ${D}
#define D ${D}
#define TN (D / 16)
#define BM ${t.BM}
#define BN ${t.BN}
#define BK ${t.BK}
#define BQ ${t.BQ}
#define BKV ${t.BKV}
#define BB ${t.BB}
#define TM (BM / 16)
typedef unsigned int u32;
// NVRTC has no standard headers: no size_t or INFINITY unless we define them.
typedef unsigned long long usize;
#ifndef INFINITY
#define INFINITY (__int_as_float(0x7f800000))
#endif

__device__ __forceinline__ u32 mosa_key(float f) {
  // Order-preserving map of floats to unsigned ints (-0 counts as +0, NaN above +inf).
  u32 b = __float_as_uint(f);
  if (b == 0x80000000u) b = 0u;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float mosa_sum16(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 8);
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v;
}

__device__ __forceinline__ float mosa_max16(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 8));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return v;
}

// One block per (b, h) row of logits [B*Hs, T]: 4 radix passes find the k-th largest key, then
// a scan over contiguous chunks writes the selected positions in ascending order, so no sort.
extern "C" __global__ void __launch_bounds__(256) mosa_select(const float* __restrict__ logits,
    int* __restrict__ indices, float* __restrict__ scores, int T, int k) {
  __shared__ u32 hist[256];
  __shared__ u32 scanGt[256];
  __shared__ u32 scanEq[256];
  __shared__ u32 sPrefix;
  __shared__ u32 sNeed;
  const int tid = threadIdx.x;
  const usize row = blockIdx.x;
  const float* x = logits + row * (usize)T;
  u32 prefix = 0u, mask = 0u, need = (u32)k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    hist[tid] = 0u;
    __syncthreads();
    for (int i = tid; i < T; i += 256) {
      u32 key = mosa_key(x[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      u32 above = 0u;
      for (int d = 255; d >= 0; --d) {
        u32 c = hist[d];
        if (above + c >= need) {
          sPrefix = prefix | ((u32)d << shift);
          sNeed = need - above;
          break;
        }
        above += c;
      }
    }
    __syncthreads();
    prefix = sPrefix;
    need = sNeed;
    mask |= 255u << shift;
  }
  // prefix is now the k-th largest key; take every larger key and the first 'need' equal ones.
  const int chunk = (T + 255) / 256;
  const int begin = min(T, tid * chunk);
  const int end = min(T, begin + chunk);
  u32 gt = 0u, eq = 0u;
  for (int i = begin; i < end; ++i) {
    u32 key = mosa_key(x[i]);
    gt += key > prefix ? 1u : 0u;
    eq += key == prefix ? 1u : 0u;
  }
  scanGt[tid] = gt;
  scanEq[tid] = eq;
  __syncthreads();
  if (tid == 0) {
    u32 a = 0u, b = 0u;
    for (int i = 0; i < 256; ++i) {
      u32 g = scanGt[i], e = scanEq[i];
      scanGt[i] = a;
      scanEq[i] = b;
      a += g;
      b += e;
    }
  }
  __syncthreads();
  u32 gtBefore = scanGt[tid], eqBefore = scanEq[tid];
  int* outIdx = indices + row * (usize)k;
  float* outScore = scores + row * (usize)k;
  for (int i = begin; i < end; ++i) {
    float v = x[i];
    u32 key = mosa_key(v);
    if (key > prefix || (key == prefix && eqBefore < need)) {
      u32 pos = gtBefore + min(eqBefore, need);
      outIdx[pos] = i;
      outScore[pos] = 1.0f / (1.0f + expf(-v));
    }
    if (key > prefix) gtBefore++;
    else if (key == prefix) eqBefore++;
  }
}

// Grid (ceil(K/BM), 3*Hs, B): block (i-tile, which*?, b) computes rows i0.. of q, k or v for head h.
extern "C" __global__ void __launch_bounds__(256) mosa_project(const float* __restrict__ x,
    const int* __restrict__ indices, const float* __restrict__ wq, const float* __restrict__ wk,
    const float* __restrict__ wv, float* __restrict__ q, float* __restrict__ k, float* __restrict__ v,
    int T, int C, int Hs, int K, float ropeBase) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][D + 1];
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM;
  const int which = blockIdx.y % 3, h = blockIdx.y / 3, b = blockIdx.z;
  const float* W = (which == 0 ? wq : which == 1 ? wk : wv) + (usize)h * D * C;
  float* out = which == 0 ? q : which == 1 ? k : v;
  const usize bh = (usize)b * Hs + h;
  const int* idx = indices + bh * K;
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + idx[i0 + tid] : -1;
  __syncthreads();
  float acc[TM][TN];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[m][j] = 0.0f;
  for (int c0 = 0; c0 < C; c0 += BK) {
    for (int e = tid; e < BM * BK; e += 256) {
      int kk = e % BK, r = e / BK, row = rows[r];
      As[kk][r] = row >= 0 && c0 + kk < C ? x[(usize)row * C + c0 + kk] : 0.0f;
    }
    for (int e = tid; e < D * BK; e += 256) {
      int kk = e % BK, n = e / BK;
      Bs[kk][n] = c0 + kk < C ? W[(usize)n * C + c0 + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], w[TN];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < TN; ++j) w[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[m][j] = fmaf(a[m], w[j], acc[m][j]);
    }
    __syncthreads();
  }
  const bool rotate = which < 2 && ropeBase > 0.0f;
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty + 16 * m;
    if (i >= K) continue;
    float* o = out + (bh * K + i) * D;
    if (rotate) {
      const double pos = (double)idx[i];
#pragma unroll
      for (int j = 0; j < TN / 2; ++j) {
        const int n = tx + 16 * j;
        double s, c;
        sincos(pos * pow((double)ropeBase, -2.0 * n / D), &s, &c);
        const float x1 = acc[m][j], x2 = acc[m][j + TN / 2];
        o[n] = x1 * (float)c - x2 * (float)s;
        o[n + D / 2] = x2 * (float)c + x1 * (float)s;
      }
    } else {
#pragma unroll
      for (int j = 0; j < TN; ++j) o[tx + 16 * j] = acc[m][j];
    }
  }
}

#define TQ (BQ / 16)
#define TJ (BKV / 16)
// Grid (ceil(K/BQ), Hs, B). Query i sees key j <= i (positions ascend with the slot).
extern "C" __global__ void __launch_bounds__(256) mosa_attend(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out,
    float* __restrict__ lse, int K, int Hs, float scale) {
  __shared__ float Qs[D][BQ + 1];
  __shared__ float Ks[D][BKV + 1];
  __shared__ float Vs[BKV][D];
  __shared__ float Ps[BQ][BKV + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = blockIdx.x * BQ;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const float* qb = q + bh * K * D;
  const float* kb = k + bh * K * D;
  const float* vb = v + bh * K * D;
  for (int e = tid; e < BQ * D; e += 256) {
    int d = e % D, r = e / D;
    Qs[d][r] = q0 + r < K ? qb[(usize)(q0 + r) * D + d] * scale : 0.0f;
  }
  float mrow[TQ], lrow[TQ], acc[TQ][TN];
#pragma unroll
  for (int m = 0; m < TQ; ++m) {
    mrow[m] = -INFINITY;
    lrow[m] = 0.0f;
#pragma unroll
    for (int n = 0; n < TN; ++n) acc[m][n] = 0.0f;
  }
  const int tiles = (min(K, q0 + BQ) - 1) / BKV + 1;
  for (int t = 0; t < tiles; ++t) {
    const int k0 = t * BKV;
    __syncthreads();
    for (int e = tid; e < BKV * D; e += 256) {
      int d = e % D, c = e / D;
      bool ok = k0 + c < K;
      Ks[d][c] = ok ? kb[(usize)(k0 + c) * D + d] : 0.0f;
      Vs[c][d] = ok ? vb[(usize)(k0 + c) * D + d] : 0.0f;
    }
    __syncthreads();
    float s[TQ][TJ];
#pragma unroll
    for (int m = 0; m < TQ; ++m)
#pragma unroll
      for (int j = 0; j < TJ; ++j) s[m][j] = 0.0f;
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      float a[TQ], bk[TJ];
#pragma unroll
      for (int m = 0; m < TQ; ++m) a[m] = Qs[d][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < TJ; ++j) bk[j] = Ks[d][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < TQ; ++m)
#pragma unroll
        for (int j = 0; j < TJ; ++j) s[m][j] = fmaf(a[m], bk[j], s[m][j]);
    }
#pragma unroll
    for (int m = 0; m < TQ; ++m) {
      const int qi = q0 + ty + 16 * m;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < TJ; ++j) {
        const int kj = k0 + tx + 16 * j;
        if (kj > qi || kj >= K) s[m][j] = -INFINITY;
        mx = fmaxf(mx, s[m][j]);
      }
      mx = mosa_max16(mx);
      const float mnew = fmaxf(mrow[m], mx);
      const float alpha = mrow[m] == -INFINITY ? 0.0f : expf(mrow[m] - mnew);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < TJ; ++j) {
        const float p = s[m][j] == -INFINITY ? 0.0f : expf(s[m][j] - mnew);
        Ps[ty + 16 * m][tx + 16 * j] = p;
        sum += p;
      }
      sum = mosa_sum16(sum);
      lrow[m] = lrow[m] * alpha + sum;
      mrow[m] = mnew;
#pragma unroll
      for (int n = 0; n < TN; ++n) acc[m][n] *= alpha;
    }
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < BKV; ++c) {
      float p[TQ], w[TN];
#pragma unroll
      for (int m = 0; m < TQ; ++m) p[m] = Ps[ty + 16 * m][c];
#pragma unroll
      for (int n = 0; n < TN; ++n) w[n] = Vs[c][tx + 16 * n];
#pragma unroll
      for (int m = 0; m < TQ; ++m)
#pragma unroll
        for (int n = 0; n < TN; ++n) acc[m][n] = fmaf(p[m], w[n], acc[m][n]);
    }
  }
#pragma unroll
  for (int m = 0; m < TQ; ++m) {
    const int qi = q0 + ty + 16 * m;
    if (qi >= K) continue;
    const float inv = 1.0f / lrow[m];
#pragma unroll
    for (int n = 0; n < TN; ++n) out[(bh * K + qi) * D + tx + 16 * n] = acc[m][n] * inv;
    if (tx == 0) lse[bh * K + qi] = mrow[m] + logf(lrow[m]);
  }
}

// Grid (ceil(K/BM), ceil(C/BN), B*Hs).
extern "C" __global__ void __launch_bounds__(256) mosa_out_scatter(const float* __restrict__ o,
    const float* __restrict__ scores, const int* __restrict__ indices, const float* __restrict__ wo,
    float* __restrict__ y, int T, int C, int Hs, int K) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  __shared__ int rows[BM];
  __shared__ float sc[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  const usize bh = blockIdx.z;
  const int b = (int)(bh / Hs), h = (int)(bh % Hs);
  if (tid < BM) {
    const bool ok = i0 + tid < K;
    rows[tid] = ok ? b * T + indices[bh * K + i0 + tid] : -1;
    sc[tid] = ok ? scores[bh * K + i0 + tid] : 0.0f;
  }
  float acc[TM][BN / 16];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) acc[m][j] = 0.0f;
  for (int d0 = 0; d0 < D; d0 += BK) {
    __syncthreads();
    for (int e = tid; e < BM * BK; e += 256) {
      int kk = e % BK, r = e / BK;
      As[kk][r] = i0 + r < K ? o[(bh * K + i0 + r) * D + d0 + kk] : 0.0f;
    }
    for (int e = tid; e < BN * BK; e += 256) {
      int kk = e % BK, n = e / BK;
      Bs[kk][n] = c0 + n < C ? wo[(usize)(c0 + n) * Hs * D + h * D + d0 + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], w[BN / 16];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) w[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int j = 0; j < BN / 16; ++j) acc[m][j] = fmaf(a[m], w[j], acc[m][j]);
    }
  }
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty + 16 * m];
    if (row < 0) continue;
    const float s = sc[ty + 16 * m];
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < C) atomicAdd(&y[(usize)row * C + c], acc[m][j] * s);
    }
  }
}

// Grid (ceil(K/BM), Hs, B): dz = dy[rows] x Wo_h; dout = score * dz; dscore = dz . out.
extern "C" __global__ void __launch_bounds__(256) mosa_out_backward(const float* __restrict__ dy,
    const float* __restrict__ o, const float* __restrict__ scores, const int* __restrict__ indices,
    const float* __restrict__ wo, float* __restrict__ dout, float* __restrict__ dscores, int T, int C,
    int Hs, int K) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][D];
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
  const usize bh = (usize)b * Hs + h;
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  float acc[TM][TN];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[m][j] = 0.0f;
  for (int c0 = 0; c0 < C; c0 += BK) {
    __syncthreads();
    for (int e = tid; e < BM * BK; e += 256) {
      int kk = e % BK, r = e / BK, row = rows[r];
      As[kk][r] = row >= 0 && c0 + kk < C ? dy[(usize)row * C + c0 + kk] : 0.0f;
    }
    for (int e = tid; e < D * BK; e += 256) {
      int n = e % D, kk = e / D;
      Bs[kk][n] = c0 + kk < C ? wo[(usize)(c0 + kk) * Hs * D + h * D + n] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], w[TN];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < TN; ++j) w[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[m][j] = fmaf(a[m], w[j], acc[m][j]);
    }
  }
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty + 16 * m;
    const bool ok = i < K;
    const float s = ok ? scores[bh * K + i] : 0.0f;
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const usize at = (bh * K + (ok ? i : 0)) * D + tx + 16 * j;
      if (ok) {
        part = fmaf(acc[m][j], o[at], part);
        dout[at] = acc[m][j] * s;
      }
    }
    part = mosa_sum16(part);
    if (ok && tx == 0) dscores[bh * K + i] = part;
  }
}

#define TB (BB / 16)
// Loads BB rows of a [K, D] slab transposed into S[d][r] (zeros past K).
__device__ __forceinline__ void mosa_load_t(float (*S)[BB + 1], const float* src, int r0, int K, int tid) {
  for (int e = tid; e < BB * D; e += 256) {
    int d = e % D, r = e / D;
    S[d][r] = r0 + r < K ? src[(usize)(r0 + r) * D + d] : 0.0f;
  }
}

// delta_i = dout_i . out_i and lse_i for BB query rows starting at q0 (256 / BB threads per row).
__device__ __forceinline__ void mosa_row_stats(const float* dout, const float* out, const float* lse,
    float* deltaS, float* lseS, int q0, int K, int tid) {
  const int per = 256 / BB;
  const int r = tid / per, part = tid % per;
  const int qi = q0 + r;
  float acc = 0.0f;
  if (qi < K)
    for (int d = part; d < D; d += per) acc = fmaf(dout[(usize)qi * D + d], out[(usize)qi * D + d], acc);
  for (int off = per / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (part == 0) {
    deltaS[r] = acc;
    lseS[r] = qi < K ? lse[qi] : 0.0f;
  }
}

// Grid (ceil(K/BB), Hs, B): one key tile, every query tile at or after it.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward_kv(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dk,
    float* __restrict__ dv, int K, int Hs, float scale) {
  __shared__ float Ks[D][BB + 1];
  __shared__ float Vs[D][BB + 1];
  __shared__ float Qs[D][BB + 1];
  __shared__ float dOs[D][BB + 1];
  __shared__ float Ps[BB][BB + 1];
  __shared__ float dSs[BB][BB + 1];
  __shared__ float lseS[BB];
  __shared__ float deltaS[BB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int k0 = blockIdx.x * BB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_load_t(Ks, k + base, k0, K, tid);
  mosa_load_t(Vs, v + base, k0, K, tid);
  float dK[TB][TN], dV[TB][TN];
#pragma unroll
  for (int a = 0; a < TB; ++a)
#pragma unroll
    for (int n = 0; n < TN; ++n) dK[a][n] = dV[a][n] = 0.0f;
  for (int q0 = k0; q0 < K; q0 += BB) {
    __syncthreads();
    mosa_load_t(Qs, q + base, q0, K, tid);
    mosa_load_t(dOs, dout + base, q0, K, tid);
    mosa_row_stats(dout + base, out + base, lse + bh * K, deltaS, lseS, q0, K, tid);
    __syncthreads();
    float st[TB][TB], dpt[TB][TB];
#pragma unroll
    for (int a = 0; a < TB; ++a)
#pragma unroll
      for (int c = 0; c < TB; ++c) st[a][c] = dpt[a][c] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; ++d) {
      float kr[TB], vr[TB], qc[TB], oc[TB];
#pragma unroll
      for (int a = 0; a < TB; ++a) {
        kr[a] = Ks[d][ty + 16 * a];
        vr[a] = Vs[d][ty + 16 * a];
      }
#pragma unroll
      for (int c = 0; c < TB; ++c) {
        qc[c] = Qs[d][tx + 16 * c];
        oc[c] = dOs[d][tx + 16 * c];
      }
#pragma unroll
      for (int a = 0; a < TB; ++a)
#pragma unroll
        for (int c = 0; c < TB; ++c) {
          st[a][c] = fmaf(kr[a], qc[c], st[a][c]);
          dpt[a][c] = fmaf(vr[a], oc[c], dpt[a][c]);
        }
    }
#pragma unroll
    for (int a = 0; a < TB; ++a)
#pragma unroll
      for (int c = 0; c < TB; ++c) {
        const int kj = k0 + ty + 16 * a, qi = q0 + tx + 16 * c;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(st[a][c] * scale - lseS[tx + 16 * c]) : 0.0f;
        Ps[ty + 16 * a][tx + 16 * c] = p;
        dSs[ty + 16 * a][tx + 16 * c] = p * (dpt[a][c] - deltaS[tx + 16 * c]);
      }
    __syncthreads();
#pragma unroll 4
    for (int i = 0; i < BB; ++i) {
      float pa[TB], da[TB], go[TN], gq[TN];
#pragma unroll
      for (int a = 0; a < TB; ++a) {
        pa[a] = Ps[ty + 16 * a][i];
        da[a] = dSs[ty + 16 * a][i];
      }
#pragma unroll
      for (int n = 0; n < TN; ++n) {
        go[n] = dOs[tx + 16 * n][i];
        gq[n] = Qs[tx + 16 * n][i];
      }
#pragma unroll
      for (int a = 0; a < TB; ++a)
#pragma unroll
        for (int n = 0; n < TN; ++n) {
          dV[a][n] = fmaf(pa[a], go[n], dV[a][n]);
          dK[a][n] = fmaf(da[a], gq[n], dK[a][n]);
        }
    }
  }
#pragma unroll
  for (int a = 0; a < TB; ++a) {
    const int kj = k0 + ty + 16 * a;
    if (kj >= K) continue;
#pragma unroll
    for (int n = 0; n < TN; ++n) {
      dk[base + (usize)kj * D + tx + 16 * n] = dK[a][n] * scale;
      dv[base + (usize)kj * D + tx + 16 * n] = dV[a][n];
    }
  }
}

// Grid (ceil(K/BB), Hs, B): one query tile, every key tile up to the diagonal.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward_q(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq, int K, int Hs,
    float scale) {
  __shared__ float Qs[D][BB + 1];
  __shared__ float dOs[D][BB + 1];
  __shared__ float Ks[D][BB + 1];
  __shared__ float Vs[D][BB + 1];
  __shared__ float dSs[BB][BB + 1];
  __shared__ float lseS[BB];
  __shared__ float deltaS[BB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = blockIdx.x * BB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_load_t(Qs, q + base, q0, K, tid);
  mosa_load_t(dOs, dout + base, q0, K, tid);
  mosa_row_stats(dout + base, out + base, lse + bh * K, deltaS, lseS, q0, K, tid);
  float dQ[TB][TN];
#pragma unroll
  for (int a = 0; a < TB; ++a)
#pragma unroll
    for (int n = 0; n < TN; ++n) dQ[a][n] = 0.0f;
  const int last = min(K, q0 + BB) - 1;
  for (int k0 = 0; k0 <= last; k0 += BB) {
    __syncthreads();
    mosa_load_t(Ks, k + base, k0, K, tid);
    mosa_load_t(Vs, v + base, k0, K, tid);
    __syncthreads();
    float s[TB][TB], dp[TB][TB];
#pragma unroll
    for (int a = 0; a < TB; ++a)
#pragma unroll
      for (int c = 0; c < TB; ++c) s[a][c] = dp[a][c] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; ++d) {
      float qr[TB], orow[TB], kc[TB], vc[TB];
#pragma unroll
      for (int a = 0; a < TB; ++a) {
        qr[a] = Qs[d][ty + 16 * a];
        orow[a] = dOs[d][ty + 16 * a];
      }
#pragma unroll
      for (int c = 0; c < TB; ++c) {
        kc[c] = Ks[d][tx + 16 * c];
        vc[c] = Vs[d][tx + 16 * c];
      }
#pragma unroll
      for (int a = 0; a < TB; ++a)
#pragma unroll
        for (int c = 0; c < TB; ++c) {
          s[a][c] = fmaf(qr[a], kc[c], s[a][c]);
          dp[a][c] = fmaf(orow[a], vc[c], dp[a][c]);
        }
    }
#pragma unroll
    for (int a = 0; a < TB; ++a)
#pragma unroll
      for (int c = 0; c < TB; ++c) {
        const int qi = q0 + ty + 16 * a, kj = k0 + tx + 16 * c;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(s[a][c] * scale - lseS[ty + 16 * a]) : 0.0f;
        dSs[ty + 16 * a][tx + 16 * c] = p * (dp[a][c] - deltaS[ty + 16 * a]);
      }
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < BB; ++j) {
      float da[TB], kv[TN];
#pragma unroll
      for (int a = 0; a < TB; ++a) da[a] = dSs[ty + 16 * a][j];
#pragma unroll
      for (int n = 0; n < TN; ++n) kv[n] = Ks[tx + 16 * n][j];
#pragma unroll
      for (int a = 0; a < TB; ++a)
#pragma unroll
        for (int n = 0; n < TN; ++n) dQ[a][n] = fmaf(da[a], kv[n], dQ[a][n]);
    }
  }
#pragma unroll
  for (int a = 0; a < TB; ++a) {
    const int qi = q0 + ty + 16 * a;
    if (qi >= K) continue;
#pragma unroll
    for (int n = 0; n < TN; ++n) dq[base + (usize)qi * D + tx + 16 * n] = dQ[a][n] * scale;
  }
}

// Grid (ceil(K/BM), ceil(C/BN), B*Hs): dx[rows] += [gq | gk | gv] x [Wq_h; Wk_h; Wv_h].
extern "C" __global__ void __launch_bounds__(256) mosa_project_backward_input(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const int* __restrict__ indices,
    const float* __restrict__ wq, const float* __restrict__ wk, const float* __restrict__ wv,
    float* __restrict__ dx, int T, int C, int Hs, int K) {
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN];
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  const usize bh = blockIdx.z;
  const int b = (int)(bh / Hs), h = (int)(bh % Hs);
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  float acc[TM][BN / 16];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) acc[m][j] = 0.0f;
  for (int e0 = 0; e0 < 3 * D; e0 += BK) {
    const int which = e0 / D, f0 = e0 % D;
    const float* G = which == 0 ? gq : which == 1 ? gk : gv;
    const float* W = which == 0 ? wq : which == 1 ? wk : wv;
    __syncthreads();
    for (int e = tid; e < BM * BK; e += 256) {
      int kk = e % BK, r = e / BK;
      As[kk][r] = i0 + r < K ? G[(bh * K + i0 + r) * D + f0 + kk] : 0.0f;
    }
    for (int e = tid; e < BN * BK; e += 256) {
      int n = e % BN, kk = e / BN;
      Bs[kk][n] = c0 + n < C ? W[(usize)(h * D + f0 + kk) * C + c0 + n] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], w[BN / 16];
#pragma unroll
      for (int m = 0; m < TM; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) w[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int j = 0; j < BN / 16; ++j) acc[m][j] = fmaf(a[m], w[j], acc[m][j]);
    }
  }
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty + 16 * m];
    if (row < 0) continue;
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < C) atomicAdd(&dx[(usize)row * C + c], acc[m][j]);
    }
  }
}

// out[p, q] (+ head offset) = sum over the B*K selected rows r of A[r, p] (* score r) * table[row r, q].
template <bool TRANSPOSED, bool SCALED>
__device__ __forceinline__ void mosa_weight_grad_tile(const float* __restrict__ A,
    const float* __restrict__ scores, const float* __restrict__ table, const int* __restrict__ indices,
    float* __restrict__ out, int T, int Q, int Hs, int K, int B, int h, int p0, int q0) {
  __shared__ float As[BK][64];
  __shared__ float Gs[BK][64];
  __shared__ int rowOff[BK];
  __shared__ int aOff[BK];
  __shared__ float rowScale[BK];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int R = B * K;
  float acc[4][4];
#pragma unroll
  for (int m = 0; m < 4; ++m)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[m][j] = 0.0f;
  for (int r0 = 0; r0 < R; r0 += BK) {
    __syncthreads();
    if (tid < BK) {
      const int r = r0 + tid;
      if (r < R) {
        const int b = r / K, i = r % K;
        const usize bh = (usize)b * Hs + h;
        rowOff[tid] = b * T + indices[bh * K + i];
        aOff[tid] = (int)(bh * K + i);
        rowScale[tid] = SCALED ? scores[bh * K + i] : 1.0f;
      } else {
        rowOff[tid] = -1;
        aOff[tid] = 0;
        rowScale[tid] = 0.0f;
      }
    }
    __syncthreads();
    for (int e = tid; e < BK * 64; e += 256) {
      int c = e % 64, kk = e / 64;
      const bool ok = rowOff[kk] >= 0;
      As[kk][c] = ok && p0 + c < D ? A[(usize)aOff[kk] * D + p0 + c] * rowScale[kk] : 0.0f;
      Gs[kk][c] = ok && q0 + c < Q ? table[(usize)rowOff[kk] * Q + q0 + c] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], g[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
      for (int j = 0; j < 4; ++j) g[j] = Gs[kk][tx + 16 * j];
#pragma unroll
      for (int m = 0; m < 4; ++m)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[m][j] = fmaf(a[m], g[j], acc[m][j]);
    }
  }
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    const int p = p0 + ty + 16 * m;
    if (p >= D) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int qq = q0 + tx + 16 * j;
      if (qq >= Q) continue;
      if (TRANSPOSED) out[(usize)qq * Hs * D + h * D + p] = acc[m][j];
      else out[(usize)(h * D + p) * Q + qq] = acc[m][j];
    }
  }
}

// Grid (ceil(C/64), ceil(D/64), 3*Hs).
extern "C" __global__ void __launch_bounds__(256) mosa_weight_grad_qkv(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const float* __restrict__ x,
    const int* __restrict__ indices, float* __restrict__ dwq, float* __restrict__ dwk,
    float* __restrict__ dwv, int T, int C, int Hs, int K, int B) {
  const int which = blockIdx.z % 3, h = blockIdx.z / 3;
  const float* A = which == 0 ? gq : which == 1 ? gk : gv;
  float* out = which == 0 ? dwq : which == 1 ? dwk : dwv;
  mosa_weight_grad_tile<false, false>(A, nullptr, x, indices, out, T, C, Hs, K, B, h, blockIdx.y * 64,
                                      blockIdx.x * 64);
}

// Grid (ceil(C/64), ceil(D/64), Hs): dWo[c, h*D + p] = sum_r dy[row r, c] * score_r * out[r, p].
extern "C" __global__ void __launch_bounds__(256) mosa_weight_grad_out(const float* __restrict__ o,
    const float* __restrict__ scores, const float* __restrict__ dy, const int* __restrict__ indices,
    float* __restrict__ dwo, int T, int C, int Hs, int K, int B) {
  mosa_weight_grad_tile<true, true>(o, scores, dy, indices, dwo, T, C, Hs, K, B, blockIdx.z,
                                    blockIdx.y * 64, blockIdx.x * 64);
}
`
}
