#define DT_F16 1
#define TPA_COMBINE 1
#define H 16
#define D 64
#define COMBINE_CHUNK 16
#define COMBINE_THREADS 256
#define COMBINE_PDL 1

#define NEG_BIG (-1.0e30f)
// 64-bit element offsets (NVRTC has no standard headers, so no size_t).
typedef unsigned long long tpa_idx;

#if defined(DT_F32)
typedef float elem_t;
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float from_f32(float x) { return x; }
#elif defined(DT_F16)
typedef unsigned short elem_t;
#ifdef TPA_EMULATE
__device__ __forceinline__ float to_f32(unsigned short h) { return emu::f16_to_f32(h); }
__device__ __forceinline__ unsigned short from_f32(float f) { return emu::f32_to_f16(f); }
#else
__device__ __forceinline__ float to_f32(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ unsigned short from_f32(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif
#elif defined(DT_BF16)
typedef unsigned short elem_t;
__device__ __forceinline__ float to_f32(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
#ifdef TPA_EMULATE
__device__ __forceinline__ unsigned short from_f32(float f) { return emu::f32_to_bf16(f); }
#else
__device__ __forceinline__ unsigned short from_f32(float f) {
  unsigned short h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif
#else
#error "define one of DT_F32, DT_F16, DT_BF16"
#endif

// 16 bytes of storage as floats (4 of float32, 8 of a 16-bit type).
__device__ __forceinline__ void unpack16(const uint4 v, float* out) {
#if defined(DT_F32)
  out[0] = __uint_as_float(v.x);
  out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z);
  out[3] = __uint_as_float(v.w);
#else
  const unsigned int w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    out[2 * k] = to_f32((unsigned short)(w[k] & 0xffffu));
    out[2 * k + 1] = to_f32((unsigned short)(w[k] >> 16));
  }
#endif
}

#ifdef TPA_DECODE
#define TPT (TILE / SUB)
#define DPT (D / SUB)

// Shared-memory column of a record column: B_K and B_V start 16-byte aligned in shared memory.
__device__ __forceinline__ int smem_col(int c) {
#if !AK_FIXED
  if (c >= OFF_AK && c < OFF_AK + H * RK) return SO_AK + (c - OFF_AK);
#endif
  if (c >= OFF_BK && c < OFF_BK + RK * D) return SO_BK + (c - OFF_BK);
#if !AV_FIXED
  if (c >= OFF_AV && c < OFF_AV + H * RV) return SO_AV + (c - OFF_AV);
#endif
  return SO_BV + (c - OFF_BV);
}

#if AK_FIXED
#define A_K(rowp, i, r) aKs[(i) * RK + (r)]
#else
#define A_K(rowp, i, r) (rowp)[SO_AK + (i) * RK + (r)]
#endif
#if AV_FIXED
#define A_V(rowp, i, r) aVs[(i) * RV + (r)]
#else
#define A_V(rowp, i, r) (rowp)[SO_AV + (i) * RV + (r)]
#endif

// Factor-space decode, one split of the context per block (flash-decoding). Per tile of TILE
// tokens: load the records once for all heads; thread (head i, lane sub) scores tokens sub,
// sub + SUB, ... by contracting q_i with B_K (R_K dots) then with A_K; online softmax per head
// across the SUB lanes; then o_i += sum_j,r p_ij A_V[j,i,r] B_V[j,r,:] over its D / SUB
// features. K and V are never materialised. Scores are in the log2 domain (scoreScale holds
// log2(e) / sqrt(d) / R_K). Writes the unnormalised output, max and sum of this split.
extern "C" __global__ void __launch_bounds__(NT) tpa_decode_partial(
    const elem_t* __restrict__ q, const elem_t* __restrict__ store, const elem_t* __restrict__ tail,
#if AK_FIXED
    const elem_t* __restrict__ aKc,
#endif
#if AV_FIXED
    const elem_t* __restrict__ aVc,
#endif
    float* __restrict__ partO, float* __restrict__ partML, unsigned int storeLen, unsigned int tailLen,
    unsigned int tokensPerSplit, unsigned int storeCap, unsigned int tailCap, unsigned int splits,
    float scoreScale) {
  __shared__ __align__(16) float tile[TILE * REC_PAD];
  __shared__ float ws[H * WS_STRIDE];
#if AK_FIXED
  __shared__ float aKs[H * RK];
  for (int e = threadIdx.x; e < H * RK; e += NT) aKs[e] = to_f32(aKc[e]);
#endif
#if AV_FIXED
  __shared__ float aVs[H * RV];
  for (int e = threadIdx.x; e < H * RV; e += NT) aVs[e] = to_f32(aVc[e]);
#endif
  const int tid = threadIdx.x;
  const int i = tid / SUB;
  const int sub = tid % SUB;
  const unsigned int s = blockIdx.x;
  const unsigned int b = blockIdx.y;
  const unsigned int total = storeLen + tailLen;
  const unsigned int start = min(s * tokensPerSplit, total);
  const unsigned int end = min(start + tokensPerSplit, total);
  const bool aligned = ((((unsigned long long)store) | ((unsigned long long)tail)) & 15ull) == 0ull;

  float qr[D];
#pragma unroll
  for (int d = 0; d < D; ++d) qr[d] = to_f32(q[((tpa_idx)b * H + i) * D + d]);
  float acc[DPT];
#pragma unroll
  for (int k = 0; k < DPT; ++k) acc[k] = 0.f;
  float m = NEG_BIG;
  float l = 0.f;

  for (unsigned int t0 = start; t0 < end; t0 += TILE) {
    const int n = (int)min((unsigned int)TILE, end - t0);
    __syncthreads();
    if (VEC > 1 && aligned) {
      const int vecsPerRow = REC / VEC;
      for (int e = tid; e < n * vecsPerRow; e += NT) {
        const int j = e / vecsPerRow;
        const int c = (e - j * vecsPerRow) * VEC;
        const unsigned int g = t0 + j;
        const elem_t* row = g < storeLen ? store + ((tpa_idx)b * storeCap + g) * REC
                                         : tail + ((tpa_idx)b * tailCap + (g - storeLen)) * REC;
        float f[16 / sizeof(elem_t)];
        unpack16(*reinterpret_cast<const uint4*>(row + c), f);
        float* dst = &tile[j * REC_PAD + smem_col(c)];
#pragma unroll
        for (int k = 0; k < (int)(16 / sizeof(elem_t)); k += 4)
          *reinterpret_cast<float4*>(dst + k) = make_float4(f[k], f[k + 1], f[k + 2], f[k + 3]);
      }
    } else {
      for (int e = tid; e < n * REC; e += NT) {
        const int j = e / REC;
        const int c = e - j * REC;
        const unsigned int g = t0 + j;
        const elem_t* row = g < storeLen ? store + ((tpa_idx)b * storeCap + g) * REC
                                         : tail + ((tpa_idx)b * tailCap + (g - storeLen)) * REC;
        tile[j * REC_PAD + smem_col(c)] = to_f32(row[c]);
      }
    }
    __syncthreads();

    // Rows j >= n hold an earlier tile (or nothing yet): computed anyway, then masked out.
    float sv[TPT];
    float tmax = NEG_BIG;
#pragma unroll
    for (int mm = 0; mm < TPT; ++mm) {
      const int j = sub + SUB * mm;
      const float* rowp = &tile[j * REC_PAD];
      float a = 0.f;
#pragma unroll
      for (int r = 0; r < RK; ++r) {
        const float* bk = rowp + SO_BK + r * D;
        float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;
#pragma unroll
        for (int d = 0; d < D; d += 4) {
          const float4 v = *reinterpret_cast<const float4*>(bk + d);
          d0 = fmaf(qr[d], v.x, d0);
          d1 = fmaf(qr[d + 1], v.y, d1);
          d2 = fmaf(qr[d + 2], v.z, d2);
          d3 = fmaf(qr[d + 3], v.w, d3);
        }
        a = fmaf(A_K(rowp, i, r), (d0 + d1) + (d2 + d3), a);
      }
      const float sj = j < n ? a * scoreScale : NEG_BIG;
      sv[mm] = sj;
      tmax = fmaxf(tmax, sj);
    }
#pragma unroll
    for (int o = SUB / 2; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
    const float mNew = fmaxf(m, tmax);
    const float alpha = exp2f(m - mNew);
    float psum = 0.f;
#pragma unroll
    for (int mm = 0; mm < TPT; ++mm) {
      const int j = sub + SUB * mm;
      const float* rowp = &tile[j * REC_PAD];
      const bool live = j < n;
      const float pj = live ? exp2f(sv[mm] - mNew) : 0.f;
      psum += pj;
#pragma unroll
      for (int r = 0; r < RV; ++r) ws[i * WS_STRIDE + j * RV + r] = live ? pj * A_V(rowp, i, r) : 0.f;
    }
#pragma unroll
    for (int o = SUB / 2; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
    l = l * alpha + psum;
    m = mNew;
    __syncthreads();

#pragma unroll
    for (int k = 0; k < DPT; ++k) acc[k] *= alpha;
    const float* wrow = &ws[i * WS_STRIDE];
#pragma unroll 2
    for (int j = 0; j < n; ++j) {
#pragma unroll
      for (int r = 0; r < RV; ++r) {
        const float w = wrow[j * RV + r];
        const float* bv = &tile[j * REC_PAD + SO_BV + r * D + sub * DPT];
#pragma unroll
        for (int k = 0; k < DPT; k += 4) {
          const float4 v = *reinterpret_cast<const float4*>(bv + k);
          acc[k] = fmaf(w, v.x, acc[k]);
          acc[k + 1] = fmaf(w, v.y, acc[k + 1]);
          acc[k + 2] = fmaf(w, v.z, acc[k + 2]);
          acc[k + 3] = fmaf(w, v.w, acc[k + 3]);
        }
      }
    }
  }

  const tpa_idx base = (tpa_idx)b * splits + s;
  float* po = partO + (base * H + i) * D + sub * DPT;
#pragma unroll
  for (int k = 0; k < DPT; ++k) po[k] = acc[k];
  if (sub == 0) {
    partML[(base * H + i) * 2] = m;
    partML[(base * H + i) * 2 + 1] = l;
  }
}

#endif

#ifdef TPA_DECODE_MMA
// Tensor-core variant for float16 / bfloat16 caches: the same split-K factor-space decode with
// the two contractions as mma.sync.m16n8k16 (float32 accumulation). Rows of every mma are 16
// heads; the columns / reduction of the score product are the (token, rank) rows of B_K, so
// S = Q B_K^T, s = A_K-weighted sum over each token's ranks; then W = p * A_V (packed straight
// from the score fragments into A fragments) and O += W B_V. Needs H % 16 == 0, D % 16 == 0,
// R_K == R_V == R in {2, 4}, contextual A. Records are staged whole into shared memory with
// cp.async (double-buffered), TILE = 64 / R tokens per stage, one 16-column chunk per warp.
// Defines: H, D, R, REC, OFF_AK, OFF_BK, OFF_AV, OFF_BV (elements), P_B (shared token stride,
// bytes, a multiple of 16 with P_B % 128 == 16 R % 128 so A reads hit distinct banks).
#define MT (H / 16)
#define KS (D / 16)
#define NTD (D / 8)
#define CHT (16 / R)
#define TILE (4 * CHT)
#define REC_VECS (REC * 2 / 16)
// Stage buffers in flight (2: double buffering). More than fit 48 KiB statically take dynamic
// shared memory (MMA_DYN_SMEM 1, launched with STAGES * TILE * P_B bytes).
#ifndef STAGES
#define STAGES 2
#endif
#ifndef MMA_DYN_SMEM
#define MMA_DYN_SMEM 0
#endif
// Row stride (floats) of the per-warp output slices of the final warp merge: D + 8 keeps the
// float2 stores of a half-warp (8 rows x 4 column pairs) on distinct banks.
#define OW_STRIDE (D + 8)

#ifdef TPA_EMULATE
// CPU emulation (tests without a GPU, see the package's test/emu): the same operations on fibers.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, unsigned int bytes) { emu::cp_async16(dst, src, bytes); }
__device__ __forceinline__ void cp_commit() {}
__device__ __forceinline__ void cp_wait_stages() {}
__device__ __forceinline__ void cp_wait_all() {}
__device__ __forceinline__ void ldsm_x4(const void* p, unsigned int* r) { emu::ldmatrix_x4(r, p, false); }
__device__ __forceinline__ void ldsm_x4_t(const void* p, unsigned int* r) { emu::ldmatrix_x4(r, p, true); }
#if defined(DT_F16)
__device__ __forceinline__ void mma16816(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) { emu::mma16816(c, a, b0, b1, true); }
__device__ __forceinline__ unsigned int pack2(float lo, float hi) { return emu::f32_to_f16(lo) | ((unsigned int)emu::f32_to_f16(hi) << 16); }
#else
__device__ __forceinline__ void mma16816(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) { emu::mma16816(c, a, b0, b1, false); }
__device__ __forceinline__ unsigned int pack2(float lo, float hi) { return emu::f32_to_bf16(lo) | ((unsigned int)emu::f32_to_bf16(hi) << 16); }
#endif
#else
__device__ __forceinline__ unsigned int smem_u32(const void* p) {
  unsigned int r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
  return r;
}
// 16-byte async copy global -> shared; bytes 0 fills the 16 bytes with zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, unsigned int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;"); }
// With STAGES groups committed, waits until at most STAGES - 1 are pending: the oldest tile has landed.
__device__ __forceinline__ void cp_wait_stages() { asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 1)); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_group 0;"); }
__device__ __forceinline__ void ldsm_x4(const void* p, unsigned int* r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(const void* p, unsigned int* r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void mma16816(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
#if defined(DT_F16)
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
#endif
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two floats as a packed 16-bit pair, lo in the low half (the lower column of a fragment).
__device__ __forceinline__ unsigned int pack2(float lo, float hi) {
  unsigned int r;
#if defined(DT_F16)
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
  return r;
}
#endif
// Two consecutive 16-bit values of shared memory as floats.
__device__ __forceinline__ float2 ld2(const unsigned char* p) {
  const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
  return make_float2(to_f32((unsigned short)(w & 0xffffu)), to_f32((unsigned short)(w >> 16)));
}

extern "C" __global__ void __launch_bounds__(128) tpa_decode_partial_mma(
    const elem_t* __restrict__ q, const elem_t* __restrict__ store, const elem_t* __restrict__ tail,
    float* __restrict__ partO, float* __restrict__ partML, unsigned int storeLen, unsigned int tailLen,
    unsigned int tokensPerSplit, unsigned int storeCap, unsigned int tailCap, unsigned int splits,
    float scoreScale) {
#if MMA_DYN_SMEM && !defined(TPA_EMULATE)
  extern __shared__ __align__(128) unsigned char smem[];
#else
  __shared__ __align__(128) unsigned char smem[STAGES * TILE * P_B];
#endif
#if PDL_TRIGGER && !defined(TPA_EMULATE)
  // The merge launch (a programmatic dependent) may start now; it waits for this grid's writes.
  asm volatile("griddepcontrol.launch_dependents;");
#endif
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const unsigned int s = blockIdx.x;
  const unsigned int b = blockIdx.y;
  const unsigned int total = storeLen + tailLen;
  const unsigned int start = min(s * tokensPerSplit, total);
  const unsigned int end = min(start + tokensPerSplit, total);

  // Stages tokens [t0, t0 + TILE) of this split into buffer buf; rows past the split's end are zero-filled.
  auto stage = [&](unsigned int t0, int buf) {
    unsigned char* base = smem + buf * TILE * P_B;
    for (int v = tid; v < TILE * REC_VECS; v += 128) {
      const int j = v / REC_VECS;
      const int c = v - j * REC_VECS;
      const unsigned int gtok = t0 + j;
      const bool live = gtok < end;
      const unsigned int gg = live ? gtok : start;
      const elem_t* row = gg < storeLen ? store + ((tpa_idx)b * storeCap + gg) * REC
                                        : tail + ((tpa_idx)b * tailCap + (gg - storeLen)) * REC;
      cp_async16(base + j * P_B + c * 16, row + c * 8, live ? 16u : 0u);
    }
  };

  // The first STAGES - 1 tiles go out before anything else (the query, the accumulators), so
  // the cache reads start at the kernel's first instructions.
#pragma unroll
  for (int k = 0; k < STAGES - 1; ++k) {
    if (start + k * TILE < end) stage(start + k * TILE, k);
    cp_commit();
  }
  // Q as A fragments, [m-tile][k-step][4].
  unsigned int qa[MT][KS][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
      const elem_t* r0 = q + ((tpa_idx)b * H + mt * 16 + g) * D + ks * 16 + 2 * t;
      const elem_t* r1 = r0 + 8 * D;
      qa[mt][ks][0] = *reinterpret_cast<const unsigned int*>(r0);
      qa[mt][ks][1] = *reinterpret_cast<const unsigned int*>(r1);
      qa[mt][ks][2] = *reinterpret_cast<const unsigned int*>(r0 + 8);
      qa[mt][ks][3] = *reinterpret_cast<const unsigned int*>(r1 + 8);
    }
  float o[MT][NTD][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int j = 0; j < NTD; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
  float mRun[MT][2], lRun[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) mRun[mt][0] = mRun[mt][1] = NEG_BIG, lRun[mt][0] = lRun[mt][1] = 0.f;

  int it = 0;
  for (unsigned int t0 = start; t0 < end; t0 += TILE, ++it) {
    // Refill the buffer the previous iteration read (every warp has passed its closing barrier).
    if (t0 + (STAGES - 1) * TILE < end) stage(t0 + (STAGES - 1) * TILE, (it + STAGES - 1) % STAGES);
    cp_commit();
    cp_wait_stages();
    __syncthreads();
    const unsigned char* buf = smem + (it % STAGES) * TILE * P_B;
    const int tok0 = warp * CHT;
    const int nLive = (int)min((unsigned int)TILE, end - t0);

    // S = Q B_K^T over this warp's 16 (token, rank) columns: two n-tiles of 8.
    float sf[MT][2][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) sf[mt][nt][0] = sf[mt][nt][1] = sf[mt][nt][2] = sf[mt][nt][3] = 0.f;
    {
      const int mi = lane >> 3;
      const int n = (mi >> 1) * 8 + (lane & 7);
      const unsigned char* rowB = buf + (tok0 + n / R) * P_B + (OFF_BK + (n % R) * D) * 2 + (mi & 1) * 16;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        unsigned int bf[4];
        ldsm_x4(rowB + ks * 32, bf);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(sf[mt][0], qa[mt][ks], bf[0], bf[1]);
          mma16816(sf[mt][1], qa[mt][ks], bf[2], bf[3]);
        }
      }
    }

    // Scores per (head, token): this thread's columns 2t, 2t+1 of n-tile nt are ranks r0, r0+1
    // of token (nt * 8 + 2t) / R; with R = 4 the other two ranks sit in lane t ^ 1.
    const int r0 = (2 * t) % R;
    float sc[MT][2][2];
    bool live[2];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int tk = tok0 + (nt * 8 + 2 * t) / R;
      live[nt] = tk < nLive;
      const unsigned char* rowp = buf + tk * P_B;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int rh = 0; rh < 2; ++rh) {
          const int h = mt * 16 + g + rh * 8;
          const float2 a = ld2(rowp + (OFF_AK + h * R + r0) * 2);
          float v = a.x * sf[mt][nt][2 * rh] + a.y * sf[mt][nt][2 * rh + 1];
          if (R == 4) v += __shfl_xor_sync(0xffffffffu, v, 1);
          sc[mt][nt][rh] = live[nt] ? v * scoreScale : NEG_BIG;
        }
    }

    // Online softmax per head row (the row's columns are spread over the 4 lanes of group g).
    unsigned int wa[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float p[2][2];
#pragma unroll
      for (int rh = 0; rh < 2; ++rh) {
        float mx = fmaxf(sc[mt][0][rh], sc[mt][1][rh]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mNew = fmaxf(mRun[mt][rh], mx);
        const float alpha = exp2f(mRun[mt][rh] - mNew);
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          p[nt][rh] = live[nt] ? exp2f(sc[mt][nt][rh] - mNew) : 0.f;
          // With R = 4 lanes t and t ^ 1 hold the same token: count it once.
          if (R != 4 || (t & 1) == 0) sum += p[nt][rh];
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        lRun[mt][rh] = lRun[mt][rh] * alpha + sum;
        mRun[mt][rh] = mNew;
#pragma unroll
        for (int j = 0; j < NTD; ++j) {
          o[mt][j][2 * rh] *= alpha;
          o[mt][j][2 * rh + 1] *= alpha;
        }
      }
      // W = p * A_V in the A-fragment layout: a0 (row g, n-tile 0), a1 (row g+8, n-tile 0),
      // a2 (row g, n-tile 1), a3 (row g+8, n-tile 1).
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const unsigned char* rowp = buf + (tok0 + (nt * 8 + 2 * t) / R) * P_B;
#pragma unroll
        for (int rh = 0; rh < 2; ++rh) {
          const int h = mt * 16 + g + rh * 8;
          const float2 a = ld2(rowp + (OFF_AV + h * R + r0) * 2);
          wa[mt][nt * 2 + rh] = pack2(p[nt][rh] * a.x, p[nt][rh] * a.y);
        }
      }
    }

    // O += W B_V: B fragments of 16 (token, rank) rows x 8 features via transposed ldmatrix.
    {
      const int mi = lane >> 3;
      const int k = (mi & 1) * 8 + (lane & 7);
      const unsigned char* rowV = buf + (tok0 + k / R) * P_B + (OFF_BV + (k % R) * D) * 2 + (mi >> 1) * 16;
#pragma unroll
      for (int j = 0; j < NTD; j += 2) {
        unsigned int bf[4];
        ldsm_x4_t(rowV + j * 16, bf);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(o[mt][j], wa[mt], bf[0], bf[1]);
          mma16816(o[mt][j + 1], wa[mt], bf[2], bf[3]);
        }
      }
    }
    __syncthreads();
  }
  cp_wait_all();
  __syncthreads();

  // Merge the four warps in shared memory (the stage buffers are free now): each warp writes its
  // output rescaled to the block's max into its own slice, then the slices are summed with
  // 16-byte reads (no shared-memory atomics).
  float* oW = reinterpret_cast<float*>(smem);
  float* mW = oW + 4 * H * OW_STRIDE;
  float* lW = mW + 4 * H;
  if (t == 0) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int rh = 0; rh < 2; ++rh) {
        mW[warp * H + mt * 16 + g + rh * 8] = mRun[mt][rh];
        lW[warp * H + mt * 16 + g + rh * 8] = lRun[mt][rh];
      }
  }
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rh = 0; rh < 2; ++rh) {
      const int h = mt * 16 + g + rh * 8;
      const float mAll = fmaxf(fmaxf(mW[h], mW[H + h]), fmaxf(mW[2 * H + h], mW[3 * H + h]));
      const float f = exp2f(mRun[mt][rh] - mAll);
      float* dst = oW + (warp * H + h) * OW_STRIDE + 2 * t;
#pragma unroll
      for (int j = 0; j < NTD; ++j)
        *reinterpret_cast<float2*>(dst + j * 8) = make_float2(o[mt][j][2 * rh] * f, o[mt][j][2 * rh + 1] * f);
    }
  __syncthreads();
  const tpa_idx base = (tpa_idx)b * splits + s;
  float4* out4 = reinterpret_cast<float4*>(partO + base * H * D);
  for (int e = tid; e < H * D / 4; e += 128) {
    const int h = e / (D / 4);
    const int c = (e - h * (D / 4)) * 4;
    float4 sum = *reinterpret_cast<const float4*>(oW + h * OW_STRIDE + c);
#pragma unroll
    for (int w = 1; w < 4; ++w) {
      const float4 v = *reinterpret_cast<const float4*>(oW + (w * H + h) * OW_STRIDE + c);
      sum.x += v.x;
      sum.y += v.y;
      sum.z += v.z;
      sum.w += v.w;
    }
    out4[e] = sum;
  }
  for (int h = tid; h < H; h += 128) {
    float mAll = NEG_BIG;
    for (int w = 0; w < 4; ++w) mAll = fmaxf(mAll, mW[w * H + h]);
    float l = 0.f;
    for (int w = 0; w < 4; ++w) l += exp2f(mW[w * H + h] - mAll) * lW[w * H + h];
    partML[(base * H + h) * 2] = mAll;
    partML[(base * H + h) * 2 + 1] = l;
  }
}
#endif

#ifdef TPA_COMBINE
// Merges the splits of one (head, batch row): o = outScale * sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s.
// One block per (head i, COMBINE_CHUNK-feature chunk, batch row b), COMBINE_THREADS threads in
// groups of COMBINE_CHUNK / 4 lanes: a lane owns 4 features (one 16-byte load) and its group the
// splits g, g + groups, ... The splits are spread over the threads, not looped over by each,
// so at batch 1 with hundreds of splits the merge costs a few memory round trips rather than
// one per split, and the chunks give the merge more blocks than heads x batch rows.
#define COMBINE_LANES (COMBINE_CHUNK / 4)
#define COMBINE_GROUPS (COMBINE_THREADS / COMBINE_LANES)
#define COMBINE_WARPS (COMBINE_THREADS / 32)

// Max (isMax) or sum over the block; every thread gets the result. scratch: COMBINE_WARPS floats.
__device__ __forceinline__ float combine_block_reduce(float v, bool isMax, float* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = isMax ? fmaxf(v, o) : v + o;
  }
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = scratch[0];
  for (int w = 1; w < COMBINE_WARPS; ++w) r = isMax ? fmaxf(r, scratch[w]) : r + scratch[w];
  // Everyone has read scratch before the next reduction writes it.
  __syncthreads();
  return r;
}

extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) tpa_decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, elem_t* __restrict__ out,
    unsigned int splits, float outScale) {
  __shared__ float scratch[COMBINE_WARPS];
  __shared__ float4 warpSums[COMBINE_WARPS][COMBINE_LANES];
#if COMBINE_PDL && !defined(TPA_EMULATE)
  // Launched as a programmatic dependent of the partial launch: wait for its writes.
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const int tid = threadIdx.x;
  const unsigned int i = blockIdx.x / (D / COMBINE_CHUNK);
  const unsigned int chunk = blockIdx.x - i * (D / COMBINE_CHUNK);
  const unsigned int b = blockIdx.y;
  const tpa_idx row0 = (tpa_idx)b * splits;
  const float2* ml = reinterpret_cast<const float2*>(partML);

  float m = NEG_BIG;
  for (unsigned int s = tid; s < splits; s += COMBINE_THREADS) m = fmaxf(m, ml[(row0 + s) * H + i].x);
  m = combine_block_reduce(m, true, scratch);
  float l = 0.f;
  for (unsigned int s = tid; s < splits; s += COMBINE_THREADS) {
    const float2 v = ml[(row0 + s) * H + i];
    l += exp2f(v.x - m) * v.y;
  }
  l = combine_block_reduce(l, false, scratch);

  const int lane = tid % COMBINE_LANES;
  const int group = tid / COMBINE_LANES;
  const float4* o4 = reinterpret_cast<const float4*>(partO);
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
  for (unsigned int s = group; s < splits; s += COMBINE_GROUPS) {
    const tpa_idx k = (row0 + s) * H + i;
    const float w = exp2f(ml[k].x - m);
    const float4 v = o4[(k * D + chunk * COMBINE_CHUNK) / 4 + lane];
    acc.x += w * v.x;
    acc.y += w * v.y;
    acc.z += w * v.z;
    acc.w += w * v.w;
  }
  // The groups of a warp differ in the lane bits above log2(COMBINE_LANES): fold them, then the warps.
#pragma unroll
  for (int off = COMBINE_LANES; off < 32; off <<= 1) {
    acc.x += __shfl_xor_sync(0xffffffffu, acc.x, off);
    acc.y += __shfl_xor_sync(0xffffffffu, acc.y, off);
    acc.z += __shfl_xor_sync(0xffffffffu, acc.z, off);
    acc.w += __shfl_xor_sync(0xffffffffu, acc.w, off);
  }
  if ((tid & 31) < COMBINE_LANES) warpSums[tid >> 5][lane] = acc;
  __syncthreads();
  if (tid < COMBINE_LANES) {
    float4 sum = warpSums[0][tid];
    for (int w = 1; w < COMBINE_WARPS; ++w) {
      sum.x += warpSums[w][tid].x;
      sum.y += warpSums[w][tid].y;
      sum.z += warpSums[w][tid].z;
      sum.w += warpSums[w][tid].w;
    }
    const float inv = l > 0.f ? outScale / l : 0.f;
    elem_t* dst = out + ((tpa_idx)b * H + i) * D + chunk * COMBINE_CHUNK + tid * 4;
    dst[0] = from_f32(sum.x * inv);
    dst[1] = from_f32(sum.y * inv);
    dst[2] = from_f32(sum.z * inv);
    dst[3] = from_f32(sum.w * inv);
  }
}
#endif

#ifdef TPA_CACHE_WRITE
#if CW_VEC
typedef uint4 unit_t;
#else
typedef elem_t unit_t;
#endif
// out = store with rows [offset, offset + n) of every batch row taken from src (ROW_UNITS
// units of unit_t per row). Rows at and past offset + n are left unwritten: nothing reads them
// before a later write. Grid: x strides over one batch row's units, y is the batch row.
extern "C" __global__ void tpa_cache_write(const unit_t* __restrict__ store, const unit_t* __restrict__ src,
                                           unit_t* __restrict__ out, unsigned int offset, unsigned int n,
                                           unsigned int cap) {
  const tpa_idx b = blockIdx.y;
  const unsigned int used = (offset + n) * ROW_UNITS;
  const tpa_idx rowBase = b * cap * ROW_UNITS;
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < used; e += gridDim.x * blockDim.x) {
    const unsigned int row = e / ROW_UNITS;
    out[rowBase + e] = row < offset ? store[rowBase + e]
                                    : src[(b * n + (row - offset)) * ROW_UNITS + (e - row * ROW_UNITS)];
  }
}
#endif

#ifdef TPA_DEVICE_DELAY
// The bench's launch-queue filler: one thread spins for micros microseconds of the GPU's global
// timer. Timed launches queued behind it start back to back when it ends, so events around them
// time the GPU alone, not how fast the host issues launches. Writes the time it spun (us).
extern "C" __global__ void tpa_device_delay(float* __restrict__ out, unsigned int micros) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < 1000ull * micros);
  if (threadIdx.x == 0) out[0] = (float)((t - t0) / 1000ull);
}
#endif

// The bench's bandwidth probe: copies n16 16-byte words.
extern "C" __global__ void tpa_copy(const uint4* __restrict__ src, uint4* __restrict__ dst, unsigned int n16) {
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < n16; e += gridDim.x * blockDim.x) dst[e] = src[e];
}
