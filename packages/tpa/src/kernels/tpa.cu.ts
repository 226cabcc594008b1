/**
 * The package's CUDA C kernels, one source for all of them; the TypeScript side prepends the
 * #defines (shape, dtype, which kernel group) and the backend compiles it (NVRTC), keyed by
 * name and source hash. No headers are included, so NVRTC needs no include path: 16-bit floats
 * are converted with inline PTX. Storage: float32, float16 or bfloat16 elements, contiguous.
 *
 * Defines: DT_F32 | DT_F16 | DT_BF16. TPA_DECODE (decode kernels): H, D, RK, RV, REC, OFF_AK,
 * OFF_BK, OFF_AV, OFF_BV, SO_AK, SO_BK, SO_AV, SO_BV, REC_PAD, TILE, SUB, NT, WS_STRIDE, VEC,
 * AK_FIXED, AV_FIXED. TPA_COMBINE: H, D. TPA_CACHE_WRITE: ROW_UNITS, CW_VEC.
 */
export const TPA_CUDA_SOURCE = /* cuda */ `
#define NEG_BIG (-1.0e30f)

#if defined(DT_F32)
typedef float elem_t;
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float from_f32(float x) { return x; }
#elif defined(DT_F16)
typedef unsigned short elem_t;
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
#elif defined(DT_BF16)
typedef unsigned short elem_t;
__device__ __forceinline__ float to_f32(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
__device__ __forceinline__ unsigned short from_f32(float f) {
  unsigned short h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
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
  for (int d = 0; d < D; ++d) qr[d] = to_f32(q[((size_t)b * H + i) * D + d]);
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
        const elem_t* row = g < storeLen ? store + ((size_t)b * storeCap + g) * REC
                                         : tail + ((size_t)b * tailCap + (g - storeLen)) * REC;
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
        const elem_t* row = g < storeLen ? store + ((size_t)b * storeCap + g) * REC
                                         : tail + ((size_t)b * tailCap + (g - storeLen)) * REC;
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

  const size_t base = (size_t)b * splits + s;
  float* po = partO + (base * H + i) * D + sub * DPT;
#pragma unroll
  for (int k = 0; k < DPT; ++k) po[k] = acc[k];
  if (sub == 0) {
    partML[(base * H + i) * 2] = m;
    partML[(base * H + i) * 2 + 1] = l;
  }
}

#endif

#ifdef TPA_COMBINE
// Merges the splits of one (head, batch row): o = outScale * sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s.
extern "C" __global__ void tpa_decode_combine(const float* __restrict__ partO, const float* __restrict__ partML,
                                              elem_t* __restrict__ out, unsigned int splits, float outScale) {
  const int i = blockIdx.x;
  const unsigned int b = blockIdx.y;
  float m = NEG_BIG;
  for (unsigned int s = 0; s < splits; ++s) m = fmaxf(m, partML[(((size_t)b * splits + s) * H + i) * 2]);
  float l = 0.f;
  for (unsigned int s = 0; s < splits; ++s) {
    const size_t k = ((size_t)b * splits + s) * H + i;
    l += exp2f(partML[k * 2] - m) * partML[k * 2 + 1];
  }
  const float inv = l > 0.f ? outScale / l : 0.f;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (unsigned int s = 0; s < splits; ++s) {
      const size_t k = ((size_t)b * splits + s) * H + i;
      o += exp2f(partML[k * 2] - m) * partO[k * D + d];
    }
    out[((size_t)b * H + i) * D + d] = from_f32(o * inv);
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
  const size_t b = blockIdx.y;
  const unsigned int used = (offset + n) * ROW_UNITS;
  const size_t rowBase = b * cap * ROW_UNITS;
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < used; e += gridDim.x * blockDim.x) {
    const unsigned int row = e / ROW_UNITS;
    out[rowBase + e] = row < offset ? store[rowBase + e]
                                    : src[(b * n + (row - offset)) * ROW_UNITS + (e - row * ROW_UNITS)];
  }
}
#endif

// The bench's bandwidth probe: copies n16 16-byte words.
extern "C" __global__ void tpa_copy(const uint4* __restrict__ src, uint4* __restrict__ dst, unsigned int n16) {
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < n16; e += gridDim.x * blockDim.x) dst[e] = src[e];
}
`

/** The source with its #defines in front. */
export function cudaSource(defines: Record<string, string | number>): string {
  const lines = Object.entries(defines).map(([k, v]) => `#define ${k} ${v}`)
  return `${lines.join('\n')}\n${TPA_CUDA_SOURCE}`
}
