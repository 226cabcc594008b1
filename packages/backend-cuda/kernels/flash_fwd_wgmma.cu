// Flash-attention forward for Hopper (sm_90a) on warpgroup MMA (wgmma.mma_async), float32
// accumulation. A CTA owns BR = 128 query rows: two warpgroups of 64 rows each. All 256 threads
// stream key/value tiles of BC keys into STAGES shared-memory stages with cp.async (128-byte
// swizzled, see wgmma.cuh); each warpgroup computes S = Q K^T with Q and K from shared memory,
// the online softmax (base 2) on the accumulators (same per-thread rows as mma.sync's C fragment,
// repeated along N), then O += P V with P converted to 16 bits in registers as the A operand and
// V read MN-major (transposed) from shared memory.
// Defines: DT (__half or __nv_bfloat16; DT_IS_HALF for half), HD (64 or 128; Dv == D); tunables
// BC (keys per tile, 64 or 128), STAGES (2 or 3), OVERLAP (1: softmax of tile j overlaps P V of
// tile j - 1; needs STAGES=3), MIN_CTAS (CTAs per SM the registers are capped for), FAST_EXP,
// LAZY_RESCALE. Key tiles are skipped and masks applied from positions
// (causal, window, sinks, keep), exactly as flash_fwd.cu does.
// Only built for sm_90a (the backend dispatches here on compute capability 9.0, else flash_fwd.cu);
// compiled for another architecture the kernel traps.
#include "wgmma.cuh"

#ifndef HD
#define HD 128
#endif
#ifndef BC
#define BC 128
#endif
#ifndef OVERLAP
#define OVERLAP 0
#endif
#ifndef STAGES
#define STAGES (OVERLAP ? 3 : 2)
#endif
#define BR 128
#define NTHREADS 256
#define RC (HD / 8)  // 16-byte chunks per row
#define LN2 0.6931471805599453f
#define NS (BC / 2)  // S accumulators per thread (64 x BC per warpgroup)
#define NO (HD / 2)  // O accumulators per thread (64 x HD per warpgroup)

#if BC == 128
#define WGMMA_S wgmma_ss_n128
#else
#define WGMMA_S wgmma_ss_n64
#endif
#if HD == 128
#define WGMMA_O wgmma_rs_n128
#else
#define WGMMA_O wgmma_rs_n64
#endif

#ifndef MIN_CTAS
#define MIN_CTAS 1
#endif

// Sets to -inf this thread's scores that the mask hides: rows row0 and row0 + 8 (positions from
// qposg), keys key0 + nb * 8 + e of the tile (the accumulator layout of wgmma's m64nN fragment).
__device__ __forceinline__ void mask_scores(float* s, const int* qposg, int row0, int Tq, const int* kposg,
                                            const u8* keepg, int key0, int Tk, int causal, int window, int sinks,
                                            int has_keep) {
  int qp[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int row = row0 + 8 * hr;
    qp[hr] = row < Tq ? qposg[row] : 0;
  }
#pragma unroll
  for (int nb = 0; nb < BC / 8; ++nb)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int key = key0 + nb * 8 + e;
      const bool kin = key < Tk;
      const int kp = kin ? kposg[key] : 0;
      const int kv = (has_keep && kin) ? (int)keepg[key] : -1;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)
        if (!(kin && key_visible(qp[hr], kp, kv, causal, window, sinks))) s[nb * 4 + hr * 2 + e] = -F_INF;
    }
}

// The tile's row maxima of this thread's two rows (over the quad that shares them), in base 2.
__device__ __forceinline__ void tile_row_max(const float* s, float scale_log2, float* mx) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float x = -F_INF;
#pragma unroll
    for (int nb = 0; nb < BC / 8; ++nb) x = fmaxf(x, fmaxf(s[nb * 4 + hr * 2], s[nb * 4 + hr * 2 + 1]));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    mx[hr] = x * scale_log2;
  }
}

// P = exp2(S * scale - m) for this thread's two rows, packed to 16 bits as the A fragments of
// P V (k-step nb / 2: regs {row g: k 0-7, row g+8: k 0-7, row g: k 8-15, row g+8: k 8-15}), and
// the rows' sums of P.
__device__ __forceinline__ void tile_probabilities(const float* s, const float* m, float scale_log2, u32 (*p)[4],
                                                   float* rs) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const float m_use = m[hr] == -F_INF ? 0.f : m[hr];
    float sum = 0.f;
#pragma unroll
    for (int nb = 0; nb < BC / 8; ++nb) {
      const float p0 = EXP2(fmaf(s[nb * 4 + hr * 2], scale_log2, -m_use));
      const float p1 = EXP2(fmaf(s[nb * 4 + hr * 2 + 1], scale_log2, -m_use));
      sum += p0 + p1;
      p[nb >> 1][(nb & 1) * 2 + hr] = pack2(p0, p1);
    }
    rs[hr] = sum;
  }
}

extern "C" __global__ void __launch_bounds__(NTHREADS, MIN_CTAS)
    flash_fwd_wgmma_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                      const int* __restrict__ qpos, const int* __restrict__ kpos, const u8* __restrict__ keep,
                      const TileBounds* __restrict__ kbounds, DT* __restrict__ out, float* __restrict__ lse, int Hq,
                      int Hk, int Tq, int Tk, float scale_log2, int causal, int window, int sinks, int has_keep) {
#if defined(ATTNKIT_HAS_WGMMA)
  DYN_SMEM(unsigned char, smem_raw);
  // SW128 atoms must start on 1024-byte boundaries: round the dynamic buffer up (1 KiB slack).
  const u32 raw_s = smem_addr(smem_raw);
  unsigned char* smem = smem_raw + ((1024u - (raw_s & 1023u)) & 1023u);
  DT* sQ = reinterpret_cast<DT*>(smem);  // BR x HD
  DT* sK = sQ + BR * HD;                 // STAGES x (BC x HD)
  DT* sV = sK + STAGES * BC * HD;        // STAGES x (BC x HD)
  const u32 sQa = smem_addr(sQ), sKa = smem_addr(sK), sVa = smem_addr(sV);

  const int tid = threadIdx.x, wg = tid >> 7, wq = (tid >> 5) & 3, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int ntq = (Tq + BR - 1) / BR;
  const int qtile = ntq - 1 - (int)blockIdx.x;  // heaviest (latest) query tiles start first
  const int bh = blockIdx.y;
  const int b = bh / Hq, h = bh - b * Hq;
  const int bhk = b * Hk + h / (Hq / Hk);
  const int q0 = qtile * BR;
  const int ntk = (Tk + BC - 1) / BC;
  const int row0 = q0 + 64 * wg + 16 * wq + g;  // this thread's rows: row0 and row0 + 8

  const DT* qg = q + (i64)bh * Tq * HD;
  const DT* kg = k + (i64)bhk * Tk * HD;
  const DT* vg = v + (i64)bhk * Tk * HD;
  const int* kposg = kpos + (i64)bhk * Tk;
  const u8* keepg = keep + (has_keep ? (i64)bhk * Tk : 0);
  const TileBounds* kbg = kbounds + (i64)bhk * ntk;

  int qmin, qmax;
  block_position_range(qpos + (i64)bh * Tq, q0, BR, Tq, qmin, qmax);

  auto next_tile = [&](int from) -> int {
    for (int t = from; t < ntk; ++t) {
      const TileBounds kb = kbg[t];
      if (tile_may_be_visible(qmin, qmax, kb, causal, window, sinks, has_keep)) return t;
    }
    return -1;
  };
  auto load_kv = [&](int tile, int stage) {
    DT* dK = sK + stage * BC * HD;
    DT* dV = sV + stage * BC * HD;
#pragma unroll
    for (int i = 0; i < BC * RC / NTHREADS; ++i) {
      const int c = tid + i * NTHREADS;
      const int r = c / RC, ch = c - r * RC;
      const int key = tile * BC + r;
      const i64 off = (i64)min(key, Tk - 1) * HD + ch * 8;
      const int bytes = key < Tk ? 16 : 0;
      cp_async16(dK + sw128_off(r, ch, BC), kg + off, bytes);
      cp_async16(dV + sw128_off(r, ch, BC), vg + off, bytes);
    }
  };

  float o[NO];
  float m[2], l[2];
#pragma unroll
  for (int i = 0; i < NO; ++i) o[i] = 0.f;
  m[0] = m[1] = -F_INF;
  l[0] = l[1] = 0.f;

#if OVERLAP
  // Software-pipelined variant (FA3's intra-warpgroup overlap): in the iteration of tile j, the
  // warpgroup issues S_j = Q K_j^T and O += P_{j-1} V_{j-1} together, and computes the softmax of
  // S_j while the tensor cores still run P_{j-1} V_{j-1}; O is rescaled once that is done. V_{j-1}
  // is read during iteration j, so tile j + 1 loads into a third stage (STAGES must be 3).
  static_assert(STAGES == 3, "OVERLAP needs STAGES=3");
  int cur = next_tile(0);
  if (cur >= 0) {
#pragma unroll
    for (int i = 0; i < BR * RC / NTHREADS; ++i) {
      const int c = tid + i * NTHREADS;
      const int r = c / RC, ch = c - r * RC;
      const int row = q0 + r;
      cp_async16(sQ + sw128_off(r, ch, BR), qg + (i64)min(row, Tq - 1) * HD + ch * 8, row < Tq ? 16 : 0);
    }
    load_kv(cur, 0);
  }
  cp_async_commit();
  int nxt = cur >= 0 ? next_tile(cur + 1) : -1;
  int stage = 0, pstage = 0;
  bool have_p = false;
  u32 pa[BC / 16][4];
  while (cur >= 0) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();  // everyone is done with tile j - 2's stage (its P V was waited for)
    if (nxt >= 0) load_kv(nxt, (stage + 1) % 3);
    cp_async_commit();
    const u32 kA = sKa + stage * BC * HD * 2;
    float s[NS];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const u64 da = sw128_desc(sQa + (kk >> 2) * BR * 128 + wg * 64 * 128 + (kk & 3) * 32, 16, 1024);
      const u64 db = sw128_desc(kA + (kk >> 2) * BC * 128 + (kk & 3) * 32, 16, 1024);
      WGMMA_S(s, da, db, kk);
    }
    wgmma_commit();
    if (have_p) {
      const u32 vA = sVa + pstage * BC * HD * 2;
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) WGMMA_O(o, pa[kk], sw128_desc(vA + kk * 16 * 128, BC * 128, 1024), 1);
      wgmma_commit();
      wgmma_wait<1>();
    } else {
      wgmma_wait<0>();
    }
    fence_regs<NS>(s);

    const TileBounds kb = kbg[cur];
    if (!tile_all_visible(qmin, qmax, kb, causal, window, sinks, has_keep))
      mask_scores(s, qpos + (i64)bh * Tq, row0, Tq, kposg, keepg, cur * BC + 2 * t4, Tk, causal, window, sinks, has_keep);
    float mx[2];
    tile_row_max(s, scale_log2, mx);
#ifdef LAZY_RESCALE
    const bool rescale = __any_sync(0xffffffffu, mx[0] > m[0] + 8.f || mx[1] > m[1] + 8.f);
#else
    const bool rescale = true;
#endif
    float corr[2] = {1.f, 1.f};
    if (rescale) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float m_new = fmaxf(m[hr], mx[hr]);
        corr[hr] = m_new == -F_INF ? 1.f : EXP2(m[hr] - m_new);
        m[hr] = m_new;
      }
    }
    u32 pn[BC / 16][4];
    float rs[2];
    tile_probabilities(s, m, scale_log2, pn, rs);
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) l[hr] = l[hr] * corr[hr] + rs[hr];
    if (have_p) {
      wgmma_wait<0>();
      fence_regs<NO>(o);
    }
    if (rescale) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)
#pragma unroll
        for (int nb = 0; nb < HD / 8; ++nb) {
          o[nb * 4 + hr * 2] *= corr[hr];
          o[nb * 4 + hr * 2 + 1] *= corr[hr];
        }
    }
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) pa[kk][r] = pn[kk][r];
    have_p = true;
    pstage = stage;
    cur = nxt;
    nxt = cur >= 0 ? next_tile(cur + 1) : -1;
    stage = (stage + 1) % 3;
  }
  if (have_p) {
    const u32 vA = sVa + pstage * BC * HD * 2;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) WGMMA_O(o, pa[kk], sw128_desc(vA + kk * 16 * 128, BC * 128, 1024), 1);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs<NO>(o);
  }
#else
  // Prologue: Q and the first STAGES - 1 visible tiles, one cp.async group each (Q with the first).
  int tiles[STAGES];  // tiles[j]: the tile loaded j tiles ahead of the current one (-1: none)
  int cur = next_tile(0);
  if (cur >= 0) {
#pragma unroll
    for (int i = 0; i < BR * RC / NTHREADS; ++i) {
      const int c = tid + i * NTHREADS;
      const int r = c / RC, ch = c - r * RC;
      const int row = q0 + r;
      cp_async16(sQ + sw128_off(r, ch, BR), qg + (i64)min(row, Tq - 1) * HD + ch * 8, row < Tq ? 16 : 0);
    }
  }
  tiles[0] = cur;
#pragma unroll
  for (int j = 0; j < STAGES - 1; ++j) {
    if (tiles[j] >= 0) load_kv(tiles[j], j);
    cp_async_commit();
    if (j + 1 < STAGES) tiles[j + 1] = tiles[j] >= 0 ? next_tile(tiles[j] + 1) : -1;
  }
  int stage = 0;
  while (cur >= 0) {
    // Tile `cur` sits in `stage` (its group is the oldest of the STAGES - 1 in flight). After the
    // barrier every warpgroup is done with last iteration's stage: tiles[STAGES - 1] goes there.
    cp_async_wait<STAGES - 2>();
    fence_proxy_async();  // cp.async writes (generic proxy) -> wgmma reads (async proxy)
    __syncthreads();
    {
      const int ahead = tiles[STAGES - 1];
      if (ahead >= 0) load_kv(ahead, (stage + STAGES - 1) % STAGES);
      cp_async_commit();
    }
    const u32 kA = sKa + stage * BC * HD * 2, vA = sVa + stage * BC * HD * 2;

    // S = Q K^T: this warpgroup's 64 rows x BC keys.
    float s[NS];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const u64 da = sw128_desc(sQa + (kk >> 2) * BR * 128 + wg * 64 * 128 + (kk & 3) * 32, 16, 1024);
      const u64 db = sw128_desc(kA + (kk >> 2) * BC * 128 + (kk & 3) * 32, 16, 1024);
      WGMMA_S(s, da, db, kk);
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs<NS>(s);

    const TileBounds kb = kbg[cur];
    if (!tile_all_visible(qmin, qmax, kb, causal, window, sinks, has_keep))
      mask_scores(s, qpos + (i64)bh * Tq, row0, Tq, kposg, keepg, cur * BC + 2 * t4, Tk, causal, window, sinks, has_keep);

    // Online softmax in base 2 (as flash_fwd.cu, LAZY_RESCALE included).
    float mx[2];
    tile_row_max(s, scale_log2, mx);
#ifdef LAZY_RESCALE
    bool grow = mx[0] > m[0] + 8.f || mx[1] > m[1] + 8.f;
    if (__any_sync(0xffffffffu, grow))
#endif
    {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float m_new = fmaxf(m[hr], mx[hr]);
        const float corr = m_new == -F_INF ? 1.f : EXP2(m[hr] - m_new);
        m[hr] = m_new;
        l[hr] *= corr;
#pragma unroll
        for (int nb = 0; nb < HD / 8; ++nb) {
          o[nb * 4 + hr * 2] *= corr;
          o[nb * 4 + hr * 2 + 1] *= corr;
        }
      }
    }
    u32 pa[BC / 16][4];
    float rs[2];
    tile_probabilities(s, m, scale_log2, pa, rs);
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) l[hr] += rs[hr];

    // O += P V: V is [key][hd] in shared memory, read MN-major (N = hd contiguous).
    const u32 v_lbo = BC * 128, v_sbo = 1024;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) WGMMA_O(o, pa[kk], sw128_desc(vA + kk * 16 * 128, v_lbo, v_sbo), 1);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs<NO>(o);

    cur = tiles[1 % STAGES];
#pragma unroll
    for (int j = 0; j + 1 < STAGES; ++j) tiles[j] = tiles[j + 1];
    tiles[STAGES - 1] = tiles[STAGES - 2] >= 0 ? next_tile(tiles[STAGES - 2] + 1) : -1;
    stage = (stage + 1) % STAGES;
  }
#endif
  cp_async_wait<0>();

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float lt = l[hr];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const int row = row0 + 8 * hr;
    if (row >= Tq) continue;
    const float inv = lt > 0.f ? 1.f / lt : 0.f;
    DT* orow = out + ((i64)bh * Tq + row) * HD;
#pragma unroll
    for (int nb = 0; nb < HD / 8; ++nb)
      *reinterpret_cast<u32*>(orow + nb * 8 + 2 * t4) = pack2(o[nb * 4 + hr * 2] * inv, o[nb * 4 + hr * 2 + 1] * inv);
    if (t4 == 0) lse[(i64)bh * Tq + row] = lt > 0.f ? (m[hr] + log2f(lt)) * LN2 : -F_INF;
  }
#else
  __trap();  // sm_90a only: the backend never launches this kernel elsewhere
#endif
}
