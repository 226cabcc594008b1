import { cudaTiles } from './tiles.js'

/**
 * CUDA C source of the fused MoSA kernels for one head dimension (NVRTC or nvcc; float32 data,
 * float32 accumulation; RoPE angles in double). Every kernel runs 256 threads as a 16 x 16 grid
 * (ty, tx). Binding follows core's ProgramSpec convention: input pointers, output pointers, then
 * scalars.
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
 *
 * The GEMMs share one register-blocked main loop (mosa_gemm_chunk): a 128 x (16 TN) block tile,
 * 8 x TN outputs per thread, operands in shared memory row-major along the reduction (stride
 * GK + 4) and read as float4, the next chunk fetched into registers while this one is used. The
 * attention kernels use 64 x 64 tiles, 4 x 4 (S) and 4 x TN (outputs) per thread, rows of head
 * dim D stored with stride D + 4 and read as float4 along D; their shared memory is dynamic
 * (mosaCudaSharedBytes).
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
#define GK ${t.BK}
#define AB ${t.BQ}
#define TM (BM / 16)
#define LDG (GK + 4)
#define LDH (D + 4)
#define LDA (AB + 4)
typedef unsigned int u32;
// NVRTC has no standard headers: no size_t or INFINITY unless we define them.
typedef unsigned long long usize;
#ifndef INFINITY
#define INFINITY (__int_as_float(0x7f800000))
#endif
#ifndef MOSA_DYNAMIC_SMEM
#define MOSA_DYNAMIC_SMEM(name) extern __shared__ float4 name[]
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

__device__ __forceinline__ float4 mosa_ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void mosa_st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float mosa_dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}
// TN consecutive floats (TN = D / 16 is 2, 4, 6 or 8) from shared memory, 16-byte aligned when TN % 4 == 0.
__device__ __forceinline__ void mosa_ldn(float (&dst)[TN], const float* p) {
#if TN % 4 == 0
#pragma unroll
  for (int u = 0; u < TN; u += 4) {
    const float4 v = mosa_ld4(p + u);
    dst[u] = v.x;
    dst[u + 1] = v.y;
    dst[u + 2] = v.z;
    dst[u + 3] = v.w;
  }
#else
#pragma unroll
  for (int u = 0; u < TN; ++u) dst[u] = p[u];
#endif
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

// ---------------------------------------------------------------- GEMM building blocks
// A chunk of GK reduction steps for ROWS rows, fetched from global memory into registers (so
// the next chunk's loads overlap this chunk's arithmetic), then stored row-major into shared
// memory S[ROWS][LDG]. KFAST: consecutive threads walk the reduction index (coalesced when the
// source is contiguous along it); otherwise they walk the rows.
template <int ROWS, bool KFAST>
struct MosaStage {
  static constexpr int N = ROWS * GK / 256;
  float v[N];
  template <class F>
  __device__ __forceinline__ void fetch(F f, int k0) {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const int e = threadIdx.x + 256 * n;
      const int r = KFAST ? e / GK : e % ROWS, kk = KFAST ? e % GK : e / ROWS;
      v[n] = f(r, k0 + kk);
    }
  }
  __device__ __forceinline__ void store(float* S) const {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const int e = threadIdx.x + 256 * n;
      const int r = KFAST ? e / GK : e % ROWS, kk = KFAST ? e % GK : e / ROWS;
      S[r * LDG + kk] = v[n];
    }
  }
};

// acc[i][j] += sum over the chunk of As[ty*TM_ + i][k] * Bs[tx + 16 j][k].
template <int TM_, int TN_>
__device__ __forceinline__ void mosa_gemm_chunk(const float* As, const float* Bs, float (&acc)[TM_][TN_]) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int k = 0; k < GK; k += 4) {
    float4 a[TM_], b[TN_];
#pragma unroll
    for (int i = 0; i < TM_; ++i) a[i] = mosa_ld4(As + (ty * TM_ + i) * LDG + k);
#pragma unroll
    for (int j = 0; j < TN_; ++j) b[j] = mosa_ld4(Bs + (tx + 16 * j) * LDG + k);
#pragma unroll
    for (int i = 0; i < TM_; ++i)
#pragma unroll
      for (int j = 0; j < TN_; ++j) acc[i][j] = mosa_dot4(a[i], b[j], acc[i][j]);
  }
}

// acc[TM][TN_] = A[16 TM rows][n] . B[16 TN_ rows][n] summed over n < N, both operands given
// element-wise by fa(row, n) and fb(row, n) (zero outside); KA / KB: which index is contiguous.
template <int TN_, bool KA, bool KB, class FA, class FB>
__device__ __forceinline__ void mosa_gemm(float (&acc)[TM][TN_], int N, FA fa, FB fb) {
  __shared__ float4 As4[BM * LDG / 4];
  __shared__ float4 Bs4[16 * TN_ * LDG / 4];
  float* As = reinterpret_cast<float*>(As4);
  float* Bs = reinterpret_cast<float*>(Bs4);
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN_; ++j) acc[i][j] = 0.0f;
  MosaStage<BM, KA> sa;
  MosaStage<16 * TN_, KB> sb;
  sa.fetch(fa, 0);
  sb.fetch(fb, 0);
  for (int k0 = 0; k0 < N; k0 += GK) {
    __syncthreads();
    sa.store(As);
    sb.store(Bs);
    __syncthreads();
    if (k0 + GK < N) {
      sa.fetch(fa, k0 + GK);
      sb.fetch(fb, k0 + GK);
    }
    mosa_gemm_chunk<TM, TN_>(As, Bs, acc);
  }
}

// Grid (ceil(K/BM), 3*Hs, B): rows i0.. of q, k or v for head h; thread rows ty*TM + m, columns tx + 16 j.
extern "C" __global__ void __launch_bounds__(256) mosa_project(const float* __restrict__ x,
    const int* __restrict__ indices, const float* __restrict__ wq, const float* __restrict__ wk,
    const float* __restrict__ wv, float* __restrict__ q, float* __restrict__ k, float* __restrict__ v,
    int T, int C, int Hs, int K, float ropeBase) {
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
  mosa_gemm<TN, true, true>(
      acc, C,
      [&](int r, int c) { const int row = rows[r]; return row >= 0 && c < C ? x[(usize)row * C + c] : 0.0f; },
      [&](int n, int c) { return c < C ? W[(usize)n * C + c] : 0.0f; });
  const bool rotate = which < 2 && ropeBase > 0.0f;
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty * TM + m;
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

// Grid (ceil(K/BM), ceil(C/BN), B*Hs): y[rows, c0..] += score * (out x Wo_h^T).
extern "C" __global__ void __launch_bounds__(256) mosa_out_scatter(const float* __restrict__ o,
    const float* __restrict__ scores, const int* __restrict__ indices, const float* __restrict__ wo,
    float* __restrict__ y, int T, int C, int Hs, int K) {
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
  const float* ob = o + (bh * K + i0) * D;
  const int rowsLeft = K - i0;
  float acc[TM][BN / 16];
  mosa_gemm<BN / 16, true, true>(
      acc, D, [&](int r, int d) { return r < rowsLeft ? ob[(usize)r * D + d] : 0.0f; },
      [&](int n, int d) { return c0 + n < C ? wo[(usize)(c0 + n) * Hs * D + h * D + d] : 0.0f; });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty * TM + m];
    if (row < 0) continue;
    const float s = sc[ty * TM + m];
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
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const usize bh = (usize)b * Hs + h;
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  __syncthreads();
  float acc[TM][TN];
  mosa_gemm<TN, true, false>(
      acc, C,
      [&](int r, int c) { const int row = rows[r]; return row >= 0 && c < C ? dy[(usize)row * C + c] : 0.0f; },
      [&](int n, int c) { return c < C ? wo[(usize)c * Hs * D + h * D + n] : 0.0f; });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty * TM + m;
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

// Grid (ceil(K/BM), ceil(C/BN), B*Hs): dx[rows] += [gq | gk | gv] x [Wq_h; Wk_h; Wv_h].
extern "C" __global__ void __launch_bounds__(256) mosa_project_backward_input(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const int* __restrict__ indices,
    const float* __restrict__ wq, const float* __restrict__ wk, const float* __restrict__ wv,
    float* __restrict__ dx, int T, int C, int Hs, int K) {
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  const usize bh = blockIdx.z;
  const int b = (int)(bh / Hs), h = (int)(bh % Hs);
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  const usize g0 = (bh * K + i0) * D;
  const int rowsLeft = K - i0;
  float acc[TM][BN / 16];
  mosa_gemm<BN / 16, true, false>(
      acc, 3 * D,
      [&](int r, int e) {
        const float* G = e < D ? gq : e < 2 * D ? gk : gv;
        return r < rowsLeft ? G[g0 + (usize)r * D + e % D] : 0.0f;
      },
      [&](int n, int e) {
        const float* W = e < D ? wq : e < 2 * D ? wk : wv;
        return c0 + n < C ? W[(usize)(h * D + e % D) * C + c0 + n] : 0.0f;
      });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty * TM + m];
    if (row < 0) continue;
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < C) atomicAdd(&dx[(usize)row * C + c], acc[m][j]);
    }
  }
}

// Grid (ceil(C/BM), 1, 3*Hs): dW[h*D + p, c] = sum over the B*K selected rows r of g[r, p] * x[row r, c],
// one block per BM columns c (thread rows) and every p (thread columns).
extern "C" __global__ void __launch_bounds__(256) mosa_weight_grad_qkv(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const float* __restrict__ x,
    const int* __restrict__ indices, float* __restrict__ dwq, float* __restrict__ dwk,
    float* __restrict__ dwv, int T, int C, int Hs, int K, int B) {
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int which = blockIdx.z % 3, h = blockIdx.z / 3;
  const float* G = which == 0 ? gq : which == 1 ? gk : gv;
  float* out = which == 0 ? dwq : which == 1 ? dwk : dwv;
  const int c0 = blockIdx.x * BM, R = B * K;
  float acc[TM][TN];
  mosa_gemm<TN, false, false>(
      acc, R,
      [&](int m, int r) {
        if (r >= R || c0 + m >= C) return 0.0f;
        const int b = r / K, i = r - b * K;
        const int row = b * T + indices[((usize)b * Hs + h) * K + i];
        return x[(usize)row * C + c0 + m];
      },
      [&](int p, int r) {
        if (r >= R) return 0.0f;
        const int b = r / K, i = r - b * K;
        return G[(((usize)b * Hs + h) * K + i) * D + p];
      });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int c = c0 + ty * TM + m;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) out[(usize)(h * D + tx + 16 * j) * C + c] = acc[m][j];
  }
}

// Grid (ceil(C/BM), 1, Hs): dWo[c, h*D + p] = sum_r dy[row r, c] * score_r * out[r, p].
extern "C" __global__ void __launch_bounds__(256) mosa_weight_grad_out(const float* __restrict__ o,
    const float* __restrict__ scores, const float* __restrict__ dy, const int* __restrict__ indices,
    float* __restrict__ dwo, int T, int C, int Hs, int K, int B) {
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int h = blockIdx.z;
  const int c0 = blockIdx.x * BM, R = B * K;
  float acc[TM][TN];
  mosa_gemm<TN, false, false>(
      acc, R,
      [&](int m, int r) {
        if (r >= R || c0 + m >= C) return 0.0f;
        const int b = r / K, i = r - b * K;
        const int row = b * T + indices[((usize)b * Hs + h) * K + i];
        return dy[(usize)row * C + c0 + m];
      },
      [&](int p, int r) {
        if (r >= R) return 0.0f;
        const int b = r / K, i = r - b * K;
        const usize at = ((usize)b * Hs + h) * K + i;
        return scores[at] * o[at * D + p];
      });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int c = c0 + ty * TM + m;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) dwo[(usize)c * Hs * D + h * D + tx + 16 * j] = acc[m][j];
  }
}
// ---------------------------------------------------------------- attention among the K tokens
// Rows r0.. of a [K, D] slab into S[AB][LDH] (zeros past K), times mul.
__device__ __forceinline__ void mosa_rows_load(float* S, const float* src, int r0, int K, float mul) {
  for (int e = threadIdx.x; e < AB * (D / 4); e += 256) {
    const int r = e / (D / 4), c = (e % (D / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r0 + r < K) {
      v = mosa_ld4(src + (usize)(r0 + r) * D + c);
      v.x *= mul;
      v.y *= mul;
      v.z *= mul;
      v.w *= mul;
    }
    mosa_st4(S + r * LDH + c, v);
  }
}

// s[i][j] = sum_d A[ty*4 + i][d] * B[tx + 16 j][d] (rows of stride LDH); with a second pair
// (A2, B2) into s2 when TWO.
template <bool TWO>
__device__ __forceinline__ void mosa_scores(const float* A, const float* Bm, const float* A2, const float* B2,
    float (&s)[4][4], float (&s2)[4][4]) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) s[i][j] = s2[i][j] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; d += 4) {
    float4 a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = mosa_ld4(A + (ty * 4 + i) * LDH + d);
#pragma unroll
    for (int j = 0; j < 4; ++j) b[j] = mosa_ld4(Bm + (tx + 16 * j) * LDH + d);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = mosa_dot4(a[i], b[j], s[i][j]);
    if (TWO) {
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = mosa_ld4(A2 + (ty * 4 + i) * LDH + d);
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = mosa_ld4(B2 + (tx + 16 * j) * LDH + d);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s2[i][j] = mosa_dot4(a[i], b[j], s2[i][j]);
    }
  }
}

// acc[i][u] += sum_c P[c][ty*4 + i] * V[c][tx*TN + u]  (P: [AB][LDA], V: [AB][LDH]).
__device__ __forceinline__ void mosa_pv(const float* P, const float* V, float (&acc)[4][TN]) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll 4
  for (int c = 0; c < AB; ++c) {
    const float4 p = mosa_ld4(P + c * LDA + ty * 4);
    float w[TN];
    mosa_ldn(w, V + c * LDH + tx * TN);
#pragma unroll
    for (int u = 0; u < TN; ++u) {
      acc[0][u] = fmaf(p.x, w[u], acc[0][u]);
      acc[1][u] = fmaf(p.y, w[u], acc[1][u]);
      acc[2][u] = fmaf(p.z, w[u], acc[2][u]);
      acc[3][u] = fmaf(p.w, w[u], acc[3][u]);
    }
  }
}

// Stores v[0..3][j] as P[tx + 16 j][ty*4 .. ty*4 + 3] (the transpose of the thread's 4 x 4 tile).
__device__ __forceinline__ void mosa_store_t(float* P, const float (&v)[4][4]) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int j = 0; j < 4; ++j) mosa_st4(P + (tx + 16 * j) * LDA + ty * 4, make_float4(v[0][j], v[1][j], v[2][j], v[3][j]));
}

// Grid (ceil(K/AB), Hs, B). Query i sees key j <= i (positions ascend with the slot). Thread:
// queries ty*4 + i; scores against keys tx + 16 j; output dims tx*TN + u.
extern "C" __global__ void __launch_bounds__(256) mosa_attend(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out,
    float* __restrict__ lse, int K, int Hs, float scale) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  float* Qs = reinterpret_cast<float*>(mosa_smem);
  float* Ks = Qs + AB * LDH;
  float* Vs = Ks + AB * LDH;
  float* Ps = Vs + AB * LDH;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * AB;  // the longest rows first
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_rows_load(Qs, q + base, q0, K, scale);
  float mrow[4], lrow[4], acc[4][TN];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    mrow[i] = -INFINITY;
    lrow[i] = 0.0f;
#pragma unroll
    for (int u = 0; u < TN; ++u) acc[i][u] = 0.0f;
  }
  const int last = min(K, q0 + AB) - 1;
  for (int k0 = 0; k0 <= last; k0 += AB) {
    __syncthreads();
    mosa_rows_load(Ks, k + base, k0, K, 1.0f);
    mosa_rows_load(Vs, v + base, k0, K, 1.0f);
    __syncthreads();
    float s[4][4], unused[4][4];
    mosa_scores<false>(Qs, Ks, nullptr, nullptr, s, unused);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int qi = q0 + ty * 4 + i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kj = k0 + tx + 16 * j;
        if (kj > qi || kj >= K) s[i][j] = -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
      mx = mosa_max16(mx);
      const float mnew = fmaxf(mrow[i], mx);
      const float alpha = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mnew);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = s[i][j] == -INFINITY ? 0.0f : expf(s[i][j] - mnew);
        sum += s[i][j];
      }
      sum = mosa_sum16(sum);
      lrow[i] = lrow[i] * alpha + sum;
      mrow[i] = mnew;
#pragma unroll
      for (int u = 0; u < TN; ++u) acc[i][u] *= alpha;
    }
    mosa_store_t(Ps, s);
    __syncthreads();
    mosa_pv(Ps, Vs, acc);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int qi = q0 + ty * 4 + i;
    if (qi >= K) continue;
    const float inv = 1.0f / lrow[i];
#pragma unroll
    for (int u = 0; u < TN; ++u) out[base + (usize)qi * D + tx * TN + u] = acc[i][u] * inv;
    if (tx == 0) lse[bh * K + qi] = mrow[i] + logf(lrow[i]);
  }
}

// delta_r = dout_r . out_r and lse_r for AB query rows starting at q0 (4 threads per row).
__device__ __forceinline__ void mosa_row_stats(const float* dout, const float* out, const float* lse,
    float* deltaS, float* lseS, int q0, int K) {
  const int r = threadIdx.x >> 2, part = threadIdx.x & 3;
  const int qi = q0 + r;
  float acc = 0.0f;
  if (qi < K)
    for (int d = part; d < D; d += 4) acc = fmaf(dout[(usize)qi * D + d], out[(usize)qi * D + d], acc);
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  if (part == 0) {
    deltaS[r] = acc;
    lseS[r] = qi < K ? lse[qi] : 0.0f;
  }
}

// Grid (ceil(K/AB), Hs, B): one key tile, every query tile at or after it. Thread: keys ty*4 + i,
// scores against queries tx + 16 j, gradient dims tx*TN + u.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward_kv(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dk,
    float* __restrict__ dv, int K, int Hs, float scale) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  float* Ks = reinterpret_cast<float*>(mosa_smem);
  float* Vs = Ks + AB * LDH;
  float* Qs = Vs + AB * LDH;
  float* dOs = Qs + AB * LDH;
  float* Ps = dOs + AB * LDH;
  float* dSs = Ps + AB * LDA;
  __shared__ float lseS[AB];
  __shared__ float deltaS[AB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int k0 = blockIdx.x * AB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_rows_load(Ks, k + base, k0, K, 1.0f);
  mosa_rows_load(Vs, v + base, k0, K, 1.0f);
  float dK[4][TN], dV[4][TN];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int u = 0; u < TN; ++u) dK[i][u] = dV[i][u] = 0.0f;
  for (int q0 = k0; q0 < K; q0 += AB) {
    __syncthreads();
    mosa_rows_load(Qs, q + base, q0, K, 1.0f);
    mosa_rows_load(dOs, dout + base, q0, K, 1.0f);
    mosa_row_stats(dout + base, out + base, lse + bh * K, deltaS, lseS, q0, K);
    __syncthreads();
    float st[4][4], dpt[4][4];
    mosa_scores<true>(Ks, Qs, Vs, dOs, st, dpt);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kj = k0 + ty * 4 + i, c = tx + 16 * j, qi = q0 + c;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(st[i][j] * scale - lseS[c]) : 0.0f;
        st[i][j] = p;
        dpt[i][j] = p * (dpt[i][j] - deltaS[c]);
      }
    mosa_store_t(Ps, st);
    mosa_store_t(dSs, dpt);
    __syncthreads();
    mosa_pv(Ps, dOs, dV);
    mosa_pv(dSs, Qs, dK);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int kj = k0 + ty * 4 + i;
    if (kj >= K) continue;
#pragma unroll
    for (int u = 0; u < TN; ++u) {
      dk[base + (usize)kj * D + tx * TN + u] = dK[i][u] * scale;
      dv[base + (usize)kj * D + tx * TN + u] = dV[i][u];
    }
  }
}

// Grid (ceil(K/AB), Hs, B): one query tile, every key tile up to the diagonal. Thread: queries
// ty*4 + i, scores against keys tx + 16 j, gradient dims tx*TN + u.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward_q(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq, int K, int Hs,
    float scale) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  float* Qs = reinterpret_cast<float*>(mosa_smem);
  float* dOs = Qs + AB * LDH;
  float* Ks = dOs + AB * LDH;
  float* Vs = Ks + AB * LDH;
  float* dSs = Vs + AB * LDH;
  __shared__ float lseS[AB];
  __shared__ float deltaS[AB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * AB;  // the longest rows first
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_rows_load(Qs, q + base, q0, K, 1.0f);
  mosa_rows_load(dOs, dout + base, q0, K, 1.0f);
  mosa_row_stats(dout + base, out + base, lse + bh * K, deltaS, lseS, q0, K);
  float dQ[4][TN];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int u = 0; u < TN; ++u) dQ[i][u] = 0.0f;
  const int last = min(K, q0 + AB) - 1;
  for (int k0 = 0; k0 <= last; k0 += AB) {
    __syncthreads();
    mosa_rows_load(Ks, k + base, k0, K, 1.0f);
    mosa_rows_load(Vs, v + base, k0, K, 1.0f);
    __syncthreads();
    float s[4][4], dp[4][4];
    mosa_scores<true>(Qs, Ks, dOs, Vs, s, dp);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int r = ty * 4 + i, qi = q0 + r, kj = k0 + tx + 16 * j;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(s[i][j] * scale - lseS[r]) : 0.0f;
        dp[i][j] = p * (dp[i][j] - deltaS[r]);
      }
    mosa_store_t(dSs, dp);
    __syncthreads();
    mosa_pv(dSs, Ks, dQ);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int qi = q0 + ty * 4 + i;
    if (qi >= K) continue;
#pragma unroll
    for (int u = 0; u < TN; ++u) dq[base + (usize)qi * D + tx * TN + u] = dQ[i][u] * scale;
  }
}
`
}

/** Dynamic shared memory (bytes) of a fused CUDA kernel for head dim D (0: static only). */
export function mosaCudaSharedBytes(D: number, entry: string): number {
  const t = cudaTiles(D)
  const head = t.BQ * (D + 4) * 4
  const probs = t.BQ * (t.BQ + 4) * 4
  if (entry === 'mosa_attend') return 3 * head + probs
  if (entry === 'mosa_attend_backward_kv') return 4 * head + 2 * probs
  if (entry === 'mosa_attend_backward_q') return 4 * head + probs
  return 0
}
