/**
 * CUDA C source of the chunkwise gated delta rule, forward and backward: the algorithm of
 * gdn/chunked-math.ts split into kernels (see kernels/gdn-plan.ts for the launch order and
 * buffers). Layouts: q, k [BH, T, DK], v [BH, T, DV], g, beta [BH, T]; chunk c covers tokens
 * c*C .. min(T, c*C + C) - 1. All blocks are NT = 256 threads; C <= 64.
 *
 * Binding convention (core's ProgramSpec): inputs, then outputs, then scalars.
 */
export interface GdnDims {
  C: number
  DK: number
  DV: number
  /** Value columns per block of the sequential state scans. */
  BV: number
}

/** Kernel names in launch order of the forward, then the backward's own. */
export const GDN_KERNELS = [
  'gdn_prep',
  'gdn_scan',
  'gdn_output',
  'gdn_bwd_dwl',
  'gdn_bwd_scan',
  'gdn_bwd_qk',
  'gdn_bwd_dwk',
  'gdn_bwd_tm',
  'gdn_bwd_a',
  'gdn_bwd_dl',
  'gdn_bwd_final',
] as const
export type GdnKernelName = (typeof GDN_KERNELS)[number]

/** The CUDA source for `dims`: every kernel, or only `kernel` (each program compiles just one). */
export function gdnCudaSource(d: GdnDims, kernel?: GdnKernelName): string {
  const [prelude, ...parts] = GDN_CUDA_BODY.split('//@kernel ')
  const chosen = kernel ? parts.filter((p) => p.startsWith(`${kernel}\n`)) : parts
  if (kernel && chosen.length !== 1) throw new Error(`gdnCudaSource: no kernel '${kernel}'`)
  const body = chosen.map((p) => p.slice(p.indexOf('\n') + 1)).join('')
  return `#define C ${d.C}u\n#define DK ${d.DK}u\n#define DV ${d.DV}u\n#define BV ${d.BV}u\n${prelude}${body}`
}

const GDN_CUDA_BODY = `
#define NT 256u
#define LTE_MIN(a, b) ((a) < (b) ? (a) : (b))
// Indices past 2^32 elements; NVRTC has no standard headers (no size_t).
typedef unsigned long long lte_idx;

//@kernel gdn_prep
// Chunk-local quantities: gam = in-chunk cumulative log decay; Tm = (I + L)^-1 with
// L[t][s] = beta_t exp(gam_t - gam_s) k_t.k_s (s < t); U = Tm beta V; Wk = Tm beta exp(gam) K.
extern "C" __global__ void gdn_prep(const float* __restrict__ k, const float* __restrict__ v,
                                    const float* __restrict__ g, const float* __restrict__ beta,
                                    float* __restrict__ gam, float* __restrict__ Tm,
                                    float* __restrict__ U, float* __restrict__ Wk, unsigned T) {
  __shared__ float M[C * C];
  __shared__ float row[C];
  __shared__ float gs[C];
  __shared__ float bs[C];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const float* kc = k + go * DK;
  const float* vc = v + go * DV;
  if (tid == 0) {
    float acc = 0.f;
    for (unsigned t = 0; t < C; t++) {
      if (t < n) acc += g[go + t];
      gs[t] = acc;
    }
  }
  for (unsigned t = tid; t < C; t += NT) bs[t] = t < n ? beta[go + t] : 0.f;
  __syncthreads();
  for (unsigned t = tid; t < n; t += NT) gam[go + t] = gs[t];
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float val = 0.f;
    if (s < t && t < n) {
      float d = 0.f;
      for (unsigned i = 0; i < DK; i++) d += kc[t * DK + i] * kc[s * DK + i];
      val = bs[t] * expf(gs[t] - gs[s]) * d;
    }
    M[idx] = val;
  }
  __syncthreads();
  // Forward substitution in place: row t of M turns from L into Tm once rows < t are done.
  for (unsigned t = 0; t < n; t++) {
    for (unsigned r = tid; r < C; r += NT) row[r] = r < t ? M[t * C + r] : 0.f;
    __syncthreads();
    for (unsigned s = tid; s < C; s += NT) {
      if (s < t) {
        float x = 0.f;
        for (unsigned r = s; r < t; r++) x -= row[r] * M[r * C + s];
        M[t * C + s] = x;
      } else if (s == t) {
        M[t * C + s] = 1.f;
      }
    }
    __syncthreads();
  }
  float* Tc = Tm + ((lte_idx)bh * Nc + c) * C * C;
  for (unsigned idx = tid; idx < C * C; idx += NT) Tc[idx] = idx / C < n ? M[idx] : 0.f;
  for (unsigned idx = tid; idx < n * DV; idx += NT) {
    const unsigned t = idx / DV, j = idx % DV;
    float x = 0.f;
    for (unsigned s = 0; s <= t; s++) x += M[t * C + s] * bs[s] * vc[s * DV + j];
    U[(go + t) * DV + j] = x;
  }
  for (unsigned idx = tid; idx < n * DK; idx += NT) {
    const unsigned t = idx / DK, i = idx % DK;
    float x = 0.f;
    for (unsigned s = 0; s <= t; s++) x += M[t * C + s] * bs[s] * expf(gs[s]) * kc[s * DK + i];
    Wk[(go + t) * DK + i] = x;
  }
}

//@kernel gdn_scan
// Sequential over chunks, parallel over BV-column slices of the state: stores each chunk's
// entry state H[c], the new values W = U - Wk S, and advances S.
extern "C" __global__ void gdn_scan(const float* __restrict__ k, const float* __restrict__ gam,
                                    const float* __restrict__ U, const float* __restrict__ Wk,
                                    const float* __restrict__ S0, float* __restrict__ H,
                                    float* __restrict__ W, float* __restrict__ Sout, unsigned T,
                                    unsigned Nc, unsigned hasState) {
  __shared__ float Ss[DK * BV];
  __shared__ float Ws[C * BV];
  __shared__ float gs[C];
  const unsigned tid = threadIdx.x;
  const unsigned j0 = blockIdx.x * BV, bh = blockIdx.y;
  for (unsigned idx = tid; idx < DK * BV; idx += NT) {
    const unsigned i = idx / BV, j = j0 + idx % BV;
    Ss[idx] = (hasState != 0u && j < DV) ? S0[((lte_idx)bh * DK + i) * DV + j] : 0.f;
  }
  __syncthreads();
  for (unsigned c = 0; c < Nc; c++) {
    const unsigned t0 = c * C;
    const unsigned n = LTE_MIN(C, T - t0);
    const lte_idx go = (lte_idx)bh * T + t0;
    for (unsigned t = tid; t < C; t += NT) gs[t] = t < n ? gam[go + t] : 0.f;
    float* Hc = H + ((lte_idx)bh * Nc + c) * DK * DV;
    for (unsigned idx = tid; idx < DK * BV; idx += NT) {
      const unsigned i = idx / BV, j = j0 + idx % BV;
      if (j < DV) Hc[i * DV + j] = Ss[idx];
    }
    __syncthreads();
    for (unsigned idx = tid; idx < C * BV; idx += NT) {
      const unsigned t = idx / BV, jj = idx % BV, j = j0 + jj;
      float w = 0.f;
      if (t < n && j < DV) {
        w = U[(go + t) * DV + j];
        for (unsigned i = 0; i < DK; i++) w -= Wk[(go + t) * DK + i] * Ss[i * BV + jj];
        W[(go + t) * DV + j] = w;
      }
      Ws[idx] = w;
    }
    __syncthreads();
    const float gl = gs[n - 1];
    for (unsigned idx = tid; idx < DK * BV; idx += NT) {
      const unsigned i = idx / BV, jj = idx % BV;
      float s = expf(gl) * Ss[idx];
      for (unsigned t = 0; t < n; t++) s += expf(gl - gs[t]) * k[(go + t) * DK + i] * Ws[t * BV + jj];
      Ss[idx] = s;
    }
    __syncthreads();
  }
  for (unsigned idx = tid; idx < DK * BV; idx += NT) {
    const unsigned i = idx / BV, j = j0 + idx % BV;
    if (j < DV) Sout[((lte_idx)bh * DK + i) * DV + j] = Ss[idx];
  }
}

//@kernel gdn_output
// O = scale [diag(exp gam) Q H[c] + (M o Q K^T) W], M[t][s] = exp(gam_t - gam_s) (s <= t).
extern "C" __global__ void gdn_output(const float* __restrict__ q, const float* __restrict__ k,
                                      const float* __restrict__ gam, const float* __restrict__ H,
                                      const float* __restrict__ W, float* __restrict__ O, unsigned T,
                                      float scale) {
  __shared__ float P[C * C];
  __shared__ float gs[C];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const float* Hc = H + ((lte_idx)bh * Nc + c) * DK * DV;
  for (unsigned t = tid; t < C; t += NT) gs[t] = t < n ? gam[go + t] : 0.f;
  __syncthreads();
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float p = 0.f;
    if (s <= t && t < n) {
      float d = 0.f;
      for (unsigned i = 0; i < DK; i++) d += q[(go + t) * DK + i] * k[(go + s) * DK + i];
      p = expf(gs[t] - gs[s]) * d;
    }
    P[idx] = p;
  }
  __syncthreads();
  for (unsigned idx = tid; idx < n * DV; idx += NT) {
    const unsigned t = idx / DV, j = idx % DV;
    float x = 0.f;
    for (unsigned i = 0; i < DK; i++) x += q[(go + t) * DK + i] * Hc[i * DV + j];
    float o = expf(gs[t]) * x;
    for (unsigned s = 0; s <= t; s++) o += P[t * C + s] * W[(go + s) * DV + j];
    O[(go + t) * DV + j] = scale * o;
  }
}

//@kernel gdn_bwd_dwl
// Backward, part of dW that does not depend on the state gradient: scale P^T dO.
extern "C" __global__ void gdn_bwd_dwl(const float* __restrict__ q, const float* __restrict__ k,
                                       const float* __restrict__ gam, const float* __restrict__ dO,
                                       float* __restrict__ dWl, unsigned T, float scale) {
  __shared__ float P[C * C];
  __shared__ float gs[C];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  for (unsigned t = tid; t < C; t += NT) gs[t] = t < n ? gam[go + t] : 0.f;
  __syncthreads();
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float p = 0.f;
    if (s <= t && t < n) {
      float d = 0.f;
      for (unsigned i = 0; i < DK; i++) d += q[(go + t) * DK + i] * k[(go + s) * DK + i];
      p = expf(gs[t] - gs[s]) * d;
    }
    P[idx] = p;
  }
  __syncthreads();
  for (unsigned idx = tid; idx < n * DV; idx += NT) {
    const unsigned s = idx / DV, j = idx % DV;
    float x = 0.f;
    for (unsigned t = s; t < n; t++) x += P[t * C + s] * dO[(go + t) * DV + j];
    dWl[(go + s) * DV + j] = scale * x;
  }
}

//@kernel gdn_bwd_scan
// Backward scan, reverse over chunks: DH[c] = gradient of chunk c's exit state; dW complete;
// dS <- exp(gl) dS + scale Q^T diag(exp gam) dO - Wk^T dW.
extern "C" __global__ void gdn_bwd_scan(const float* __restrict__ q, const float* __restrict__ k,
                                        const float* __restrict__ gam, const float* __restrict__ Wk,
                                        const float* __restrict__ dO, const float* __restrict__ dWl,
                                        const float* __restrict__ dSf, float* __restrict__ DH,
                                        float* __restrict__ dW, float* __restrict__ dS0, unsigned T,
                                        unsigned Nc, unsigned hasDFinal, float scale) {
  __shared__ float dS[DK * BV];
  __shared__ float dWs[C * BV];
  __shared__ float gs[C];
  const unsigned tid = threadIdx.x;
  const unsigned j0 = blockIdx.x * BV, bh = blockIdx.y;
  for (unsigned idx = tid; idx < DK * BV; idx += NT) {
    const unsigned i = idx / BV, j = j0 + idx % BV;
    dS[idx] = (hasDFinal != 0u && j < DV) ? dSf[((lte_idx)bh * DK + i) * DV + j] : 0.f;
  }
  __syncthreads();
  for (unsigned cc = 0; cc < Nc; cc++) {
    const unsigned c = Nc - 1u - cc;
    const unsigned t0 = c * C;
    const unsigned n = LTE_MIN(C, T - t0);
    const lte_idx go = (lte_idx)bh * T + t0;
    for (unsigned t = tid; t < C; t += NT) gs[t] = t < n ? gam[go + t] : 0.f;
    float* Dc = DH + ((lte_idx)bh * Nc + c) * DK * DV;
    for (unsigned idx = tid; idx < DK * BV; idx += NT) {
      const unsigned i = idx / BV, j = j0 + idx % BV;
      if (j < DV) Dc[i * DV + j] = dS[idx];
    }
    __syncthreads();
    const float gl = gs[n - 1];
    for (unsigned idx = tid; idx < C * BV; idx += NT) {
      const unsigned t = idx / BV, jj = idx % BV, j = j0 + jj;
      float x = 0.f;
      if (t < n && j < DV) {
        float y = 0.f;
        for (unsigned i = 0; i < DK; i++) y += k[(go + t) * DK + i] * dS[i * BV + jj];
        x = dWl[(go + t) * DV + j] + expf(gl - gs[t]) * y;
        dW[(go + t) * DV + j] = x;
      }
      dWs[idx] = x;
    }
    __syncthreads();
    for (unsigned idx = tid; idx < DK * BV; idx += NT) {
      const unsigned i = idx / BV, jj = idx % BV, j = j0 + jj;
      float x = expf(gl) * dS[idx];
      if (j < DV)
        for (unsigned t = 0; t < n; t++)
          x += scale * expf(gs[t]) * q[(go + t) * DK + i] * dO[(go + t) * DV + j] -
               Wk[(go + t) * DK + i] * dWs[t * BV + jj];
      dS[idx] = x;
    }
    __syncthreads();
  }
  for (unsigned idx = tid; idx < DK * BV; idx += NT) {
    const unsigned i = idx / BV, j = j0 + idx % BV;
    if (j < DV) dS0[((lte_idx)bh * DK + i) * DV + j] = dS[idx];
  }
}

//@kernel gdn_bwd_qk
// Backward through the output and exit-state formulas: dQ, dK (part 1) and dgam (part 1).
// Rows are handled by 4 lanes each (row = tid / 4), which needs C <= NT / 4 = 64.
extern "C" __global__ void gdn_bwd_qk(const float* __restrict__ q, const float* __restrict__ k,
                                      const float* __restrict__ gam, const float* __restrict__ H,
                                      const float* __restrict__ DH, const float* __restrict__ W,
                                      const float* __restrict__ dO, float* __restrict__ dQ,
                                      float* __restrict__ dK1, float* __restrict__ dgam1, unsigned T,
                                      float scale) {
  __shared__ float M[C * C];
  __shared__ float gs[C];
  __shared__ float rowD[C];
  __shared__ float colD[C];
  __shared__ float red1[NT];
  __shared__ float red2[NT];
  __shared__ float red3[NT];
  __shared__ float lastExtra;
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const float* Hc = H + ((lte_idx)bh * Nc + c) * DK * DV;
  const float* Dc = DH + ((lte_idx)bh * Nc + c) * DK * DV;
  for (unsigned t = tid; t < C; t += NT) gs[t] = t < n ? gam[go + t] : 0.f;
  __syncthreads();
  const float gl = gs[n - 1];
  // D[t][s] = scale (dO_t . W_s) exp(gam_t - gam_s) (q_t . k_s): its row and column sums.
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float d = 0.f;
    if (s <= t && t < n) {
      float a = 0.f, b = 0.f;
      for (unsigned j = 0; j < DV; j++) a += dO[(go + t) * DV + j] * W[(go + s) * DV + j];
      for (unsigned i = 0; i < DK; i++) b += q[(go + t) * DK + i] * k[(go + s) * DK + i];
      d = scale * a * expf(gs[t] - gs[s]) * b;
    }
    M[idx] = d;
  }
  __syncthreads();
  for (unsigned t = tid; t < C; t += NT) {
    float r = 0.f, cl = 0.f;
    for (unsigned s = 0; s < C; s++) {
      r += M[t * C + s];
      cl += M[s * C + t];
    }
    rowD[t] = r;
    colD[t] = cl;
  }
  __syncthreads();
  // E[t][s] = exp(gam_t - gam_s) (dO_t . W_s).
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float e = 0.f;
    if (s <= t && t < n) {
      float a = 0.f;
      for (unsigned j = 0; j < DV; j++) a += dO[(go + t) * DV + j] * W[(go + s) * DV + j];
      e = expf(gs[t] - gs[s]) * a;
    }
    M[idx] = e;
  }
  __syncthreads();
  const unsigned r = tid / 4u, lane = tid % 4u;
  float qx = 0.f, cs = 0.f;
  if (r < n) {
    for (unsigned i = lane; i < DK; i += 4u) {
      float x = 0.f, y = 0.f, e1 = 0.f, e2 = 0.f;
      for (unsigned j = 0; j < DV; j++) {
        x += dO[(go + r) * DV + j] * Hc[i * DV + j];
        y += W[(go + r) * DV + j] * Dc[i * DV + j];
      }
      for (unsigned s = 0; s <= r; s++) e1 += M[r * C + s] * k[(go + s) * DK + i];
      for (unsigned t = r; t < n; t++) e2 += M[t * C + r] * q[(go + t) * DK + i];
      dQ[(go + r) * DK + i] = scale * (expf(gs[r]) * x + e1);
      dK1[(go + r) * DK + i] = scale * e2 + expf(gl - gs[r]) * y;
      qx += q[(go + r) * DK + i] * x;
      cs += k[(go + r) * DK + i] * y;
    }
  }
  red1[tid] = qx;
  red2[tid] = cs;
  float hd = 0.f;
  for (unsigned idx = tid; idx < DK * DV; idx += NT) hd += Hc[idx] * Dc[idx];
  red3[tid] = hd;
  __syncthreads();
  for (unsigned stride = NT / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) red3[tid] += red3[tid + stride];
    __syncthreads();
  }
  if (tid == 0) {
    float extra = expf(gl) * red3[0];
    for (unsigned s = 0; s < n; s++) {
      const float css = red2[4 * s] + red2[4 * s + 1] + red2[4 * s + 2] + red2[4 * s + 3];
      extra += expf(gl - gs[s]) * css;
    }
    lastExtra = extra;
  }
  __syncthreads();
  for (unsigned t = tid; t < n; t += NT) {
    const float qxt = red1[4 * t] + red1[4 * t + 1] + red1[4 * t + 2] + red1[4 * t + 3];
    const float cst = red2[4 * t] + red2[4 * t + 1] + red2[4 * t + 2] + red2[4 * t + 3];
    float d = rowD[t] - colD[t] + scale * expf(gs[t]) * qxt - expf(gl - gs[t]) * cst;
    if (t == n - 1) d += lastExtra;
    dgam1[go + t] = d;
  }
}

//@kernel gdn_bwd_dwk
// dWk = -dW H[c]^T.
extern "C" __global__ void gdn_bwd_dwk(const float* __restrict__ H, const float* __restrict__ dW,
                                       float* __restrict__ dWk, unsigned T) {
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const float* Hc = H + ((lte_idx)bh * Nc + c) * DK * DV;
  for (unsigned idx = tid; idx < n * DK; idx += NT) {
    const unsigned t = idx / DK, i = idx % DK;
    float x = 0.f;
    for (unsigned j = 0; j < DV; j++) x += dW[(go + t) * DV + j] * Hc[i * DV + j];
    dWk[(go + t) * DK + i] = -x;
  }
}

//@kernel gdn_bwd_tm
// Through U = Tm beta V and Wk = Tm beta exp(gam) K: dV, dK (part 2), dbeta (part 1),
// dgam (part 2), and dTm for the next kernel.
extern "C" __global__ void gdn_bwd_tm(const float* __restrict__ k, const float* __restrict__ v,
                                      const float* __restrict__ beta, const float* __restrict__ gam,
                                      const float* __restrict__ Tm, const float* __restrict__ dW,
                                      const float* __restrict__ dWk, float* __restrict__ dV,
                                      float* __restrict__ dKy, float* __restrict__ dTm,
                                      float* __restrict__ dbeta1, float* __restrict__ dgam2,
                                      unsigned T) {
  __shared__ float Ts[C * C];
  __shared__ float gs[C];
  __shared__ float bs[C];
  __shared__ float red1[NT];
  __shared__ float red2[NT];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const lte_idx mo = ((lte_idx)bh * Nc + c) * C * C;
  for (unsigned idx = tid; idx < C * C; idx += NT) Ts[idx] = Tm[mo + idx];
  for (unsigned t = tid; t < C; t += NT) {
    gs[t] = t < n ? gam[go + t] : 0.f;
    bs[t] = t < n ? beta[go + t] : 0.f;
  }
  __syncthreads();
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float val = 0.f;
    if (s <= t && t < n) {
      float a = 0.f, b = 0.f;
      for (unsigned j = 0; j < DV; j++) a += dW[(go + t) * DV + j] * v[(go + s) * DV + j];
      for (unsigned i = 0; i < DK; i++) b += dWk[(go + t) * DK + i] * k[(go + s) * DK + i];
      val = bs[s] * (a + expf(gs[s]) * b);
    }
    dTm[mo + idx] = val;
  }
  const unsigned s = tid / 4u, lane = tid % 4u;
  float vx = 0.f, ky = 0.f;
  if (s < n) {
    for (unsigned j = lane; j < DV; j += 4u) {
      float x = 0.f;
      for (unsigned t = s; t < n; t++) x += Ts[t * C + s] * dW[(go + t) * DV + j];
      dV[(go + s) * DV + j] = bs[s] * x;
      vx += v[(go + s) * DV + j] * x;
    }
    for (unsigned i = lane; i < DK; i += 4u) {
      float y = 0.f;
      for (unsigned t = s; t < n; t++) y += Ts[t * C + s] * dWk[(go + t) * DK + i];
      dKy[(go + s) * DK + i] = bs[s] * expf(gs[s]) * y;
      ky += k[(go + s) * DK + i] * y;
    }
  }
  red1[tid] = vx;
  red2[tid] = ky;
  __syncthreads();
  for (unsigned t = tid; t < n; t += NT) {
    const float VX = red1[4 * t] + red1[4 * t + 1] + red1[4 * t + 2] + red1[4 * t + 3];
    const float KY = red2[4 * t] + red2[4 * t + 1] + red2[4 * t + 2] + red2[4 * t + 3];
    dbeta1[go + t] = VX + expf(gs[t]) * KY;
    dgam2[go + t] = bs[t] * expf(gs[t]) * KY;
  }
}

//@kernel gdn_bwd_a
// A = Tm^T dTm (lower triangle).
extern "C" __global__ void gdn_bwd_a(const float* __restrict__ Tm, const float* __restrict__ dTm,
                                     float* __restrict__ A, unsigned T) {
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned n = LTE_MIN(C, T - c * C);
  const lte_idx mo = ((lte_idx)bh * Nc + c) * C * C;
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned r = idx / C, s = idx % C;
    float x = 0.f;
    if (s <= r && r < n)
      for (unsigned t = r; t < n; t++) x += Tm[mo + t * C + r] * dTm[mo + t * C + s];
    A[mo + idx] = x;
  }
}

//@kernel gdn_bwd_dl
// Through Tm = (I + L)^-1: dL = -A Tm^T on the strict lower triangle, then through
// L[t][s] = beta_t exp(gam_t - gam_s) k_t.k_s: dK (part 3), dbeta (part 2), dgam (part 3).
extern "C" __global__ void gdn_bwd_dl(const float* __restrict__ k, const float* __restrict__ beta,
                                      const float* __restrict__ gam, const float* __restrict__ Tm,
                                      const float* __restrict__ A, float* __restrict__ dKL,
                                      float* __restrict__ dbetaL, float* __restrict__ dgamL,
                                      unsigned T) {
  __shared__ float M[C * C];
  __shared__ float gs[C];
  __shared__ float bs[C];
  __shared__ float rowZ[C];
  __shared__ float colBZ[C];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y, Nc = gridDim.x;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  const lte_idx mo = ((lte_idx)bh * Nc + c) * C * C;
  for (unsigned t = tid; t < C; t += NT) {
    gs[t] = t < n ? gam[go + t] : 0.f;
    bs[t] = t < n ? beta[go + t] : 0.f;
  }
  __syncthreads();
  // Z[t][s] = dL[t][s] exp(gam_t - gam_s) k_t.k_s (so dL * L = beta_t Z).
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float z = 0.f;
    if (s < t && t < n) {
      float dl = 0.f, kk = 0.f;
      for (unsigned r = 0; r <= s; r++) dl -= A[mo + t * C + r] * Tm[mo + s * C + r];
      for (unsigned i = 0; i < DK; i++) kk += k[(go + t) * DK + i] * k[(go + s) * DK + i];
      z = dl * expf(gs[t] - gs[s]) * kk;
    }
    M[idx] = z;
  }
  __syncthreads();
  for (unsigned t = tid; t < C; t += NT) {
    float rz = 0.f, cz = 0.f;
    for (unsigned u = 0; u < C; u++) {
      rz += M[t * C + u];
      cz += bs[u] * M[u * C + t];
    }
    rowZ[t] = rz;
    colBZ[t] = cz;
  }
  __syncthreads();
  for (unsigned t = tid; t < n; t += NT) {
    dbetaL[go + t] = rowZ[t];
    dgamL[go + t] = bs[t] * rowZ[t] - colBZ[t];
  }
  // dKK[t][s] = dL[t][s] beta_t exp(gam_t - gam_s).
  for (unsigned idx = tid; idx < C * C; idx += NT) {
    const unsigned t = idx / C, s = idx % C;
    float d = 0.f;
    if (s < t && t < n) {
      float dl = 0.f;
      for (unsigned r = 0; r <= s; r++) dl -= A[mo + t * C + r] * Tm[mo + s * C + r];
      d = dl * bs[t] * expf(gs[t] - gs[s]);
    }
    M[idx] = d;
  }
  __syncthreads();
  for (unsigned idx = tid; idx < n * DK; idx += NT) {
    const unsigned r = idx / DK, i = idx % DK;
    float x = 0.f;
    for (unsigned s = 0; s < r; s++) x += M[r * C + s] * k[(go + s) * DK + i];
    for (unsigned t = r + 1; t < n; t++) x += M[t * C + r] * k[(go + t) * DK + i];
    dKL[(go + r) * DK + i] = x;
  }
}

//@kernel gdn_bwd_final
// Sums the parts; dg = reverse cumulative sum of dgam within each chunk.
extern "C" __global__ void gdn_bwd_final(const float* __restrict__ dK1, const float* __restrict__ dKy,
                                         const float* __restrict__ dKL, const float* __restrict__ dbeta1,
                                         const float* __restrict__ dbetaL, const float* __restrict__ dgam1,
                                         const float* __restrict__ dgam2, const float* __restrict__ dgamL,
                                         float* __restrict__ dK, float* __restrict__ dbeta,
                                         float* __restrict__ dg, unsigned T) {
  __shared__ float acc[C];
  const unsigned tid = threadIdx.x;
  const unsigned c = blockIdx.x, bh = blockIdx.y;
  const unsigned t0 = c * C;
  const unsigned n = LTE_MIN(C, T - t0);
  const lte_idx go = (lte_idx)bh * T + t0;
  for (unsigned idx = tid; idx < n * DK; idx += NT) {
    const lte_idx o = go * DK + idx;
    dK[o] = dK1[o] + dKy[o] + dKL[o];
  }
  for (unsigned t = tid; t < C; t += NT) {
    if (t < n) dbeta[go + t] = dbeta1[go + t] + dbetaL[go + t];
    acc[t] = t < n ? dgam1[go + t] + dgam2[go + t] + dgamL[go + t] : 0.f;
  }
  __syncthreads();
  if (tid == 0) {
    float run = 0.f;
    for (unsigned u = 0; u < C; u++) {
      const unsigned t = C - 1u - u;
      run += acc[t];
      acc[t] = run;
    }
  }
  __syncthreads();
  for (unsigned t = tid; t < n; t += NT) dg[go + t] = acc[t];
}
`
