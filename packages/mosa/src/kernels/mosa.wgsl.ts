import { wgslTiles } from './tiles.js'

/**
 * WGSL sources of the fused MoSA kernels, one module per entry point (the same kernels and
 * launch grids as mosa.cu.ts, with smaller tiles: 64 invocations as an 8 x 8 grid, each
 * workgroup's memory within 16 KiB). Without subgroups or float atomics, row reductions go
 * through workgroup memory and scatter-adds use a compare-and-swap loop on the float's bits.
 * RoPE angles are computed in f32 (WGSL has no f64).
 */
export function mosaWgslSource(D: number, entry: string): string {
  if (D % 32 !== 0 || D > 64) throw new Error(`mosaWgslSource: head dim must be 32 or 64, got ${D}`)
  const t = wgslTiles(D)
  const header = `// @attnkit/mosa ${entry}, head dim ${D}
const D = ${D}u;
const TN = ${D / 8}u;
const BM = ${t.BM}u;
const BN = ${t.BN}u;
const BK = ${t.BK}u;
const TM = ${t.BM / 8}u;
const TNN = ${t.BN / 8}u;
const BQ = ${t.BQ}u;
const BKV = ${t.BKV}u;
const TQ = ${t.BQ / 8}u;
const TJ = ${t.BKV / 8}u;
const BB = ${t.BB}u;
const TB = ${t.BB / 8}u;
const BW = ${t.BW}u;
const TW = ${t.BW / 8}u;
const NEG = -3.0e38;
`
  const body = KERNELS[entry]
  if (!body) throw new Error(`mosaWgslSource: unknown entry point '${entry}'`)
  return header + body
}

const atomicAddF32 = (buffer: string) => `
fn atomicAddF32(i: u32, v: f32) {
  var old = atomicLoad(&${buffer}[i]);
  loop {
    let r = atomicCompareExchangeWeak(&${buffer}[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`

const KERNELS: Record<string, string> = {
  mosa_select: `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> indices: array<i32>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
struct Params { T: i32, k: i32 }
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> scanGt: array<u32, 256>;
var<workgroup> scanEq: array<u32, 256>;
var<workgroup> sPrefix: u32;
var<workgroup> sNeed: u32;

// Order-preserving map of floats to u32 (-0 as +0, NaN above +inf).
fn orderedKey(f: f32) -> u32 {
  var b = bitcast<u32>(f);
  if (b == 0x80000000u) { b = 0u; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

@compute @workgroup_size(256)
fn mosa_select(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let T = u32(p.T);
  let k = u32(p.k);
  let base = wg.x * T;
  var prefix = 0u;
  var mask = 0u;
  var need = k;
  for (var digit = 0u; digit < 4u; digit++) {
    let shift = 24u - 8u * digit;
    atomicStore(&hist[tid], 0u);
    workgroupBarrier();
    for (var i = tid; i < T; i += 256u) {
      let key = orderedKey(logits[base + i]);
      if ((key & mask) == prefix) { atomicAdd(&hist[(key >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (tid == 0u) {
      var above = 0u;
      for (var d = 255i; d >= 0i; d--) {
        let c = atomicLoad(&hist[u32(d)]);
        if (above + c >= need) {
          sPrefix = prefix | (u32(d) << shift);
          sNeed = need - above;
          break;
        }
        above += c;
      }
    }
    prefix = workgroupUniformLoad(&sPrefix);
    need = workgroupUniformLoad(&sNeed);
    mask |= 255u << shift;
  }
  let chunk = (T + 255u) / 256u;
  let begin = min(T, tid * chunk);
  let end = min(T, begin + chunk);
  var gt = 0u;
  var eq = 0u;
  for (var i = begin; i < end; i++) {
    let key = orderedKey(logits[base + i]);
    if (key > prefix) { gt++; } else if (key == prefix) { eq++; }
  }
  scanGt[tid] = gt;
  scanEq[tid] = eq;
  workgroupBarrier();
  if (tid == 0u) {
    var a = 0u;
    var b = 0u;
    for (var i = 0u; i < 256u; i++) {
      let g = scanGt[i];
      let e = scanEq[i];
      scanGt[i] = a;
      scanEq[i] = b;
      a += g;
      b += e;
    }
  }
  workgroupBarrier();
  var gtBefore = scanGt[tid];
  var eqBefore = scanEq[tid];
  let outBase = wg.x * k;
  for (var i = begin; i < end; i++) {
    let v = logits[base + i];
    let key = orderedKey(v);
    if (key > prefix || (key == prefix && eqBefore < need)) {
      let pos = gtBefore + min(eqBefore, need);
      indices[outBase + pos] = i32(i);
      scores[outBase + pos] = 1.0 / (1.0 + exp(-v));
    }
    if (key > prefix) { gtBefore++; } else if (key == prefix) { eqBefore++; }
  }
}
`,

  mosa_project: `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(2) var<storage, read> wq: array<f32>;
@group(0) @binding(3) var<storage, read> wk: array<f32>;
@group(0) @binding(4) var<storage, read> wv: array<f32>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> k: array<f32>;
@group(0) @binding(7) var<storage, read_write> v: array<f32>;
struct Params { T: i32, C: i32, Hs: i32, K: i32, ropeBase: f32 }
@group(0) @binding(8) var<uniform> p: Params;
var<workgroup> As: array<f32, BK * (BM + 1u)>;
var<workgroup> Bs: array<f32, BK * (D + 1u)>;
var<workgroup> rows: array<i32, BM>;

fn loadW(which: u32, i: u32) -> f32 {
  if (which == 0u) { return wq[i]; }
  if (which == 1u) { return wk[i]; }
  return wv[i];
}

fn store(which: u32, i: u32, value: f32) {
  if (which == 0u) { q[i] = value; } else if (which == 1u) { k[i] = value; } else { v[i] = value; }
}

@compute @workgroup_size(64)
fn mosa_project(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let T = u32(p.T);
  let C = u32(p.C);
  let Hs = u32(p.Hs);
  let K = u32(p.K);
  let i0 = wg.x * BM;
  let which = wg.y % 3u;
  let h = wg.y / 3u;
  let b = wg.z;
  let bh = b * Hs + h;
  if (tid < BM) {
    rows[tid] = select(-1, i32(b * T + u32(indices[bh * K + i0 + tid])), i0 + tid < K);
  }
  workgroupBarrier();
  var acc: array<f32, TM * TN>;
  for (var c0 = 0u; c0 < C; c0 += BK) {
    for (var e = tid; e < BM * BK; e += 64u) {
      let kk = e % BK;
      let r = e / BK;
      let row = rows[r];
      var val = 0.0;
      if (row >= 0 && c0 + kk < C) { val = x[u32(row) * C + c0 + kk]; }
      As[kk * (BM + 1u) + r] = val;
    }
    for (var e = tid; e < D * BK; e += 64u) {
      let kk = e % BK;
      let n = e / BK;
      var val = 0.0;
      if (c0 + kk < C) { val = loadW(which, (h * D + n) * C + c0 + kk); }
      Bs[kk * (D + 1u) + n] = val;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var m = 0u; m < TM; m++) {
        let a = As[kk * (BM + 1u) + ty + 8u * m];
        for (var j = 0u; j < TN; j++) {
          acc[m * TN + j] = fma(a, Bs[kk * (D + 1u) + tx + 8u * j], acc[m * TN + j]);
        }
      }
    }
    workgroupBarrier();
  }
  let rotate = which < 2u && p.ropeBase > 0.0;
  for (var m = 0u; m < TM; m++) {
    let i = i0 + ty + 8u * m;
    if (i >= K) { continue; }
    let o = (bh * K + i) * D;
    if (rotate) {
      let pos = f32(indices[bh * K + i]);
      for (var j = 0u; j < TN / 2u; j++) {
        let n = tx + 8u * j;
        let theta = pos * pow(p.ropeBase, -2.0 * f32(n) / f32(D));
        let c = cos(theta);
        let s = sin(theta);
        let x1 = acc[m * TN + j];
        let x2 = acc[m * TN + j + TN / 2u];
        store(which, o + n, x1 * c - x2 * s);
        store(which, o + n + D / 2u, x2 * c + x1 * s);
      }
    } else {
      for (var j = 0u; j < TN; j++) { store(which, o + tx + 8u * j, acc[m * TN + j]); }
    }
  }
}
`,

  mosa_attend: `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> attnOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
struct Params { K: i32, Hs: i32, scale: f32 }
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> Qs: array<f32, D * (BQ + 1u)>;
var<workgroup> Ks: array<f32, D * (BKV + 1u)>;
var<workgroup> Vs: array<f32, BKV * D>;
var<workgroup> Ps: array<f32, BQ * (BKV + 1u)>;
var<workgroup> mS: array<f32, BQ>;
var<workgroup> lS: array<f32, BQ>;
var<workgroup> alphaS: array<f32, BQ>;

@compute @workgroup_size(64)
fn mosa_attend(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let K = u32(p.K);
  let Hs = u32(p.Hs);
  let q0 = wg.x * BQ;
  let base = (wg.z * Hs + wg.y) * K * D;
  for (var e = tid; e < BQ * D; e += 64u) {
    let d = e % D;
    let r = e / D;
    var val = 0.0;
    if (q0 + r < K) { val = q[base + (q0 + r) * D + d] * p.scale; }
    Qs[d * (BQ + 1u) + r] = val;
  }
  if (tid < BQ) {
    mS[tid] = NEG;
    lS[tid] = 0.0;
  }
  var acc: array<f32, TQ * TN>;
  let tiles = (min(K, q0 + BQ) - 1u) / BKV + 1u;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * BKV;
    workgroupBarrier();
    for (var e = tid; e < BKV * D; e += 64u) {
      let d = e % D;
      let c = e / D;
      var kv = 0.0;
      var vv = 0.0;
      if (k0 + c < K) {
        kv = k[base + (k0 + c) * D + d];
        vv = v[base + (k0 + c) * D + d];
      }
      Ks[d * (BKV + 1u) + c] = kv;
      Vs[c * D + d] = vv;
    }
    workgroupBarrier();
    var s: array<f32, TQ * TJ> = array<f32, TQ * TJ>(); // zeroed on every iteration (not hoisted)
    for (var d = 0u; d < D; d++) {
      for (var m = 0u; m < TQ; m++) {
        let a = Qs[d * (BQ + 1u) + ty + 8u * m];
        for (var j = 0u; j < TJ; j++) {
          s[m * TJ + j] = fma(a, Ks[d * (BKV + 1u) + tx + 8u * j], s[m * TJ + j]);
        }
      }
    }
    for (var m = 0u; m < TQ; m++) {
      for (var j = 0u; j < TJ; j++) {
        let qi = q0 + ty + 8u * m;
        let kj = k0 + tx + 8u * j;
        Ps[(ty + 8u * m) * (BKV + 1u) + tx + 8u * j] = select(s[m * TJ + j], NEG, kj > qi || kj >= K);
      }
    }
    workgroupBarrier();
    // One invocation per query row: running max, rescale factor, probabilities, running sum.
    if (tid < BQ) {
      let row = tid * (BKV + 1u);
      let mOld = mS[tid];
      var mx = mOld;
      for (var c = 0u; c < BKV; c++) { mx = max(mx, Ps[row + c]); }
      var sum = 0.0;
      for (var c = 0u; c < BKV; c++) {
        let sv = Ps[row + c];
        let pr = select(exp(sv - mx), 0.0, sv <= 0.5 * NEG);
        Ps[row + c] = pr;
        sum += pr;
      }
      let alpha = select(exp(mOld - mx), 0.0, mOld <= 0.5 * NEG);
      alphaS[tid] = alpha;
      lS[tid] = lS[tid] * alpha + sum;
      mS[tid] = mx;
    }
    workgroupBarrier();
    for (var m = 0u; m < TQ; m++) {
      let r = ty + 8u * m;
      let alpha = alphaS[r];
      for (var n = 0u; n < TN; n++) { acc[m * TN + n] *= alpha; }
      for (var c = 0u; c < BKV; c++) {
        let pr = Ps[r * (BKV + 1u) + c];
        for (var n = 0u; n < TN; n++) {
          acc[m * TN + n] = fma(pr, Vs[c * D + tx + 8u * n], acc[m * TN + n]);
        }
      }
    }
  }
  for (var m = 0u; m < TQ; m++) {
    let r = ty + 8u * m;
    let qi = q0 + r;
    if (qi >= K) { continue; }
    let inv = 1.0 / lS[r];
    for (var n = 0u; n < TN; n++) { attnOut[base + qi * D + tx + 8u * n] = acc[m * TN + n] * inv; }
    if (tx == 0u) { lse[base / D + qi] = mS[r] + log(lS[r]); }
  }
}
`,

  mosa_out_scatter: `
@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<i32>;
@group(0) @binding(3) var<storage, read> wo: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<atomic<u32>>;
struct Params { T: i32, C: i32, Hs: i32, K: i32 }
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> As: array<f32, BK * (BM + 1u)>;
var<workgroup> Bs: array<f32, BK * (BN + 1u)>;
var<workgroup> rows: array<i32, BM>;
var<workgroup> sc: array<f32, BM>;
${atomicAddF32('y')}
@compute @workgroup_size(64)
fn mosa_out_scatter(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let T = u32(p.T);
  let C = u32(p.C);
  let Hs = u32(p.Hs);
  let K = u32(p.K);
  let i0 = wg.x * BM;
  let c0 = wg.y * BN;
  let bh = wg.z;
  let b = bh / Hs;
  let h = bh % Hs;
  if (tid < BM) {
    let ok = i0 + tid < K;
    rows[tid] = select(-1, i32(b * T + u32(indices[bh * K + i0 + tid])), ok);
    sc[tid] = select(0.0, scores[bh * K + i0 + tid], ok);
  }
  var acc: array<f32, TM * TNN>;
  for (var d0 = 0u; d0 < D; d0 += BK) {
    workgroupBarrier();
    for (var e = tid; e < BM * BK; e += 64u) {
      let kk = e % BK;
      let r = e / BK;
      var val = 0.0;
      if (i0 + r < K) { val = o[(bh * K + i0 + r) * D + d0 + kk]; }
      As[kk * (BM + 1u) + r] = val;
    }
    for (var e = tid; e < BN * BK; e += 64u) {
      let kk = e % BK;
      let n = e / BK;
      var val = 0.0;
      if (c0 + n < C) { val = wo[(c0 + n) * Hs * D + h * D + d0 + kk]; }
      Bs[kk * (BN + 1u) + n] = val;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var m = 0u; m < TM; m++) {
        let a = As[kk * (BM + 1u) + ty + 8u * m];
        for (var j = 0u; j < TNN; j++) {
          acc[m * TNN + j] = fma(a, Bs[kk * (BN + 1u) + tx + 8u * j], acc[m * TNN + j]);
        }
      }
    }
  }
  for (var m = 0u; m < TM; m++) {
    let row = rows[ty + 8u * m];
    if (row < 0) { continue; }
    let s = sc[ty + 8u * m];
    for (var j = 0u; j < TNN; j++) {
      let c = c0 + tx + 8u * j;
      if (c < C) { atomicAddF32(u32(row) * C + c, acc[m * TNN + j] * s); }
    }
  }
}
`,

  mosa_out_backward: `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> o: array<f32>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read> indices: array<i32>;
@group(0) @binding(4) var<storage, read> wo: array<f32>;
@group(0) @binding(5) var<storage, read_write> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dscores: array<f32>;
struct Params { T: i32, C: i32, Hs: i32, K: i32 }
@group(0) @binding(7) var<uniform> p: Params;
var<workgroup> As: array<f32, BK * (BM + 1u)>;
var<workgroup> Bs: array<f32, BK * D>;
var<workgroup> rows: array<i32, BM>;
var<workgroup> red: array<f32, BM * 8u>;

@compute @workgroup_size(64)
fn mosa_out_backward(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let T = u32(p.T);
  let C = u32(p.C);
  let Hs = u32(p.Hs);
  let K = u32(p.K);
  let i0 = wg.x * BM;
  let h = wg.y;
  let b = wg.z;
  let bh = b * Hs + h;
  if (tid < BM) { rows[tid] = select(-1, i32(b * T + u32(indices[bh * K + i0 + tid])), i0 + tid < K); }
  var acc: array<f32, TM * TN>;
  for (var c0 = 0u; c0 < C; c0 += BK) {
    workgroupBarrier();
    for (var e = tid; e < BM * BK; e += 64u) {
      let kk = e % BK;
      let r = e / BK;
      let row = rows[r];
      var val = 0.0;
      if (row >= 0 && c0 + kk < C) { val = dy[u32(row) * C + c0 + kk]; }
      As[kk * (BM + 1u) + r] = val;
    }
    for (var e = tid; e < D * BK; e += 64u) {
      let n = e % D;
      let kk = e / D;
      var val = 0.0;
      if (c0 + kk < C) { val = wo[(c0 + kk) * Hs * D + h * D + n]; }
      Bs[kk * D + n] = val;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var m = 0u; m < TM; m++) {
        let a = As[kk * (BM + 1u) + ty + 8u * m];
        for (var j = 0u; j < TN; j++) {
          acc[m * TN + j] = fma(a, Bs[kk * D + tx + 8u * j], acc[m * TN + j]);
        }
      }
    }
  }
  for (var m = 0u; m < TM; m++) {
    let r = ty + 8u * m;
    let i = i0 + r;
    var part = 0.0;
    if (i < K) {
      let s = scores[bh * K + i];
      for (var j = 0u; j < TN; j++) {
        let at = (bh * K + i) * D + tx + 8u * j;
        part = fma(acc[m * TN + j], o[at], part);
        dout[at] = acc[m * TN + j] * s;
      }
    }
    red[r * 8u + tx] = part;
  }
  workgroupBarrier();
  if (tid < BM && i0 + tid < K) {
    var sum = 0.0;
    for (var j = 0u; j < 8u; j++) { sum += red[tid * 8u + j]; }
    dscores[bh * K + i0 + tid] = sum;
  }
}
`,

  mosa_attend_backward_kv: `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> attnOut: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
struct Params { K: i32, Hs: i32, scale: f32 }
@group(0) @binding(8) var<uniform> p: Params;
var<workgroup> Ks: array<f32, D * (BB + 1u)>;
var<workgroup> Vs: array<f32, D * (BB + 1u)>;
var<workgroup> Qs: array<f32, D * (BB + 1u)>;
var<workgroup> dOs: array<f32, D * (BB + 1u)>;
var<workgroup> Ps: array<f32, BB * (BB + 1u)>;
var<workgroup> dSs: array<f32, BB * (BB + 1u)>;
var<workgroup> lseS: array<f32, BB>;
var<workgroup> deltaS: array<f32, BB>;

@compute @workgroup_size(64)
fn mosa_attend_backward_kv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let K = u32(p.K);
  let Hs = u32(p.Hs);
  let k0 = wg.x * BB;
  let bh = wg.z * Hs + wg.y;
  let base = bh * K * D;
  for (var e = tid; e < BB * D; e += 64u) {
    let d = e % D;
    let r = e / D;
    var kv = 0.0;
    var vv = 0.0;
    if (k0 + r < K) {
      kv = k[base + (k0 + r) * D + d];
      vv = v[base + (k0 + r) * D + d];
    }
    Ks[d * (BB + 1u) + r] = kv;
    Vs[d * (BB + 1u) + r] = vv;
  }
  var dK: array<f32, TB * TN>;
  var dV: array<f32, TB * TN>;
  for (var q0 = k0; q0 < K; q0 += BB) {
    workgroupBarrier();
    for (var e = tid; e < BB * D; e += 64u) {
      let d = e % D;
      let r = e / D;
      var qv = 0.0;
      var gv = 0.0;
      if (q0 + r < K) {
        qv = q[base + (q0 + r) * D + d];
        gv = dout[base + (q0 + r) * D + d];
      }
      Qs[d * (BB + 1u) + r] = qv;
      dOs[d * (BB + 1u) + r] = gv;
    }
    if (tid < BB) {
      let qi = q0 + tid;
      var delta = 0.0;
      var l = 0.0;
      if (qi < K) {
        for (var d = 0u; d < D; d++) { delta = fma(dout[base + qi * D + d], attnOut[base + qi * D + d], delta); }
        l = lse[bh * K + qi];
      }
      deltaS[tid] = delta;
      lseS[tid] = l;
    }
    workgroupBarrier();
    var st: array<f32, TB * TB> = array<f32, TB * TB>(); // zeroed on every iteration (not hoisted)
    var dpt: array<f32, TB * TB> = array<f32, TB * TB>(); // zeroed on every iteration (not hoisted)
    for (var d = 0u; d < D; d++) {
      for (var a = 0u; a < TB; a++) {
        let kr = Ks[d * (BB + 1u) + ty + 8u * a];
        let vr = Vs[d * (BB + 1u) + ty + 8u * a];
        for (var c = 0u; c < TB; c++) {
          st[a * TB + c] = fma(kr, Qs[d * (BB + 1u) + tx + 8u * c], st[a * TB + c]);
          dpt[a * TB + c] = fma(vr, dOs[d * (BB + 1u) + tx + 8u * c], dpt[a * TB + c]);
        }
      }
    }
    for (var a = 0u; a < TB; a++) {
      for (var c = 0u; c < TB; c++) {
        let kj = k0 + ty + 8u * a;
        let qi = q0 + tx + 8u * c;
        let ok = kj <= qi && qi < K && kj < K;
        let pr = select(0.0, exp(st[a * TB + c] * p.scale - lseS[tx + 8u * c]), ok);
        Ps[(ty + 8u * a) * (BB + 1u) + tx + 8u * c] = pr;
        dSs[(ty + 8u * a) * (BB + 1u) + tx + 8u * c] = pr * (dpt[a * TB + c] - deltaS[tx + 8u * c]);
      }
    }
    workgroupBarrier();
    for (var i = 0u; i < BB; i++) {
      for (var a = 0u; a < TB; a++) {
        let pa = Ps[(ty + 8u * a) * (BB + 1u) + i];
        let da = dSs[(ty + 8u * a) * (BB + 1u) + i];
        for (var n = 0u; n < TN; n++) {
          dV[a * TN + n] = fma(pa, dOs[(tx + 8u * n) * (BB + 1u) + i], dV[a * TN + n]);
          dK[a * TN + n] = fma(da, Qs[(tx + 8u * n) * (BB + 1u) + i], dK[a * TN + n]);
        }
      }
    }
  }
  for (var a = 0u; a < TB; a++) {
    let kj = k0 + ty + 8u * a;
    if (kj >= K) { continue; }
    for (var n = 0u; n < TN; n++) {
      dk[base + kj * D + tx + 8u * n] = dK[a * TN + n] * p.scale;
      dv[base + kj * D + tx + 8u * n] = dV[a * TN + n];
    }
  }
}
`,

  mosa_attend_backward_q: `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> attnOut: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
struct Params { K: i32, Hs: i32, scale: f32 }
@group(0) @binding(7) var<uniform> p: Params;
var<workgroup> Qs: array<f32, D * (BB + 1u)>;
var<workgroup> dOs: array<f32, D * (BB + 1u)>;
var<workgroup> Ks: array<f32, D * (BB + 1u)>;
var<workgroup> Vs: array<f32, D * (BB + 1u)>;
var<workgroup> dSs: array<f32, BB * (BB + 1u)>;
var<workgroup> lseS: array<f32, BB>;
var<workgroup> deltaS: array<f32, BB>;

@compute @workgroup_size(64)
fn mosa_attend_backward_q(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let K = u32(p.K);
  let Hs = u32(p.Hs);
  let q0 = wg.x * BB;
  let bh = wg.z * Hs + wg.y;
  let base = bh * K * D;
  for (var e = tid; e < BB * D; e += 64u) {
    let d = e % D;
    let r = e / D;
    var qv = 0.0;
    var gv = 0.0;
    if (q0 + r < K) {
      qv = q[base + (q0 + r) * D + d];
      gv = dout[base + (q0 + r) * D + d];
    }
    Qs[d * (BB + 1u) + r] = qv;
    dOs[d * (BB + 1u) + r] = gv;
  }
  if (tid < BB) {
    let qi = q0 + tid;
    var delta = 0.0;
    var l = 0.0;
    if (qi < K) {
      for (var d = 0u; d < D; d++) { delta = fma(dout[base + qi * D + d], attnOut[base + qi * D + d], delta); }
      l = lse[bh * K + qi];
    }
    deltaS[tid] = delta;
    lseS[tid] = l;
  }
  var dQ: array<f32, TB * TN>;
  let last = min(K, q0 + BB) - 1u;
  for (var k0 = 0u; k0 <= last; k0 += BB) {
    workgroupBarrier();
    for (var e = tid; e < BB * D; e += 64u) {
      let d = e % D;
      let r = e / D;
      var kv = 0.0;
      var vv = 0.0;
      if (k0 + r < K) {
        kv = k[base + (k0 + r) * D + d];
        vv = v[base + (k0 + r) * D + d];
      }
      Ks[d * (BB + 1u) + r] = kv;
      Vs[d * (BB + 1u) + r] = vv;
    }
    workgroupBarrier();
    var s: array<f32, TB * TB> = array<f32, TB * TB>(); // zeroed on every iteration (not hoisted)
    var dp: array<f32, TB * TB> = array<f32, TB * TB>(); // zeroed on every iteration (not hoisted)
    for (var d = 0u; d < D; d++) {
      for (var a = 0u; a < TB; a++) {
        let qr = Qs[d * (BB + 1u) + ty + 8u * a];
        let gr = dOs[d * (BB + 1u) + ty + 8u * a];
        for (var c = 0u; c < TB; c++) {
          s[a * TB + c] = fma(qr, Ks[d * (BB + 1u) + tx + 8u * c], s[a * TB + c]);
          dp[a * TB + c] = fma(gr, Vs[d * (BB + 1u) + tx + 8u * c], dp[a * TB + c]);
        }
      }
    }
    for (var a = 0u; a < TB; a++) {
      for (var c = 0u; c < TB; c++) {
        let qi = q0 + ty + 8u * a;
        let kj = k0 + tx + 8u * c;
        let ok = kj <= qi && qi < K && kj < K;
        let pr = select(0.0, exp(s[a * TB + c] * p.scale - lseS[ty + 8u * a]), ok);
        dSs[(ty + 8u * a) * (BB + 1u) + tx + 8u * c] = pr * (dp[a * TB + c] - deltaS[ty + 8u * a]);
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < BB; j++) {
      for (var a = 0u; a < TB; a++) {
        let da = dSs[(ty + 8u * a) * (BB + 1u) + j];
        for (var n = 0u; n < TN; n++) {
          dQ[a * TN + n] = fma(da, Ks[(tx + 8u * n) * (BB + 1u) + j], dQ[a * TN + n]);
        }
      }
    }
  }
  for (var a = 0u; a < TB; a++) {
    let qi = q0 + ty + 8u * a;
    if (qi >= K) { continue; }
    for (var n = 0u; n < TN; n++) { dq[base + qi * D + tx + 8u * n] = dQ[a * TN + n] * p.scale; }
  }
}
`,

  mosa_project_backward_input: `
@group(0) @binding(0) var<storage, read> gq: array<f32>;
@group(0) @binding(1) var<storage, read> gk: array<f32>;
@group(0) @binding(2) var<storage, read> gv: array<f32>;
@group(0) @binding(3) var<storage, read> indices: array<i32>;
@group(0) @binding(4) var<storage, read> wq: array<f32>;
@group(0) @binding(5) var<storage, read> wk: array<f32>;
@group(0) @binding(6) var<storage, read> wv: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<atomic<u32>>;
struct Params { T: i32, C: i32, Hs: i32, K: i32 }
@group(0) @binding(8) var<uniform> p: Params;
var<workgroup> As: array<f32, BK * (BM + 1u)>;
var<workgroup> Bs: array<f32, BK * BN>;
var<workgroup> rows: array<i32, BM>;
${atomicAddF32('dx')}
fn loadG(which: u32, i: u32) -> f32 {
  if (which == 0u) { return gq[i]; }
  if (which == 1u) { return gk[i]; }
  return gv[i];
}
fn loadW(which: u32, i: u32) -> f32 {
  if (which == 0u) { return wq[i]; }
  if (which == 1u) { return wk[i]; }
  return wv[i];
}

@compute @workgroup_size(64)
fn mosa_project_backward_input(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let T = u32(p.T);
  let C = u32(p.C);
  let Hs = u32(p.Hs);
  let K = u32(p.K);
  let i0 = wg.x * BM;
  let c0 = wg.y * BN;
  let bh = wg.z;
  let b = bh / Hs;
  let h = bh % Hs;
  if (tid < BM) { rows[tid] = select(-1, i32(b * T + u32(indices[bh * K + i0 + tid])), i0 + tid < K); }
  var acc: array<f32, TM * TNN>;
  for (var e0 = 0u; e0 < 3u * D; e0 += BK) {
    let which = e0 / D;
    let f0 = e0 % D;
    workgroupBarrier();
    for (var e = tid; e < BM * BK; e += 64u) {
      let kk = e % BK;
      let r = e / BK;
      var val = 0.0;
      if (i0 + r < K) { val = loadG(which, (bh * K + i0 + r) * D + f0 + kk); }
      As[kk * (BM + 1u) + r] = val;
    }
    for (var e = tid; e < BN * BK; e += 64u) {
      let n = e % BN;
      let kk = e / BN;
      var val = 0.0;
      if (c0 + n < C) { val = loadW(which, (h * D + f0 + kk) * C + c0 + n); }
      Bs[kk * BN + n] = val;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var m = 0u; m < TM; m++) {
        let a = As[kk * (BM + 1u) + ty + 8u * m];
        for (var j = 0u; j < TNN; j++) {
          acc[m * TNN + j] = fma(a, Bs[kk * BN + tx + 8u * j], acc[m * TNN + j]);
        }
      }
    }
  }
  for (var m = 0u; m < TM; m++) {
    let row = rows[ty + 8u * m];
    if (row < 0) { continue; }
    for (var j = 0u; j < TNN; j++) {
      let c = c0 + tx + 8u * j;
      if (c < C) { atomicAddF32(u32(row) * C + c, acc[m * TNN + j]); }
    }
  }
}
`,

  mosa_weight_grad_qkv: weightGrad('qkv'),
  mosa_weight_grad_out: weightGrad('out'),
}

/** out[p, q] = sum over the B*K selected rows r of A[r, p] (* score) * table[row r, q]. */
function weightGrad(kind: 'qkv' | 'out'): string {
  const qkv = kind === 'qkv'
  const bindings = qkv
    ? `@group(0) @binding(0) var<storage, read> gq: array<f32>;
@group(0) @binding(1) var<storage, read> gk: array<f32>;
@group(0) @binding(2) var<storage, read> gv: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read> indices: array<i32>;
@group(0) @binding(5) var<storage, read_write> dwq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dwk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dwv: array<f32>;
struct Params { T: i32, C: i32, Hs: i32, K: i32, B: i32 }
@group(0) @binding(8) var<uniform> p: Params;
fn loadA(which: u32, i: u32) -> f32 {
  if (which == 0u) { return gq[i]; }
  if (which == 1u) { return gk[i]; }
  return gv[i];
}
fn store(which: u32, i: u32, value: f32) {
  if (which == 0u) { dwq[i] = value; } else if (which == 1u) { dwk[i] = value; } else { dwv[i] = value; }
}`
    : `@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> indices: array<i32>;
@group(0) @binding(4) var<storage, read_write> dwo: array<f32>;
struct Params { T: i32, C: i32, Hs: i32, K: i32, B: i32 }
@group(0) @binding(5) var<uniform> p: Params;`
  return `
${bindings}
var<workgroup> As: array<f32, BK * BW>;
var<workgroup> Gs: array<f32, BK * BW>;
var<workgroup> rowOff: array<i32, BK>;
var<workgroup> aOff: array<u32, BK>;
var<workgroup> rowScale: array<f32, BK>;

@compute @workgroup_size(64)
fn mosa_weight_grad_${kind}(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = tid % 8u;
  let ty = tid / 8u;
  let T = u32(p.T);
  let Q = u32(p.C);
  let Hs = u32(p.Hs);
  let K = u32(p.K);
  let R = u32(p.B) * K;
  ${qkv ? 'let which = wg.z % 3u;\n  let h = wg.z / 3u;' : 'let h = wg.z;'}
  let p0 = wg.y * BW;
  let q0 = wg.x * BW;
  var acc: array<f32, TW * TW>;
  for (var r0 = 0u; r0 < R; r0 += BK) {
    workgroupBarrier();
    if (tid < BK) {
      let r = r0 + tid;
      if (r < R) {
        let b = r / K;
        let i = r % K;
        let bh = b * Hs + h;
        rowOff[tid] = i32(b * T + u32(indices[bh * K + i]));
        aOff[tid] = bh * K + i;
        rowScale[tid] = ${qkv ? '1.0' : 'scores[bh * K + i]'};
      } else {
        rowOff[tid] = -1;
        aOff[tid] = 0u;
        rowScale[tid] = 0.0;
      }
    }
    workgroupBarrier();
    for (var e = tid; e < BK * BW; e += 64u) {
      let c = e % BW;
      let kk = e / BW;
      let ok = rowOff[kk] >= 0;
      var av = 0.0;
      var gv2 = 0.0;
      if (ok && p0 + c < D) { av = ${qkv ? 'loadA(which, aOff[kk] * D + p0 + c)' : 'o[aOff[kk] * D + p0 + c]'} * rowScale[kk]; }
      if (ok && q0 + c < Q) { gv2 = table[u32(rowOff[kk]) * Q + q0 + c]; }
      As[kk * BW + c] = av;
      Gs[kk * BW + c] = gv2;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var m = 0u; m < TW; m++) {
        let a = As[kk * BW + ty + 8u * m];
        for (var j = 0u; j < TW; j++) {
          acc[m * TW + j] = fma(a, Gs[kk * BW + tx + 8u * j], acc[m * TW + j]);
        }
      }
    }
  }
  for (var m = 0u; m < TW; m++) {
    let pp = p0 + ty + 8u * m;
    if (pp >= D) { continue; }
    for (var j = 0u; j < TW; j++) {
      let qq = q0 + tx + 8u * j;
      if (qq >= Q) { continue; }
      ${qkv ? 'store(which, (h * D + pp) * Q + qq, acc[m * TW + j]);' : 'dwo[qq * Hs * D + h * D + pp] = acc[m * TW + j];'}
    }
  }
}
`
}
