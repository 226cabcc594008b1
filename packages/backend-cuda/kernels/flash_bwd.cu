// Flash-attention backward on the tensor cores, FA2-style. A CTA owns BKV = 16 * NWB keys (NWB warps x 16)
// of one key/value head and walks every query tile of every query head that reads it (grouped-query
// attention accumulates dK/dV without atomics). Per query tile, with the lse and delta = rowsum(dO o O)
// of the forward pass:
//   S^T = K Q^T, P^T = exp(S^T * scale - lse), dV += P^T dO, dP^T = V dO^T,
//   dS^T = P^T o (dP^T - delta) * scale, dK += dS^T Q, dQ += dS K (float32 atomics into dq_acc).
// Defines: DT (__half or __nv_bfloat16; DT_IS_HALF for half), HD (64 or 128; Dv == D); tunables
// NWB (4 or 8 warps), FAST_EXP (ex2.approx.ftz), RED_V2 (dQ added two floats per instruction).
#include "mma.cuh"

#ifndef HD
#define HD 128
#endif
#ifndef NWB
#define NWB 4
#endif
#define BKV (16 * NWB)
#define BQ 64
#define NTHREADS (32 * NWB)
// dQ: warp w takes queries 16 * (w % 4) and columns (w / 4) * DQ_CW .. + DQ_CW, in passes of DQ_NB n-blocks.
#define DQ_CW (HD / (NWB / 4))
#define DQ_NB (DQ_CW >= 64 ? 8 : DQ_CW / 8)
#define DQ_PASSES (DQ_CW / (8 * DQ_NB))
#define RC (HD / 8)
#define SRC (BQ / 8)
#define LOG2E 1.4426950408889634f

// dst[0] += a, dst[1] += b in global memory (one vector reduction with RED_V2).
__device__ __forceinline__ void red_add2(float* dst, float a, float b) {
#if defined(RED_V2) && !defined(ATTNKIT_EMULATE)
  asm volatile("red.global.v2.f32.add [%0], {%1, %2};" ::"l"(dst), "f"(a), "f"(b) : "memory");
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

struct QBounds {
  int qmin, qmax;
};

extern "C" __global__ void __launch_bounds__(NTHREADS, NWB <= 4 ? 2 : 1)
    flash_bwd_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v, const DT* __restrict__ dout,
                const float* __restrict__ lse, const float* __restrict__ delta, const int* __restrict__ qpos,
                const int* __restrict__ kpos, const u8* __restrict__ keep, const QBounds* __restrict__ qbounds,
                const TileBounds* __restrict__ kbounds, float* __restrict__ dq_acc, DT* __restrict__ dk,
                DT* __restrict__ dv, int Hq, int Hk, int Tq, int Tk, float scale, float scale_log2, int causal,
                int window, int sinks, int has_keep) {
  DYN_SMEM(unsigned char, smem_raw);
  DT* sK = reinterpret_cast<DT*>(smem_raw);
  DT* sV = sK + BKV * HD;
  DT* sQ = sV + BKV * HD;        // 2 stages
  DT* sdO = sQ + 2 * BQ * HD;    // 2 stages
  DT* sdS = sdO + 2 * BQ * HD;   // [BKV][BQ]
  float* sL = reinterpret_cast<float*>(sdS + BKV * BQ);  // 2 stages, lse * log2(e)
  float* sD = sL + 2 * BQ;                               // 2 stages, delta
  int* sP = reinterpret_cast<int*>(sD + 2 * BQ);         // 2 stages, query positions

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int ktile = blockIdx.x;
  const int bhk = blockIdx.y;
  const int b = bhk / Hk, hk = bhk - b * Hk;
  const int group = Hq / Hk;
  const int k0 = ktile * BKV;
  const int ntk = (Tk + BKV - 1) / BKV;
  const int ntq = (Tq + BQ - 1) / BQ;

  const DT* kg = k + (i64)bhk * Tk * HD;
  const DT* vg = v + (i64)bhk * Tk * HD;
  for (int c = tid; c < BKV * RC; c += NTHREADS) {
    const int r = c / RC, ch = c - r * RC;
    const int key = k0 + r;
    const i64 off = (i64)min(key, Tk - 1) * HD + ch * 8;
    const int bytes = key < Tk ? 16 : 0;
    cp_async16(sK + swz(r, ch, RC), kg + off, bytes);
    cp_async16(sV + swz(r, ch, RC), vg + off, bytes);
  }
  cp_async_commit();

  const TileBounds kb = kbounds[(i64)bhk * ntk + ktile];
  // This thread's two key rows (16 * warp + g + 8 * hr).
  int kp[2], kv[2];
  bool kin[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + warp * 16 + g + hr * 8;
    kin[hr] = key < Tk;
    kp[hr] = kin[hr] ? kpos[(i64)bhk * Tk + key] : 0;
    kv[hr] = (has_keep && kin[hr]) ? (int)keep[(i64)bhk * Tk + key] : -1;
  }

  const int items = group * ntq;
  auto visible_item = [&](int it) -> bool {
    const int h = hk * group + it / ntq, qt = it - (it / ntq) * ntq;
    const QBounds qb = qbounds[(i64)(b * Hq + h) * ntq + qt];
    return tile_may_be_visible(qb.qmin, qb.qmax, kb, causal, window, sinks, has_keep);
  };
  auto next_item = [&](int from) -> int {
    for (int it = from; it < items; ++it)
      if (visible_item(it)) return it;
    return -1;
  };
  auto load_q = [&](int it, int stage) {
    const int h = hk * group + it / ntq, qt = it - (it / ntq) * ntq;
    const i64 bh = (i64)b * Hq + h;
    const int q0 = qt * BQ;
    const DT* qg = q + bh * Tq * HD;
    const DT* dog = dout + bh * Tq * HD;
    DT* dQ = sQ + stage * BQ * HD;
    DT* dO = sdO + stage * BQ * HD;
    for (int c = tid; c < BQ * RC; c += NTHREADS) {
      const int r = c / RC, ch = c - r * RC;
      const int row = q0 + r;
      const i64 off = (i64)min(row, Tq - 1) * HD + ch * 8;
      const int bytes = row < Tq ? 16 : 0;
      cp_async16(dQ + swz(r, ch, RC), qg + off, bytes);
      cp_async16(dO + swz(r, ch, RC), dog + off, bytes);
    }
    for (int r = tid; r < BQ; r += NTHREADS) {
      const int row = q0 + r;
      const bool in = row < Tq;
      sL[stage * BQ + r] = in ? lse[bh * Tq + row] * LOG2E : F_INF;
      sD[stage * BQ + r] = in ? delta[bh * Tq + row] : 0.f;
      sP[stage * BQ + r] = in ? qpos[bh * Tq + row] : 0;
    }
  };

  float dK[HD / 8][4], dV[HD / 8][4];
#pragma unroll
  for (int nb = 0; nb < HD / 8; ++nb)
#pragma unroll
    for (int e = 0; e < 4; ++e) dK[nb][e] = dV[nb][e] = 0.f;

  int cur = next_item(0);
  if (cur >= 0) load_q(cur, 0);
  cp_async_commit();
  int stage = 0;
  while (cur >= 0) {
    const int nxt = next_item(cur + 1);
    if (nxt >= 0) {
      load_q(nxt, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int h = hk * group + cur / ntq, qt = cur - (cur / ntq) * ntq;
    const i64 bh = (i64)b * Hq + h;
    const int q0 = qt * BQ;
    const QBounds qb = qbounds[bh * ntq + qt];
    const bool all_vis = tile_all_visible(qb.qmin, qb.qmax, kb, causal, window, sinks, has_keep) && q0 + BQ <= Tq;
    const DT* cQ = sQ + stage * BQ * HD;
    const DT* cdO = sdO + stage * BQ * HD;
    const float* cL = sL + stage * BQ;
    const float* cD = sD + stage * BQ;
    const int* cP = sP + stage * BQ;

    // S^T = K Q^T (16 keys x 64 queries per warp).
    float st[BQ / 8][4];
#pragma unroll
    for (int nb = 0; nb < BQ / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nb][e] = 0.f;
#pragma unroll 1
    for (int kk = 0; kk < HD / 16; ++kk) {
      u32 a[4];
      ldmatrix_x4(a[0], a[1], a[2], a[3], sK + swz(warp * 16 + (lane & 15), 2 * kk + (lane >> 4), RC));
#pragma unroll
      for (int np = 0; np < BQ / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, cQ + swz(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1), RC));
        mma16816(st[2 * np], a, b0, b1);
        mma16816(st[2 * np + 1], a, b2, b3);
      }
    }
    // P^T, masked.
#pragma unroll
    for (int nb = 0; nb < BQ / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int qi = nb * 8 + 2 * t4 + e;
        const float L = cL[qi];
        const int qpv = cP[qi];
        const bool qin = q0 + qi < Tq;
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const bool vis =
              all_vis || (qin && kin[hr] && key_visible(qpv, kp[hr], kv[hr], causal, window, sinks));
          st[nb][hr * 2 + e] = vis ? EXP2(fmaf(st[nb][hr * 2 + e], scale_log2, -L)) : 0.f;
        }
      }
    // P^T as 16-bit pairs (the A operand layout); the float copy is dead after this.
    u32 pk[BQ / 16][4];
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
      pk[kk][0] = pack2(st[2 * kk][0], st[2 * kk][1]);
      pk[kk][1] = pack2(st[2 * kk][2], st[2 * kk][3]);
      pk[kk][2] = pack2(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      pk[kk][3] = pack2(st[2 * kk + 1][2], st[2 * kk + 1][3]);
    }
    // dV += P^T dO.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
#pragma unroll
      for (int p = 0; p < HD / 16; ++p) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, cdO + swz(kk * 16 + (lane & 15), 2 * p + (lane >> 4), RC));
        mma16816(dV[2 * p], pk[kk], b0, b1);
        mma16816(dV[2 * p + 1], pk[kk], b2, b3);
      }
    }
    // dP^T = V dO^T.
    float dpt[BQ / 8][4];
#pragma unroll
    for (int nb = 0; nb < BQ / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[nb][e] = 0.f;
#pragma unroll 1
    for (int kk = 0; kk < HD / 16; ++kk) {
      u32 a[4];
      ldmatrix_x4(a[0], a[1], a[2], a[3], sV + swz(warp * 16 + (lane & 15), 2 * kk + (lane >> 4), RC));
#pragma unroll
      for (int np = 0; np < BQ / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, cdO + swz(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1), RC));
        mma16816(dpt[2 * np], a, b0, b1);
        mma16816(dpt[2 * np + 1], a, b2, b3);
      }
    }
    // dS^T = P^T o (dP^T - delta) * scale (P^T at 16-bit precision), repacked into pk and staged
    // in shared memory for dQ.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int nb = 2 * kk + (r >> 1);
        const int hr = r & 1;
        const float2 pp = unpack2(pk[kk][r]);
        const float d0 = pp.x * (dpt[nb][hr * 2] - cD[nb * 8 + 2 * t4]) * scale;
        const float d1 = pp.y * (dpt[nb][hr * 2 + 1] - cD[nb * 8 + 2 * t4 + 1]) * scale;
        pk[kk][r] = pack2(d0, d1);
        *reinterpret_cast<u32*>(sdS + swz(warp * 16 + g + hr * 8, nb, SRC) + 2 * t4) = pk[kk][r];
      }
    // dK += dS^T Q.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
#pragma unroll
      for (int p = 0; p < HD / 16; ++p) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, cQ + swz(kk * 16 + (lane & 15), 2 * p + (lane >> 4), RC));
        mma16816(dK[2 * p], pk[kk], b0, b1);
        mma16816(dK[2 * p + 1], pk[kk], b2, b3);
      }
    }
    __syncthreads();
    // dQ (16 queries x DQ_CW columns per warp) += dS K, added atomically in float32.
    {
      const int qg = warp & 3;
      const int col0 = (warp >> 2) * DQ_CW;
#pragma unroll 1
      for (int pass = 0; pass < DQ_PASSES; ++pass) {
        const int cb = col0 + pass * 8 * DQ_NB;
        float dq[DQ_NB][4];
#pragma unroll
        for (int nb = 0; nb < DQ_NB; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) dq[nb][e] = 0.f;
#pragma unroll 1
        for (int kk = 0; kk < BKV / 16; ++kk) {
          u32 a[4];
          ldmatrix_x4_trans(a[0], a[1], a[2], a[3],
                            sdS + swz(kk * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * qg + ((lane >> 3) & 1), SRC));
#pragma unroll
          for (int p = 0; p < DQ_NB / 2; ++p) {
            u32 b0, b1, b2, b3;
            ldmatrix_x4_trans(b0, b1, b2, b3, sK + swz(kk * 16 + (lane & 15), cb / 8 + 2 * p + (lane >> 4), RC));
            mma16816(dq[2 * p], a, b0, b1);
            mma16816(dq[2 * p + 1], a, b2, b3);
          }
        }
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = q0 + qg * 16 + g + hr * 8;
          if (row >= Tq) continue;
          float* dst = dq_acc + (bh * Tq + row) * HD + cb + 2 * t4;
#pragma unroll
          for (int nb = 0; nb < DQ_NB; ++nb) red_add2(dst + nb * 8, dq[nb][hr * 2], dq[nb][hr * 2 + 1]);
        }
      }
    }
    __syncthreads();
    cur = nxt;
    stage ^= 1;
  }
  // K/V may never have been waited for when no query tile was visible.
  cp_async_wait<0>();

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + warp * 16 + g + hr * 8;
    if (key >= Tk) continue;
    DT* dkr = dk + ((i64)bhk * Tk + key) * HD;
    DT* dvr = dv + ((i64)bhk * Tk + key) * HD;
#pragma unroll
    for (int nb = 0; nb < HD / 8; ++nb) {
      *reinterpret_cast<u32*>(dkr + nb * 8 + 2 * t4) = pack2(dK[nb][hr * 2], dK[nb][hr * 2 + 1]);
      *reinterpret_cast<u32*>(dvr + nb * 8 + 2 * t4) = pack2(dV[nb][hr * 2], dV[nb][hr * 2 + 1]);
    }
  }
}
