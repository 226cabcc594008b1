// One AdamW step (decoupled weight decay). Parameter type DTP, moment type DTS; maths in float32.
#include "common.cuh"

#ifndef DTP
#define DTP float
#define DTS float
#endif

extern "C" __global__ void adamw_k(const DTP* __restrict__ p, const DTP* __restrict__ g, const DTS* __restrict__ m,
                                   const DTS* __restrict__ v, DTP* __restrict__ p_out, DTS* __restrict__ m_out,
                                   DTS* __restrict__ v_out, i64 n, float lr, float beta1, float beta2, float eps,
                                   float weight_decay, float inv_c1, float inv_c2) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const float gi = to_f(g[i]);
    const float mi = beta1 * to_f(m[i]) + (1.f - beta1) * gi;
    const float vi = beta2 * to_f(v[i]) + (1.f - beta2) * gi * gi;
    m_out[i] = from_f<DTS>(mi);
    v_out[i] = from_f<DTS>(vi);
    p_out[i] = from_f<DTP>(to_f(p[i]) * (1.f - lr * weight_decay) - lr * (mi * inv_c1) / (sqrtf(vi * inv_c2) + eps));
  }
}
