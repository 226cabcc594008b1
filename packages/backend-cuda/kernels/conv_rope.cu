// 1-D convolution (channels-last x [B, DT, Cin], weight [Cout, Cin/groups, K]) and its gradients,
// rotary embedding, and AdamW, for a floating element type DT. Accumulation in float32.
#include "common.cuh"

#ifndef DT
#define DT float
#endif

extern "C" __global__ void conv1d_k(const DT* __restrict__ x, const DT* __restrict__ w, const DT* __restrict__ bias,
                                    DT* __restrict__ out, int B, int Tin, int cin, int cout, int cin_pg, int K,
                                    int Tout, int dilation, int pad_left, int groups, int has_bias) {
  const i64 n = (i64)B * Tout * cout;
  const int cout_pg = cout / groups;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const int co = (int)(i % cout);
    const i64 bt = i / cout;
    const int t = (int)(bt % Tout);
    const int b = (int)(bt / Tout);
    const int g0 = (co / cout_pg) * cin_pg;
    float s = has_bias ? to_f(bias[co]) : 0.f;
    for (int k = 0; k < K; ++k) {
      const int ti = t - pad_left + k * dilation;
      if (ti < 0 || ti >= Tin) continue;
      const DT* xr = x + ((i64)b * Tin + ti) * cin + g0;
      const DT* wr = w + (i64)co * cin_pg * K + k;
      for (int c = 0; c < cin_pg; ++c) s += to_f(wr[(i64)c * K]) * to_f(xr[c]);
    }
    out[i] = from_f<DT>(s);
  }
}

// dx [B, Tin, cin] from dy [B, Tout, cout]: each input element gathers the outputs it fed.
extern "C" __global__ void conv1d_bwd_input_k(const DT* __restrict__ dy, const DT* __restrict__ w, DT* __restrict__ dx,
                                              int B, int Tin, int cin, int cout, int cin_pg, int K, int Tout,
                                              int dilation, int pad_left, int groups) {
  const i64 n = (i64)B * Tin * cin;
  const int cout_pg = cout / groups;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const int ci = (int)(i % cin);
    const i64 bt = i / cin;
    const int ti = (int)(bt % Tin);
    const int b = (int)(bt / Tin);
    const int g = ci / cin_pg, c = ci - g * cin_pg;
    float s = 0.f;
    for (int k = 0; k < K; ++k) {
      const int t = ti + pad_left - k * dilation;
      if (t < 0 || t >= Tout) continue;
      const DT* dyr = dy + ((i64)b * Tout + t) * cout;
      for (int co = g * cout_pg; co < (g + 1) * cout_pg; ++co) s += to_f(dyr[co]) * to_f(w[((i64)co * cin_pg + c) * K + k]);
    }
    dx[i] = from_f<DT>(s);
  }
}

// dweight [cout, cin_pg, K]: one thread per weight, summing over batch and time.
extern "C" __global__ void conv1d_bwd_weight_k(const DT* __restrict__ x, const DT* __restrict__ dy, DT* __restrict__ dw,
                                               int B, int Tin, int cin, int cout, int cin_pg, int K, int Tout,
                                               int dilation, int pad_left, int groups) {
  const i64 n = (i64)cout * cin_pg * K;
  const int cout_pg = cout / groups;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const int k = (int)(i % K);
    const int c = (int)((i / K) % cin_pg);
    const int co = (int)(i / ((i64)K * cin_pg));
    const int ci = (co / cout_pg) * cin_pg + c;
    float s = 0.f;
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < Tout; ++t) {
        const int ti = t - pad_left + k * dilation;
        if (ti < 0 || ti >= Tin) continue;
        s += to_f(dy[((i64)b * Tout + t) * cout + co]) * to_f(x[((i64)b * Tin + ti) * cin + ci]);
      }
    }
    dw[i] = from_f<DT>(s);
  }
}

// Rotate-half rotary embedding of x [rows, D] by positions [rows]; features past rotary_dim pass
// through. Angles in float64: positions reach thousands, and float32 angles would lose 1e-4.
extern "C" __global__ void rope_k(const DT* __restrict__ x, const int* __restrict__ pos, DT* __restrict__ out,
                                  i64 rows, int D, int rotary_dim, float base, float dir) {
  const int half = rotary_dim / 2;
  const i64 n = rows * D;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 r = i / D;
    const int j = (int)(i - r * D);
    if (j >= rotary_dim) {
      out[i] = x[i];
      continue;
    }
    // The thread of the pair's first element writes both: the double pow and sincos (the
    // kernel's cost) once per pair.
    if (j >= half) continue;
    const double inv_freq = pow((double)base, -2.0 * j / (double)rotary_dim);
    const double theta = (double)dir * (double)pos[r] * inv_freq;
    double s, c;
    sincos(theta, &s, &c);
    const float x1 = to_f(x[i]);
    const float x2 = to_f(x[i + half]);
    out[i] = from_f<DT>((float)(x1 * c - x2 * s));
    out[i + half] = from_f<DT>((float)(x2 * c + x1 * s));
  }
}
