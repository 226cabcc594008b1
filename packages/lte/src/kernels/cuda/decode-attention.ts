/**
 * CUDA C source of the LTE decode step's attention: one query per (batch, head) over the cache
 * slots (sinks, ring, pool; slot n used when pos[n] >= 0) plus the new token, online softmax
 * over tiles of NT keys. q [B, H, D], k/v [B, Hk, N, D], pos int [B, Hk, N], kNew/vNew
 * [B, Hk, D] -> out [B, H, D]; query head h reads KV head h / (H / Hk). Grid (H, B), 256 threads.
 */
export function decodeAttentionCudaSource(D: number): string {
  return `#define D ${D}u\n${BODY}`
}

const BODY = `#define NT 256u
#define NEG_BIG (-3.0e38f)
// Indices past 2^32 elements; NVRTC has no standard headers (no size_t).
typedef unsigned long long lte_idx;

extern "C" __global__ void lte_decode_attention(const float* __restrict__ q, const float* __restrict__ k,
                                                const float* __restrict__ v, const int* __restrict__ pos,
                                                const float* __restrict__ kNew, const float* __restrict__ vNew,
                                                float* __restrict__ out, unsigned N, unsigned H, unsigned Hk,
                                                float scale) {
  __shared__ float qs[D];
  __shared__ float p[NT];
  __shared__ float red[NT];
  const unsigned tid = threadIdx.x;
  const unsigned h = blockIdx.x, b = blockIdx.y;
  const unsigned hk = h / (H / Hk);
  const lte_idx kvBase = ((lte_idx)b * Hk + hk) * N;
  const lte_idx newBase = ((lte_idx)b * Hk + hk) * D;
  for (unsigned d = tid; d < D; d += NT) qs[d] = q[((lte_idx)b * H + h) * D + d];
  __syncthreads();
  const unsigned total = N + 1u;
  float m = NEG_BIG, l = 0.f, acc = 0.f;
  for (unsigned base = 0; base < total; base += NT) {
    const unsigned key = base + tid;
    float score = NEG_BIG;
    if (key < total) {
      const bool isNew = key == N;
      if (isNew || pos[kvBase + key] >= 0) {
        const float* kr = isNew ? kNew + newBase : k + (kvBase + key) * D;
        float s = 0.f;
        for (unsigned d = 0; d < D; d++) s += qs[d] * kr[d];
        score = scale * s;
      }
    }
    p[tid] = score;
    red[tid] = score;
    __syncthreads();
    for (unsigned stride = NT / 2u; stride > 0u; stride >>= 1u) {
      if (tid < stride) red[tid] = fmaxf(red[tid], red[tid + stride]);
      __syncthreads();
    }
    const float mNew = fmaxf(m, red[0]);
    __syncthreads();
    const float e = p[tid] <= NEG_BIG ? 0.f : expf(p[tid] - mNew);
    p[tid] = e;
    red[tid] = e;
    __syncthreads();
    for (unsigned stride = NT / 2u; stride > 0u; stride >>= 1u) {
      if (tid < stride) red[tid] += red[tid + stride];
      __syncthreads();
    }
    const float corr = m <= NEG_BIG ? 0.f : expf(m - mNew);
    l = l * corr + red[0];
    if (tid < D) {
      float a = acc * corr;
      const unsigned count = total - base < NT ? total - base : NT;
      for (unsigned j = 0; j < count; j++) {
        const unsigned key2 = base + j;
        const float* vr = key2 == N ? vNew + newBase : v + (kvBase + key2) * D;
        a += p[j] * vr[tid];
      }
      acc = a;
    }
    m = mNew;
    __syncthreads();
  }
  if (tid < D) out[((lte_idx)b * H + h) * D + tid] = l > 0.f ? acc / l : 0.f;
}
`
