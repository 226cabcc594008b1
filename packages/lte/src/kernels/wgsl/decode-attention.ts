/** WGSL port of kernels/cuda/decode-attention.ts (same algorithm and layout). */
import { wgslModule } from './module.js'

export function decodeAttentionWgslSource(D: number): string {
  return wgslModule(
    'lte_decode_attention',
    {
      inputs: ['q', 'k', 'v', ['pos', 'i32'], 'kNew', 'vNew'],
      outputs: ['out'],
      scalars: [
        ['N', 'u32'],
        ['H', 'u32'],
        ['Hk', 'u32'],
        ['scale', 'f32'],
      ],
      decls: `const NEG_BIG: f32 = -3.0e38;
var<workgroup> qs: array<f32, D>;
var<workgroup> p: array<f32, NT>;
var<workgroup> red: array<f32, NT>;`,
      body: `
  let h = wg.x;
  let b = wg.y;
  let N = params.N;
  let H = params.H;
  let Hk = params.Hk;
  let hk = h / (H / Hk);
  let kvBase = (b * Hk + hk) * N;
  let newBase = (b * Hk + hk) * D;
  for (var d = tid; d < D; d += NT) { qs[d] = q[(b * H + h) * D + d]; }
  workgroupBarrier();
  let total = N + 1u;
  var m = NEG_BIG;
  var l = 0.0;
  var acc = 0.0;
  for (var base = 0u; base < total; base += NT) {
    let key = base + tid;
    var score = NEG_BIG;
    if (key < total) {
      let isNew = key == N;
      var valid = isNew;
      if (!isNew) { valid = pos[kvBase + key] >= 0; }
      if (valid) {
        var s = 0.0;
        for (var d = 0u; d < D; d++) {
          var kd = 0.0;
          if (isNew) { kd = kNew[newBase + d]; } else { kd = k[(kvBase + key) * D + d]; }
          s += qs[d] * kd;
        }
        score = params.scale * s;
      }
    }
    p[tid] = score;
    red[tid] = score;
    workgroupBarrier();
    for (var stride = NT / 2u; stride > 0u; stride = stride >> 1u) {
      if (tid < stride) { red[tid] = max(red[tid], red[tid + stride]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    workgroupBarrier();
    var e = 0.0;
    if (p[tid] > NEG_BIG) { e = exp(p[tid] - mNew); }
    p[tid] = e;
    red[tid] = e;
    workgroupBarrier();
    for (var stride = NT / 2u; stride > 0u; stride = stride >> 1u) {
      if (tid < stride) { red[tid] += red[tid + stride]; }
      workgroupBarrier();
    }
    var corr = 0.0;
    if (m > NEG_BIG) { corr = exp(m - mNew); }
    l = l * corr + red[0];
    if (tid < D) {
      var a = acc * corr;
      let count = min(total - base, NT);
      for (var j = 0u; j < count; j++) {
        let key2 = base + j;
        var vd = 0.0;
        if (key2 == N) { vd = vNew[newBase + tid]; } else { vd = v[(kvBase + key2) * D + tid]; }
        a += p[j] * vd;
      }
      acc = a;
    }
    m = mNew;
    workgroupBarrier();
  }
  if (tid < D) {
    var o = 0.0;
    if (l > 0.0) { o = acc / l; }
    out[(b * H + h) * D + tid] = o;
  }`,
    },
    { D, NT: 256 },
  )
}
