// Flash-attention forward on the tensor cores (mma.sync m16n8k16, float32 accumulation), FA2-style:
// a CTA owns BR = 16 * WM * NW query rows (NW warps of WM m-tiles; default 4 warps x 32 rows),
// streams key/value tiles of BC keys through a two-stage cp.async pipeline, and keeps the running
// max / sum per row (online softmax, base 2).
// Defines: DT (__half or __nv_bfloat16; DT_IS_HALF for half), HD (64 or 128; Dv == D); tunables
// BC (keys per tile), WM (m-tiles per warp), NW (warps), FAST_EXP (ex2.approx.ftz).
// Key tiles are skipped and masks applied from positions (causal, window, sinks, keep), so any
// query/key positions are honoured; tiles proven fully visible skip the per-element mask.
#include "mma.cuh"

#ifndef HD
#define HD 128
#endif
#ifndef WM
#define WM 2
#endif
#ifndef NW
#define NW 4
#endif
#define BR (16 * WM * NW)
#ifndef BC
#define BC 64  // keys per tile (tunable: 32 or 64)
#endif
#define NTHREADS (32 * NW)
#define RC (HD / 8)
#define LN2 0.6931471805599453f
#ifndef MIN_CTAS
#define MIN_CTAS (NW <= 4 ? 2 : 1)
#endif

extern "C" __global__ void __launch_bounds__(NTHREADS, MIN_CTAS)
    flash_fwd_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                const int* __restrict__ qpos, const int* __restrict__ kpos, const u8* __restrict__ keep,
                const TileBounds* __restrict__ kbounds, DT* __restrict__ out, float* __restrict__ lse, int Hq, int Hk,
                int Tq, int Tk, float scale_log2, int causal, int window, int sinks, int has_keep) {
  DYN_SMEM(unsigned char, smem_raw);
  DT* sQ = reinterpret_cast<DT*>(smem_raw);
  DT* sK = sQ + BR * HD;
  DT* sV = sK + 2 * BC * HD;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int ntq = (Tq + BR - 1) / BR;
  const int qtile = ntq - 1 - (int)blockIdx.x;  // heaviest (latest) query tiles start first
  const int bh = blockIdx.y;
  const int b = bh / Hq, h = bh - b * Hq;
  const int bhk = b * Hk + h / (Hq / Hk);
  const int q0 = qtile * BR;
  const int ntk = (Tk + BC - 1) / BC;

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
    for (int c = tid; c < BC * RC; c += NTHREADS) {
      const int r = c / RC, ch = c - r * RC;
      const int key = tile * BC + r;
      const i64 off = (i64)min(key, Tk - 1) * HD + ch * 8;
      const int bytes = key < Tk ? 16 : 0;
      cp_async16(dK + swz(r, ch, RC), kg + off, bytes);
      cp_async16(dV + swz(r, ch, RC), vg + off, bytes);
    }
  };

  float o[WM][HD / 8][4];
  float m[WM][2], l[WM][2];
#pragma unroll
  for (int mt = 0; mt < WM; ++mt) {
#pragma unroll
    for (int nb = 0; nb < HD / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][nb][e] = 0.f;
    m[mt][0] = m[mt][1] = -F_INF;
    l[mt][0] = l[mt][1] = 0.f;
  }

  int cur = next_tile(0);
  if (cur >= 0) {
    for (int c = tid; c < BR * RC; c += NTHREADS) {
      const int r = c / RC, ch = c - r * RC;
      const int row = q0 + r;
      cp_async16(sQ + swz(r, ch, RC), qg + (i64)min(row, Tq - 1) * HD + ch * 8, row < Tq ? 16 : 0);
    }
    load_kv(cur, 0);
  }
  cp_async_commit();
  int stage = 0;
  while (cur >= 0) {
    const int nxt = next_tile(cur + 1);
    if (nxt >= 0) {
      load_kv(nxt, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const DT* cK = sK + stage * BC * HD;
    const DT* cV = sV + stage * BC * HD;

    // S = Q K^T for this warp's 32 rows x 64 keys.
    float s[WM][BC / 8][4];
#pragma unroll
    for (int mt = 0; mt < WM; ++mt)
#pragma unroll
      for (int nb = 0; nb < BC / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nb][e] = 0.f;
#ifdef KK_UNROLL
#pragma unroll
#else
#pragma unroll 1
#endif
    for (int kk = 0; kk < HD / 16; ++kk) {
      u32 a[WM][4];
#pragma unroll
      for (int mt = 0; mt < WM; ++mt)
        ldmatrix_x4(a[mt][0], a[mt][1], a[mt][2], a[mt][3],
                    sQ + swz(warp * 16 * WM + mt * 16 + (lane & 15), 2 * kk + (lane >> 4), RC));
#pragma unroll
      for (int np = 0; np < BC / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, cK + swz(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1), RC));
#pragma unroll
        for (int mt = 0; mt < WM; ++mt) {
          mma16816(s[mt][2 * np], a[mt], b0, b1);
          mma16816(s[mt][2 * np + 1], a[mt], b2, b3);
        }
      }
    }

    const TileBounds kb = kbg[cur];
    if (!tile_all_visible(qmin, qmax, kb, causal, window, sinks, has_keep)) {
      // Boundary tile: per-element rule. Positions are re-read here (cached) to spare registers.
      int qp[WM][2];
#pragma unroll
      for (int mt = 0; mt < WM; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = q0 + warp * 16 * WM + mt * 16 + hr * 8 + g;
          qp[mt][hr] = row < Tq ? qpos[(i64)bh * Tq + row] : 0;
        }
#pragma unroll
      for (int nb = 0; nb < BC / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = cur * BC + nb * 8 + 2 * t4 + e;
          const bool kin = key < Tk;
          const int kp = kin ? kposg[key] : 0;
          const int kv = (has_keep && kin) ? (int)keepg[key] : -1;
#pragma unroll
          for (int mt = 0; mt < WM; ++mt)
#pragma unroll
            for (int hr = 0; hr < 2; ++hr)
              if (!(kin && key_visible(qp[mt][hr], kp, kv, causal, window, sinks))) s[mt][nb][hr * 2 + e] = -F_INF;
        }
    }

    // Online softmax in base 2: p = 2^(s * scale * log2(e) - m). With LAZY_RESCALE the running max
    // m is raised (and O, l rescaled) only when some row of the warp grows by more than 8 (a factor
    // 256, harmless in float32 and in the 16-bit P); otherwise the stale max is kept.
    float mx[WM][2];
#pragma unroll
    for (int mt = 0; mt < WM; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float v = -F_INF;
#pragma unroll
        for (int nb = 0; nb < BC / 8; ++nb) v = fmaxf(v, fmaxf(s[mt][nb][hr * 2], s[mt][nb][hr * 2 + 1]));
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
        mx[mt][hr] = v * scale_log2;
      }
#ifdef LAZY_RESCALE
    bool grow = false;
#pragma unroll
    for (int mt = 0; mt < WM; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) grow |= mx[mt][hr] > m[mt][hr] + 8.f;
    if (__any_sync(0xffffffffu, grow))
#endif
    {
#pragma unroll
      for (int mt = 0; mt < WM; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float m_new = fmaxf(m[mt][hr], mx[mt][hr]);
          const float corr = m_new == -F_INF ? 1.f : EXP2(m[mt][hr] - m_new);
          m[mt][hr] = m_new;
          l[mt][hr] *= corr;
#pragma unroll
          for (int nb = 0; nb < HD / 8; ++nb) {
            o[mt][nb][hr * 2] *= corr;
            o[mt][nb][hr * 2 + 1] *= corr;
          }
        }
    }
#pragma unroll
    for (int mt = 0; mt < WM; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float m_use = m[mt][hr] == -F_INF ? 0.f : m[mt][hr];
        float rs = 0.f;
#pragma unroll
        for (int nb = 0; nb < BC / 8; ++nb) {
          const float p0 = EXP2(fmaf(s[mt][nb][hr * 2], scale_log2, -m_use));
          const float p1 = EXP2(fmaf(s[mt][nb][hr * 2 + 1], scale_log2, -m_use));
          s[mt][nb][hr * 2] = p0;
          s[mt][nb][hr * 2 + 1] = p1;
          rs += p0 + p1;
        }
        l[mt][hr] += rs;
      }

    // O += P V, P taken straight from the S accumulators as the A operand.
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      u32 a[WM][4];
#pragma unroll
      for (int mt = 0; mt < WM; ++mt) {
        a[mt][0] = pack2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int p = 0; p < HD / 16; ++p) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, cV + swz(kk * 16 + (lane & 15), 2 * p + (lane >> 4), RC));
#pragma unroll
        for (int mt = 0; mt < WM; ++mt) {
          mma16816(o[mt][2 * p], a[mt], b0, b1);
          mma16816(o[mt][2 * p + 1], a[mt], b2, b3);
        }
      }
    }
    __syncthreads();
    cur = nxt;
    stage ^= 1;
  }

#pragma unroll
  for (int mt = 0; mt < WM; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float lt = l[mt][hr];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int row = q0 + warp * 16 * WM + mt * 16 + hr * 8 + g;
      if (row >= Tq) continue;
      const float inv = lt > 0.f ? 1.f / lt : 0.f;
      DT* orow = out + ((i64)bh * Tq + row) * HD;
#pragma unroll
      for (int nb = 0; nb < HD / 8; ++nb)
        *reinterpret_cast<u32*>(orow + nb * 8 + 2 * t4) = pack2(o[mt][nb][hr * 2] * inv, o[mt][nb][hr * 2 + 1] * inv);
      if (t4 == 0) lse[(i64)bh * Tq + row] = lt > 0.f ? (m[mt][hr] + log2f(lt)) * LN2 : -F_INF;
    }
}
