// Flash-attention backward for Hopper (sm_90a) on warpgroup MMA, head dim 128. A CTA owns BKV = 128
// keys of one key/value head (two warpgroups of 64 keys) and walks every query tile (BQ = 64) of
// every query head that reads it, as flash_bwd.cu does; per query tile, with the lse and
// delta = rowsum(dO o O) of the forward pass, each warpgroup computes on wgmma:
//   S^T = K Q^T and dP^T = V dO^T (K, V, Q, dO from 128-byte-swizzled shared tiles, K-major),
//   P^T = exp(S^T * scale - lse), dS^T = P^T o (dP^T - delta) * scale (registers),
//   dV += P^T dO and dK += dS^T Q (P^T, dS^T as register A operands; dO, Q read MN-major),
// then dS^T goes to shared memory and dQ (64 queries x 128) += dS K over the CTA's 128 keys, each
// warpgroup 64 of the columns (both operands read MN-major), added to dq_acc in float32
// (red.global.add.v2). Arguments as flash_bwd.cu's. Defines: DT (DT_IS_HALF for half), HD (128),
// FAST_EXP, DQ_DEFER (1: the dQ product of one query tile is waited for, and added to dq_acc, in the
// next iteration, under that one's S^T and dP^T products; dS^T double-buffered). Only built for sm_90a (the backend dispatches here on compute capability 9.0 and head
// dim 128, else flash_bwd.cu); compiled for another architecture the kernel traps.
#include "wgmma.cuh"

#ifndef HD
#define HD 128
#endif
#if HD != 128
#error "flash_bwd_wgmma.cu handles head dim 128 only (flash_bwd.cu runs the others)"
#endif
#define BKV 128
#define BQ 64
#define NTHREADS 256
#define RC (HD / 8)
#define LOG2E 1.4426950408889634f
#ifndef DQ_DEFER
#define DQ_DEFER 0
#endif
#define NDS (DQ_DEFER ? 2 : 1)  // dS^T buffers

struct QBounds {
  int qmin, qmax;
};

__device__ __forceinline__ void red_add2_f32(float* dst, float a, float b) {
#if defined(ATTNKIT_EMULATE)
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#else
  asm volatile("red.global.v2.f32.add [%0], {%1, %2};" ::"l"(dst), "f"(a), "f"(b) : "memory");
#endif
}

extern "C" __global__ void __launch_bounds__(NTHREADS, 1)
    flash_bwd_wgmma_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                      const DT* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta,
                      const int* __restrict__ qpos, const int* __restrict__ kpos, const u8* __restrict__ keep,
                      const QBounds* __restrict__ qbounds, const TileBounds* __restrict__ kbounds,
                      float* __restrict__ dq_acc, DT* __restrict__ dk, DT* __restrict__ dv, int Hq, int Hk, int Tq,
                      int Tk, float scale, float scale_log2, int causal, int window, int sinks, int has_keep) {
#if defined(ATTNKIT_HAS_WGMMA)
  DYN_SMEM(unsigned char, smem_raw);
  const u32 raw_s = smem_addr(smem_raw);
  unsigned char* smem = smem_raw + ((1024u - (raw_s & 1023u)) & 1023u);
  DT* sK = reinterpret_cast<DT*>(smem);  // BKV x HD
  DT* sV = sK + BKV * HD;                // BKV x HD
  DT* sQ = sV + BKV * HD;                // 2 stages of BQ x HD
  DT* sdO = sQ + 2 * BQ * HD;            // 2 stages of BQ x HD
  DT* sdS = sdO + 2 * BQ * HD;           // dS^T: NDS x (BKV x BQ)
  float* sL = reinterpret_cast<float*>(sdS + NDS * BKV * BQ);  // 2 stages, lse * log2(e)
  float* sD = sL + 2 * BQ;                               // 2 stages, delta
  int* sP = reinterpret_cast<int*>(sD + 2 * BQ);         // 2 stages, query positions
  const u32 sKa = smem_addr(sK), sVa = smem_addr(sV), sQa = smem_addr(sQ), sdOa = smem_addr(sdO),
            sdSa = smem_addr(sdS);

  const int tid = threadIdx.x, wg = tid >> 7, wq = (tid >> 5) & 3, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int ktile = blockIdx.x;
  const int bhk = blockIdx.y;
  const int b = bhk / Hk, hk = bhk - b * Hk;
  const int group = Hq / Hk;
  const int k0 = ktile * BKV;
  const int ntk = (Tk + BKV - 1) / BKV;
  const int ntq = (Tq + BQ - 1) / BQ;
  const int kr0 = 64 * wg + 16 * wq + g;  // this thread's key rows in the tile: kr0 and kr0 + 8

  const DT* kg = k + (i64)bhk * Tk * HD;
  const DT* vg = v + (i64)bhk * Tk * HD;
#pragma unroll
  for (int i = 0; i < BKV * RC / NTHREADS; ++i) {
    const int c = tid + i * NTHREADS;
    const int r = c / RC, ch = c - r * RC;
    const int key = k0 + r;
    const i64 off = (i64)min(key, Tk - 1) * HD + ch * 8;
    const int bytes = key < Tk ? 16 : 0;
    cp_async16(sK + sw128_off(r, ch, BKV), kg + off, bytes);
    cp_async16(sV + sw128_off(r, ch, BKV), vg + off, bytes);
  }
  cp_async_commit();

  const TileBounds kb = kbounds[(i64)bhk * ntk + ktile];
  int kp[2], kv[2];
  bool kin[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + kr0 + hr * 8;
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
#pragma unroll
    for (int i = 0; i < BQ * RC / NTHREADS; ++i) {
      const int c = tid + i * NTHREADS;
      const int r = c / RC, ch = c - r * RC;
      const int row = q0 + r;
      const i64 off = (i64)min(row, Tq - 1) * HD + ch * 8;
      const int bytes = row < Tq ? 16 : 0;
      cp_async16(dQ + sw128_off(r, ch, BQ), qg + off, bytes);
      cp_async16(dO + sw128_off(r, ch, BQ), dog + off, bytes);
    }
    for (int r = tid; r < BQ; r += NTHREADS) {
      const int row = q0 + r;
      const bool in = row < Tq;
      sL[stage * BQ + r] = in ? lse[bh * Tq + row] * LOG2E : F_INF;
      sD[stage * BQ + r] = in ? delta[bh * Tq + row] : 0.f;
      sP[stage * BQ + r] = in ? qpos[bh * Tq + row] : 0;
    }
  };

  float dK[HD / 2], dV[HD / 2];  // 64 keys x HD per warpgroup
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) dK[i] = dV[i] = 0.f;

  // dQ rows of one query tile (64 queries x this warpgroup's 64 columns) into dq_acc.
  auto add_dq = [&](const float* dq, i64 bh, int q0) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = q0 + 16 * wq + g + 8 * hr;
      if (row >= Tq) continue;
      float* dst = dq_acc + (bh * Tq + row) * HD + 64 * wg + 2 * t4;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb) red_add2_f32(dst + nb * 8, dq[nb * 4 + hr * 2], dq[nb * 4 + hr * 2 + 1]);
    }
  };
  float dq[32];
#if DQ_DEFER
  bool dq_pending = false;
  i64 dq_bh = 0;
  int dq_q0 = 0, ds_buf = 0;
#else
  const int ds_buf = 0;
#endif

  int cur = next_item(0);
  if (cur >= 0) load_q(cur, 0);
  cp_async_commit();
  int stage = 0;
  while (cur >= 0) {
    cp_async_wait<0>();
    fence_proxy_async();  // cp.async writes (generic proxy) -> wgmma reads (async proxy)
    __syncthreads();
    // Everyone is past the last tile: its stage takes the next one.
    const int nxt = next_item(cur + 1);
    if (nxt >= 0) load_q(nxt, stage ^ 1);
    cp_async_commit();

    const int h = hk * group + cur / ntq, qt = cur - (cur / ntq) * ntq;
    const i64 bh = (i64)b * Hq + h;
    const int q0 = qt * BQ;
    const QBounds qb = qbounds[bh * ntq + qt];
    const bool all_vis = tile_all_visible(qb.qmin, qb.qmax, kb, causal, window, sinks, has_keep) && q0 + BQ <= Tq;
    const u32 qA = sQa + stage * BQ * HD * 2, doA = sdOa + stage * BQ * HD * 2;
    const float* cL = sL + stage * BQ;
    const float* cD = sD + stage * BQ;
    const int* cP = sP + stage * BQ;

    // S^T = K Q^T and dP^T = V dO^T: 64 keys x 64 queries per warpgroup, two commit groups.
    float st[BQ / 2], dpt[BQ / 2];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk)
      wgmma_ss_n64(st, sw128_desc(sKa + (kk >> 2) * BKV * 128 + wg * 64 * 128 + (kk & 3) * 32, 16, 1024),
                   sw128_desc(qA + (kk >> 2) * BQ * 128 + (kk & 3) * 32, 16, 1024), kk);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk)
      wgmma_ss_n64(dpt, sw128_desc(sVa + (kk >> 2) * BKV * 128 + wg * 64 * 128 + (kk & 3) * 32, 16, 1024),
                   sw128_desc(doA + (kk >> 2) * BQ * 128 + (kk & 3) * 32, 16, 1024), kk);
    wgmma_commit();
#if DQ_DEFER
    if (dq_pending) {  // the last tile's dQ (the oldest group) under this tile's two products
      wgmma_wait<2>();
      fence_regs<32>(dq);
      add_dq(dq, dq_bh, dq_q0);
    }
#endif
    wgmma_wait<1>();
    fence_regs<BQ / 2>(st);

    // P^T, masked, as 16-bit pairs in the A-operand layout (k = query): pk[kstep][{row g: q 0-7,
    // row g+8: q 0-7, row g: q 8-15, row g+8: q 8-15}].
    u32 pk[BQ / 16][4];
#pragma unroll
    for (int nb = 0; nb < BQ / 8; ++nb) {
      float p[2][2];
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
          p[hr][e] = vis ? EXP2(fmaf(st[nb * 4 + hr * 2 + e], scale_log2, -L)) : 0.f;
        }
      }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) pk[nb >> 1][(nb & 1) * 2 + hr] = pack2(p[hr][0], p[hr][1]);
    }
    wgmma_wait<0>();
    fence_regs<BQ / 2>(dpt);
    // dS^T = P^T o (dP^T - delta) * scale (P^T at 16-bit precision, as flash_bwd.cu).
    u32 dsk[BQ / 16][4];
#pragma unroll
    for (int nb = 0; nb < BQ / 8; ++nb) {
      const float d0 = cD[nb * 8 + 2 * t4], d1 = cD[nb * 8 + 2 * t4 + 1];
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float2 pp = unpack2(pk[nb >> 1][(nb & 1) * 2 + hr]);
        dsk[nb >> 1][(nb & 1) * 2 + hr] = pack2(pp.x * (dpt[nb * 4 + hr * 2] - d0) * scale,
                                                pp.y * (dpt[nb * 4 + hr * 2 + 1] - d1) * scale);
      }
    }
    // dV += P^T dO, dK += dS^T Q (dO, Q: rows = queries = the k dimension, read MN-major).
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk)
      wgmma_rs_n128(dV, pk[kk], sw128_desc(doA + kk * 16 * 128, BQ * 128, 1024), 1);
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk)
      wgmma_rs_n128(dK, dsk[kk], sw128_desc(qA + kk * 16 * 128, BQ * 128, 1024), 1);
    wgmma_commit();
    // dS^T to shared memory (rows = keys, 64 queries = one 128-byte block per row).
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int kr = kr0 + 8 * (r & 1), ch = 2 * kk + (r >> 1);
        *reinterpret_cast<u32*>(sdS + ds_buf * BKV * BQ + sw128_off(kr, ch, BKV) + 2 * t4) = dsk[kk][r];
      }
    fence_proxy_async();
    __syncthreads();
    // dQ (64 queries x this warpgroup's 64 columns) = dS K over the 128 keys: A = dS^T read
    // MN-major (M = queries contiguous), B = K read MN-major (column block wg).
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BKV / 16; ++kk)
      wgmma_ss_tt_n64(dq, sw128_desc(sdSa + ds_buf * BKV * BQ * 2 + kk * 16 * 128, BKV * 128, 1024),
                      sw128_desc(sKa + wg * BKV * 128 + kk * 16 * 128, BKV * 128, 1024), kk);
    wgmma_commit();
#if DQ_DEFER
    wgmma_wait<1>();  // dV, dK done (their Q / dO stage is reloaded next); dQ stays in flight
    fence_regs<HD / 2>(dK);
    fence_regs<HD / 2>(dV);
    dq_pending = true;
    dq_bh = bh;
    dq_q0 = q0;
    ds_buf ^= 1;
#else
    wgmma_wait<0>();
    fence_regs<32>(dq);
    fence_regs<HD / 2>(dK);
    fence_regs<HD / 2>(dV);
    add_dq(dq, bh, q0);
#endif
    cur = nxt;
    stage ^= 1;
  }
#if DQ_DEFER
  if (dq_pending) {
    wgmma_wait<0>();
    fence_regs<32>(dq);
    add_dq(dq, dq_bh, dq_q0);
  }
#endif
  // K/V may never have been waited for when no query tile was visible.
  cp_async_wait<0>();

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + kr0 + hr * 8;
    if (key >= Tk) continue;
    DT* dkr = dk + ((i64)bhk * Tk + key) * HD;
    DT* dvr = dv + ((i64)bhk * Tk + key) * HD;
#pragma unroll
    for (int nb = 0; nb < HD / 8; ++nb) {
      *reinterpret_cast<u32*>(dkr + nb * 8 + 2 * t4) = pack2(dK[nb * 4 + hr * 2], dK[nb * 4 + hr * 2 + 1]);
      *reinterpret_cast<u32*>(dvr + nb * 8 + 2 * t4) = pack2(dV[nb * 4 + hr * 2], dV[nb * 4 + hr * 2 + 1]);
    }
  }
#else
  __trap();  // sm_90a only: the backend never launches this kernel elsewhere
#endif
}
