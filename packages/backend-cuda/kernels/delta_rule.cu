// Gated delta rule, forward and backward, for element type DT. One block per (batch, head); thread j
// owns column j of the state S [Dk, Dv] (float32, in global memory), so the recurrence
//   S_t = exp(g_t) (I - beta_t k_t k_t^DT) S_{t-1} + beta_t k_t v_t^DT,   o_t = S_t^DT (scale q_t)
// needs no cross-thread traffic in the forward pass. Both modes compute the same function; this
// kernel evaluates it step by step (the chunked WY form is a tensor-core optimisation not done here).
#include "common.cuh"

#ifndef DT
#define DT float
#endif

// S (in/out, [BH, Dk, Dv]) holds the initial state on entry and the final state on exit.
extern "C" __global__ void delta_fwd_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                                       const DT* __restrict__ g, const DT* __restrict__ beta, float* __restrict__ S,
                                       DT* __restrict__ out, int Tn, int Dk, int Dv, float scale) {
  DYN_SMEM(float, sh);
  float* sk = sh;       // Dk
  float* sq = sh + Dk;  // Dk
  const int j = threadIdx.x;
  const i64 bh = blockIdx.x;
  float* Sb = S + bh * Dk * Dv;
  for (int t = 0; t < Tn; ++t) {
    const i64 row = bh * Tn + t;
    for (int i = threadIdx.x; i < Dk; i += blockDim.x) {
      sk[i] = to_f(k[row * Dk + i]);
      sq[i] = to_f(q[row * Dk + i]);
    }
    __syncthreads();
    const float a = expf(to_f(g[row]));
    const float bt = to_f(beta[row]);
    if (j < Dv) {
      float u = 0.f;
      for (int i = 0; i < Dk; ++i) u += sk[i] * Sb[i * Dv + j];
      const float r = to_f(v[row * Dv + j]) - a * u;
      float o = 0.f;
      for (int i = 0; i < Dk; ++i) {
        const float s = a * Sb[i * Dv + j] + bt * sk[i] * r;
        Sb[i * Dv + j] = s;
        o += sq[i] * s;
      }
      out[row * Dv + j] = from_f<DT>(scale * o);
    }
    __syncthreads();
  }
}

// One recurrent step on column j of S (used to rebuild states in the backward pass).
__device__ __forceinline__ void step_column(const float* Sprev, float* Snew, const float* sk, float a, float bt, float vj,
                                            int Dk, int Dv, int j) {
  float u = 0.f;
  for (int i = 0; i < Dk; ++i) u += sk[i] * Sprev[i * Dv + j];
  const float r = vj - a * u;
  for (int i = 0; i < Dk; ++i) Snew[i * Dv + j] = a * Sprev[i * Dv + j] + bt * sk[i] * r;
}

// Backpropagation through the recurrence with the state checkpointed every C steps and rebuilt
// inside each chunk. Scratch per (b, h): checkpoints [nchunks][Dk][Dv] then chunk states [C+1][Dk][Dv].
// dS ([BH, Dk, Dv]) holds dFinalState (or zeros) on entry and the initial state's gradient on exit.
extern "C" __global__ void delta_bwd_k(const DT* __restrict__ q, const DT* __restrict__ k, const DT* __restrict__ v,
                                       const DT* __restrict__ g, const DT* __restrict__ beta,
                                       const float* __restrict__ S0, const DT* __restrict__ dout, float* dS,
                                       float* scratch, DT* __restrict__ dq, DT* __restrict__ dk, DT* __restrict__ dv,
                                       DT* __restrict__ dg, DT* __restrict__ dbeta, int Tn, int Dk, int Dv, int C,
                                       float scale, int has_s0) {
  DYN_SMEM(float, sh);
  float* sk = sh;             // Dk
  float* sq = sk + Dk;        // Dk
  float* red_q = sq + Dk;     // Dk
  float* red_k = red_q + Dk;  // Dk
  float* red_s = red_k + Dk;  // 2 (dbeta, da)
  const int j = threadIdx.x, lane = j & 31;
  const bool col = j < Dv;
  const i64 bh = blockIdx.x;
  const int nchunks = (Tn + C - 1) / C;
  const i64 sz = (i64)Dk * Dv;
  float* ck = scratch + bh * (nchunks + C + 1) * sz;
  float* st = ck + nchunks * sz;
  float* dSb = dS + bh * sz;

  auto load_kq = [&](i64 row) {
    for (int i = threadIdx.x; i < Dk; i += blockDim.x) {
      sk[i] = to_f(k[row * Dk + i]);
      sq[i] = to_f(q[row * Dk + i]);
    }
  };

  // Forward pass, keeping the state at the start of every chunk.
  if (col)
    for (int i = 0; i < Dk; ++i) ck[i * Dv + j] = has_s0 ? S0[bh * sz + i * Dv + j] : 0.f;
  for (int c = 0; c < nchunks; ++c) {
    float* cur = ck + c * sz;
    float* nxt = c + 1 < nchunks ? ck + (c + 1) * sz : st;  // the last chunk's end state is not needed
    if (col && c + 1 < nchunks)
      for (int i = 0; i < Dk; ++i) nxt[i * Dv + j] = cur[i * Dv + j];
    for (int t = c * C; t < min(Tn, (c + 1) * C) && c + 1 < nchunks; ++t) {
      const i64 row = bh * Tn + t;
      __syncthreads();
      load_kq(row);
      __syncthreads();
      if (col) {
        // In place: nxt holds S_{t-1}, becomes S_t (each thread owns its column).
        float u = 0.f;
        for (int i = 0; i < Dk; ++i) u += sk[i] * nxt[i * Dv + j];
        const float a = expf(to_f(g[row]));
        const float r = to_f(v[row * Dv + j]) - a * u;
        const float bt = to_f(beta[row]);
        for (int i = 0; i < Dk; ++i) nxt[i * Dv + j] = a * nxt[i * Dv + j] + bt * sk[i] * r;
      }
    }
  }

  for (int c = nchunks - 1; c >= 0; --c) {
    const int t0 = c * C;
    const int n = min(Tn, t0 + C) - t0;
    // states[s] = S before step t0 + s.
    if (col)
      for (int i = 0; i < Dk; ++i) st[i * Dv + j] = ck[c * sz + i * Dv + j];
    for (int s = 0; s < n; ++s) {
      const i64 row = bh * Tn + t0 + s;
      __syncthreads();
      load_kq(row);
      __syncthreads();
      if (col)
        step_column(st + s * sz, st + (s + 1) * sz, sk, expf(to_f(g[row])), to_f(beta[row]), to_f(v[row * Dv + j]), Dk,
                    Dv, j);
    }
    for (int s = n - 1; s >= 0; --s) {
      const i64 row = bh * Tn + t0 + s;
      const float* Sprev = st + s * sz;
      const float* Snew = st + (s + 1) * sz;
      __syncthreads();
      load_kq(row);
      for (int i = threadIdx.x; i < Dk; i += blockDim.x) red_q[i] = red_k[i] = 0.f;
      if (threadIdx.x < 2) red_s[threadIdx.x] = 0.f;
      __syncthreads();
      const float a = expf(to_f(g[row]));
      const float bt = to_f(beta[row]);
      const float doj = col ? to_f(dout[row * Dv + j]) : 0.f;
      const float vj = col ? to_f(v[row * Dv + j]) : 0.f;
      float u = 0.f, dr = 0.f;
      for (int i = 0; i < Dk; ++i) {
        float cq = 0.f;
        if (col) {
          cq = Snew[i * Dv + j] * doj;
          const float d = dSb[i * Dv + j] + scale * sq[i] * doj;
          dSb[i * Dv + j] = d;
          u += sk[i] * Sprev[i * Dv + j];
          dr += bt * sk[i] * d;
        }
        cq = warp_sum(cq);
        if (lane == 0) atomicAdd(red_q + i, cq);
      }
      const float r = vj - a * u;
      const float du = -a * dr;
      float db_part = 0.f, da_part = col ? -dr * u : 0.f;
      for (int i = 0; i < Dk; ++i) {
        float ckv = 0.f;
        if (col) {
          const float sp = Sprev[i * Dv + j];
          const float d = dSb[i * Dv + j];
          ckv = bt * d * r + sp * du;
          db_part += sk[i] * d * r;
          da_part += d * sp;
          dSb[i * Dv + j] = a * d + sk[i] * du;
        }
        ckv = warp_sum(ckv);
        if (lane == 0) atomicAdd(red_k + i, ckv);
      }
      if (col) dv[row * Dv + j] = from_f<DT>(dr);
      db_part = warp_sum(db_part);
      da_part = warp_sum(da_part);
      if (lane == 0) {
        atomicAdd(red_s, db_part);
        atomicAdd(red_s + 1, da_part);
      }
      __syncthreads();
      for (int i = threadIdx.x; i < Dk; i += blockDim.x) {
        dq[row * Dk + i] = from_f<DT>(scale * red_q[i]);
        dk[row * Dk + i] = from_f<DT>(red_k[i]);
      }
      if (threadIdx.x == 0) {
        dbeta[row] = from_f<DT>(red_s[0]);
        dg[row] = from_f<DT>(red_s[1] * a);
      }
    }
  }
}
