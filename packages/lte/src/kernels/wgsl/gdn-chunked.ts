/**
 * WGSL port of kernels/cuda/gdn-chunked.ts: the same kernels, loops and buffers, one module per
 * entry point. Workgroups of 256 invocations; C <= 64; up to 20 KiB of workgroup storage (above
 * WebGPU's 16 KiB default: the attnkit WebGPU backend requests the adapter's maximum).
 */
import type { GdnDims, GdnKernelName } from '../cuda/gdn-chunked.js'
import { type WgslKernel, wgslModule } from './module.js'

const chunkHead = `
  let c = wg.x;
  let bh = wg.y;
  let Nc = nwg.x;
  let T = params.T;
  let t0 = c * C;
  let n = min(C, T - t0);
  let go = bh * T + t0;`

const loadGam = `
  for (var t = tid; t < C; t += NT) { gs[t] = select(0.0, gam[go + t], t < n); }
  workgroupBarrier();`

const KERNELS: Record<GdnKernelName, WgslKernel> = {
  gdn_prep: {
    inputs: ['k', 'v', 'g', 'beta'],
    outputs: ['gam', 'Tm', 'U', 'Wk'],
    scalars: [['T', 'u32']],
    decls: `var<workgroup> M: array<f32, C * C>;
var<workgroup> rowL: array<f32, C>;
var<workgroup> gs: array<f32, C>;
var<workgroup> bs: array<f32, C>;`,
    body: `${chunkHead}
  if (tid == 0u) {
    var acc = 0.0;
    for (var t = 0u; t < C; t++) {
      if (t < n) { acc += g[go + t]; }
      gs[t] = acc;
    }
  }
  for (var t = tid; t < C; t += NT) { bs[t] = select(0.0, beta[go + t], t < n); }
  workgroupBarrier();
  for (var t = tid; t < n; t += NT) { gam[go + t] = gs[t]; }
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var val = 0.0;
    if (s < t && t < n) {
      var d = 0.0;
      for (var i = 0u; i < DK; i++) { d += k[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      val = bs[t] * exp(gs[t] - gs[s]) * d;
    }
    M[idx] = val;
  }
  workgroupBarrier();
  for (var t = 0u; t < n; t++) {
    for (var r = tid; r < C; r += NT) { rowL[r] = select(0.0, M[t * C + r], r < t); }
    workgroupBarrier();
    for (var s = tid; s < C; s += NT) {
      if (s < t) {
        var x = 0.0;
        for (var r = s; r < t; r++) { x -= rowL[r] * M[r * C + s]; }
        M[t * C + s] = x;
      } else if (s == t) {
        M[t * C + s] = 1.0;
      }
    }
    workgroupBarrier();
  }
  let mo = (bh * Nc + c) * C * C;
  for (var idx = tid; idx < C * C; idx += NT) { Tm[mo + idx] = select(0.0, M[idx], idx / C < n); }
  for (var idx = tid; idx < n * DV; idx += NT) {
    let t = idx / DV;
    let j = idx % DV;
    var x = 0.0;
    for (var s = 0u; s <= t; s++) { x += M[t * C + s] * bs[s] * v[(go + s) * DV + j]; }
    U[(go + t) * DV + j] = x;
  }
  for (var idx = tid; idx < n * DK; idx += NT) {
    let t = idx / DK;
    let i = idx % DK;
    var x = 0.0;
    for (var s = 0u; s <= t; s++) { x += M[t * C + s] * bs[s] * exp(gs[s]) * k[(go + s) * DK + i]; }
    Wk[(go + t) * DK + i] = x;
  }`,
  },

  gdn_scan: {
    inputs: ['k', 'gam', 'U', 'Wk', 'S0'],
    outputs: ['H', 'W', 'Sout'],
    scalars: [
      ['T', 'u32'],
      ['Nc', 'u32'],
      ['hasState', 'u32'],
    ],
    decls: `var<workgroup> Ss: array<f32, DK * BV>;
var<workgroup> Ws: array<f32, C * BV>;
var<workgroup> gs: array<f32, C>;`,
    body: `
  let j0 = wg.x * BV;
  let bh = wg.y;
  let T = params.T;
  let Nc = params.Nc;
  for (var idx = tid; idx < DK * BV; idx += NT) {
    let i = idx / BV;
    let j = j0 + idx % BV;
    var s = 0.0;
    if (params.hasState != 0u && j < DV) { s = S0[(bh * DK + i) * DV + j]; }
    Ss[idx] = s;
  }
  workgroupBarrier();
  for (var c = 0u; c < Nc; c++) {
    let t0 = c * C;
    let n = min(C, T - t0);
    let go = bh * T + t0;
    for (var t = tid; t < C; t += NT) { gs[t] = select(0.0, gam[go + t], t < n); }
    let ho = (bh * Nc + c) * DK * DV;
    for (var idx = tid; idx < DK * BV; idx += NT) {
      let i = idx / BV;
      let j = j0 + idx % BV;
      if (j < DV) { H[ho + i * DV + j] = Ss[idx]; }
    }
    workgroupBarrier();
    for (var idx = tid; idx < C * BV; idx += NT) {
      let t = idx / BV;
      let jj = idx % BV;
      let j = j0 + jj;
      var w = 0.0;
      if (t < n && j < DV) {
        w = U[(go + t) * DV + j];
        for (var i = 0u; i < DK; i++) { w -= Wk[(go + t) * DK + i] * Ss[i * BV + jj]; }
        W[(go + t) * DV + j] = w;
      }
      Ws[idx] = w;
    }
    workgroupBarrier();
    let gl = gs[n - 1u];
    for (var idx = tid; idx < DK * BV; idx += NT) {
      let i = idx / BV;
      let jj = idx % BV;
      var s = exp(gl) * Ss[idx];
      for (var t = 0u; t < n; t++) { s += exp(gl - gs[t]) * k[(go + t) * DK + i] * Ws[t * BV + jj]; }
      Ss[idx] = s;
    }
    workgroupBarrier();
  }
  for (var idx = tid; idx < DK * BV; idx += NT) {
    let i = idx / BV;
    let j = j0 + idx % BV;
    if (j < DV) { Sout[(bh * DK + i) * DV + j] = Ss[idx]; }
  }`,
  },

  gdn_output: {
    inputs: ['q', 'k', 'gam', 'H', 'W'],
    outputs: ['O'],
    scalars: [
      ['T', 'u32'],
      ['scale', 'f32'],
    ],
    decls: `var<workgroup> P: array<f32, C * C>;
var<workgroup> gs: array<f32, C>;`,
    body: `${chunkHead}
  let ho = (bh * Nc + c) * DK * DV;
  ${loadGam}
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var p = 0.0;
    if (s <= t && t < n) {
      var d = 0.0;
      for (var i = 0u; i < DK; i++) { d += q[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      p = exp(gs[t] - gs[s]) * d;
    }
    P[idx] = p;
  }
  workgroupBarrier();
  for (var idx = tid; idx < n * DV; idx += NT) {
    let t = idx / DV;
    let j = idx % DV;
    var x = 0.0;
    for (var i = 0u; i < DK; i++) { x += q[(go + t) * DK + i] * H[ho + i * DV + j]; }
    var o = exp(gs[t]) * x;
    for (var s = 0u; s <= t; s++) { o += P[t * C + s] * W[(go + s) * DV + j]; }
    O[(go + t) * DV + j] = params.scale * o;
  }`,
  },

  gdn_bwd_dwl: {
    inputs: ['q', 'k', 'gam', 'dO'],
    outputs: ['dWl'],
    scalars: [
      ['T', 'u32'],
      ['scale', 'f32'],
    ],
    decls: `var<workgroup> P: array<f32, C * C>;
var<workgroup> gs: array<f32, C>;`,
    body: `${chunkHead}
  ${loadGam}
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var p = 0.0;
    if (s <= t && t < n) {
      var d = 0.0;
      for (var i = 0u; i < DK; i++) { d += q[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      p = exp(gs[t] - gs[s]) * d;
    }
    P[idx] = p;
  }
  workgroupBarrier();
  for (var idx = tid; idx < n * DV; idx += NT) {
    let s = idx / DV;
    let j = idx % DV;
    var x = 0.0;
    for (var t = s; t < n; t++) { x += P[t * C + s] * dO[(go + t) * DV + j]; }
    dWl[(go + s) * DV + j] = params.scale * x;
  }`,
  },

  gdn_bwd_scan: {
    inputs: ['q', 'k', 'gam', 'Wk', 'dO', 'dWl', 'dSf'],
    outputs: ['DH', 'dW', 'dS0'],
    scalars: [
      ['T', 'u32'],
      ['Nc', 'u32'],
      ['hasDFinal', 'u32'],
      ['scale', 'f32'],
    ],
    decls: `var<workgroup> dS: array<f32, DK * BV>;
var<workgroup> dWs: array<f32, C * BV>;
var<workgroup> gs: array<f32, C>;`,
    body: `
  let j0 = wg.x * BV;
  let bh = wg.y;
  let T = params.T;
  let Nc = params.Nc;
  for (var idx = tid; idx < DK * BV; idx += NT) {
    let i = idx / BV;
    let j = j0 + idx % BV;
    var s = 0.0;
    if (params.hasDFinal != 0u && j < DV) { s = dSf[(bh * DK + i) * DV + j]; }
    dS[idx] = s;
  }
  workgroupBarrier();
  for (var cc = 0u; cc < Nc; cc++) {
    let c = Nc - 1u - cc;
    let t0 = c * C;
    let n = min(C, T - t0);
    let go = bh * T + t0;
    for (var t = tid; t < C; t += NT) { gs[t] = select(0.0, gam[go + t], t < n); }
    let ho = (bh * Nc + c) * DK * DV;
    for (var idx = tid; idx < DK * BV; idx += NT) {
      let i = idx / BV;
      let j = j0 + idx % BV;
      if (j < DV) { DH[ho + i * DV + j] = dS[idx]; }
    }
    workgroupBarrier();
    let gl = gs[n - 1u];
    for (var idx = tid; idx < C * BV; idx += NT) {
      let t = idx / BV;
      let jj = idx % BV;
      let j = j0 + jj;
      var x = 0.0;
      if (t < n && j < DV) {
        var y = 0.0;
        for (var i = 0u; i < DK; i++) { y += k[(go + t) * DK + i] * dS[i * BV + jj]; }
        x = dWl[(go + t) * DV + j] + exp(gl - gs[t]) * y;
        dW[(go + t) * DV + j] = x;
      }
      dWs[idx] = x;
    }
    workgroupBarrier();
    for (var idx = tid; idx < DK * BV; idx += NT) {
      let i = idx / BV;
      let jj = idx % BV;
      let j = j0 + jj;
      var x = exp(gl) * dS[idx];
      if (j < DV) {
        for (var t = 0u; t < n; t++) {
          x += params.scale * exp(gs[t]) * q[(go + t) * DK + i] * dO[(go + t) * DV + j] - Wk[(go + t) * DK + i] * dWs[t * BV + jj];
        }
      }
      dS[idx] = x;
    }
    workgroupBarrier();
  }
  for (var idx = tid; idx < DK * BV; idx += NT) {
    let i = idx / BV;
    let j = j0 + idx % BV;
    if (j < DV) { dS0[(bh * DK + i) * DV + j] = dS[idx]; }
  }`,
  },

  gdn_bwd_qk: {
    inputs: ['q', 'k', 'gam', 'H', 'DH', 'W', 'dO'],
    outputs: ['dQ', 'dK1', 'dgam1'],
    scalars: [
      ['T', 'u32'],
      ['scale', 'f32'],
    ],
    decls: `var<workgroup> M: array<f32, C * C>;
var<workgroup> gs: array<f32, C>;
var<workgroup> rowD: array<f32, C>;
var<workgroup> colD: array<f32, C>;
var<workgroup> red1: array<f32, NT>;
var<workgroup> red2: array<f32, NT>;
var<workgroup> red3: array<f32, NT>;
var<workgroup> lastExtra: f32;`,
    body: `${chunkHead}
  let ho = (bh * Nc + c) * DK * DV;
  let scale = params.scale;
  ${loadGam}
  let gl = gs[n - 1u];
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var d = 0.0;
    if (s <= t && t < n) {
      var a = 0.0;
      var b = 0.0;
      for (var j = 0u; j < DV; j++) { a += dO[(go + t) * DV + j] * W[(go + s) * DV + j]; }
      for (var i = 0u; i < DK; i++) { b += q[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      d = scale * a * exp(gs[t] - gs[s]) * b;
    }
    M[idx] = d;
  }
  workgroupBarrier();
  for (var t = tid; t < C; t += NT) {
    var r = 0.0;
    var cl = 0.0;
    for (var s = 0u; s < C; s++) {
      r += M[t * C + s];
      cl += M[s * C + t];
    }
    rowD[t] = r;
    colD[t] = cl;
  }
  workgroupBarrier();
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var e = 0.0;
    if (s <= t && t < n) {
      var a = 0.0;
      for (var j = 0u; j < DV; j++) { a += dO[(go + t) * DV + j] * W[(go + s) * DV + j]; }
      e = exp(gs[t] - gs[s]) * a;
    }
    M[idx] = e;
  }
  workgroupBarrier();
  let r = tid / 4u;
  let lane = tid % 4u;
  var qx = 0.0;
  var cs = 0.0;
  if (r < n) {
    for (var i = lane; i < DK; i += 4u) {
      var x = 0.0;
      var y = 0.0;
      var e1 = 0.0;
      var e2 = 0.0;
      for (var j = 0u; j < DV; j++) {
        x += dO[(go + r) * DV + j] * H[ho + i * DV + j];
        y += W[(go + r) * DV + j] * DH[ho + i * DV + j];
      }
      for (var s = 0u; s <= r; s++) { e1 += M[r * C + s] * k[(go + s) * DK + i]; }
      for (var t = r; t < n; t++) { e2 += M[t * C + r] * q[(go + t) * DK + i]; }
      dQ[(go + r) * DK + i] = scale * (exp(gs[r]) * x + e1);
      dK1[(go + r) * DK + i] = scale * e2 + exp(gl - gs[r]) * y;
      qx += q[(go + r) * DK + i] * x;
      cs += k[(go + r) * DK + i] * y;
    }
  }
  red1[tid] = qx;
  red2[tid] = cs;
  var hd = 0.0;
  for (var idx = tid; idx < DK * DV; idx += NT) { hd += H[ho + idx] * DH[ho + idx]; }
  red3[tid] = hd;
  workgroupBarrier();
  for (var stride = NT / 2u; stride > 0u; stride = stride >> 1u) {
    if (tid < stride) { red3[tid] += red3[tid + stride]; }
    workgroupBarrier();
  }
  if (tid == 0u) {
    var extra = exp(gl) * red3[0];
    for (var s = 0u; s < n; s++) {
      let css = red2[4u * s] + red2[4u * s + 1u] + red2[4u * s + 2u] + red2[4u * s + 3u];
      extra += exp(gl - gs[s]) * css;
    }
    lastExtra = extra;
  }
  workgroupBarrier();
  for (var t = tid; t < n; t += NT) {
    let qxt = red1[4u * t] + red1[4u * t + 1u] + red1[4u * t + 2u] + red1[4u * t + 3u];
    let cst = red2[4u * t] + red2[4u * t + 1u] + red2[4u * t + 2u] + red2[4u * t + 3u];
    var d = rowD[t] - colD[t] + scale * exp(gs[t]) * qxt - exp(gl - gs[t]) * cst;
    if (t == n - 1u) { d += lastExtra; }
    dgam1[go + t] = d;
  }`,
  },

  gdn_bwd_dwk: {
    inputs: ['H', 'dW'],
    outputs: ['dWk'],
    scalars: [['T', 'u32']],
    body: `${chunkHead}
  let ho = (bh * Nc + c) * DK * DV;
  for (var idx = tid; idx < n * DK; idx += NT) {
    let t = idx / DK;
    let i = idx % DK;
    var x = 0.0;
    for (var j = 0u; j < DV; j++) { x += dW[(go + t) * DV + j] * H[ho + i * DV + j]; }
    dWk[(go + t) * DK + i] = -x;
  }`,
  },

  gdn_bwd_tm: {
    inputs: ['k', 'v', 'beta', 'gam', 'Tm', 'dW', 'dWk'],
    outputs: ['dV', 'dKy', 'dTm', 'dbeta1', 'dgam2'],
    scalars: [['T', 'u32']],
    decls: `var<workgroup> Ts: array<f32, C * C>;
var<workgroup> gs: array<f32, C>;
var<workgroup> bs: array<f32, C>;
var<workgroup> red1: array<f32, NT>;
var<workgroup> red2: array<f32, NT>;`,
    body: `${chunkHead}
  let mo = (bh * Nc + c) * C * C;
  for (var idx = tid; idx < C * C; idx += NT) { Ts[idx] = Tm[mo + idx]; }
  for (var t = tid; t < C; t += NT) {
    gs[t] = select(0.0, gam[go + t], t < n);
    bs[t] = select(0.0, beta[go + t], t < n);
  }
  workgroupBarrier();
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var val = 0.0;
    if (s <= t && t < n) {
      var a = 0.0;
      var b = 0.0;
      for (var j = 0u; j < DV; j++) { a += dW[(go + t) * DV + j] * v[(go + s) * DV + j]; }
      for (var i = 0u; i < DK; i++) { b += dWk[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      val = bs[s] * (a + exp(gs[s]) * b);
    }
    dTm[mo + idx] = val;
  }
  let s = tid / 4u;
  let lane = tid % 4u;
  var vx = 0.0;
  var ky = 0.0;
  if (s < n) {
    for (var j = lane; j < DV; j += 4u) {
      var x = 0.0;
      for (var t = s; t < n; t++) { x += Ts[t * C + s] * dW[(go + t) * DV + j]; }
      dV[(go + s) * DV + j] = bs[s] * x;
      vx += v[(go + s) * DV + j] * x;
    }
    for (var i = lane; i < DK; i += 4u) {
      var y = 0.0;
      for (var t = s; t < n; t++) { y += Ts[t * C + s] * dWk[(go + t) * DK + i]; }
      dKy[(go + s) * DK + i] = bs[s] * exp(gs[s]) * y;
      ky += k[(go + s) * DK + i] * y;
    }
  }
  red1[tid] = vx;
  red2[tid] = ky;
  workgroupBarrier();
  for (var t = tid; t < n; t += NT) {
    let VX = red1[4u * t] + red1[4u * t + 1u] + red1[4u * t + 2u] + red1[4u * t + 3u];
    let KY = red2[4u * t] + red2[4u * t + 1u] + red2[4u * t + 2u] + red2[4u * t + 3u];
    dbeta1[go + t] = VX + exp(gs[t]) * KY;
    dgam2[go + t] = bs[t] * exp(gs[t]) * KY;
  }`,
  },

  gdn_bwd_a: {
    inputs: ['Tm', 'dTm'],
    outputs: ['A'],
    scalars: [['T', 'u32']],
    body: `${chunkHead}
  let mo = (bh * Nc + c) * C * C;
  for (var idx = tid; idx < C * C; idx += NT) {
    let r = idx / C;
    let s = idx % C;
    var x = 0.0;
    if (s <= r && r < n) {
      for (var t = r; t < n; t++) { x += Tm[mo + t * C + r] * dTm[mo + t * C + s]; }
    }
    A[mo + idx] = x;
  }`,
  },

  gdn_bwd_dl: {
    inputs: ['k', 'beta', 'gam', 'Tm', 'A'],
    outputs: ['dKL', 'dbetaL', 'dgamL'],
    scalars: [['T', 'u32']],
    decls: `var<workgroup> M: array<f32, C * C>;
var<workgroup> gs: array<f32, C>;
var<workgroup> bs: array<f32, C>;
var<workgroup> rowZ: array<f32, C>;
var<workgroup> colBZ: array<f32, C>;`,
    body: `${chunkHead}
  let mo = (bh * Nc + c) * C * C;
  for (var t = tid; t < C; t += NT) {
    gs[t] = select(0.0, gam[go + t], t < n);
    bs[t] = select(0.0, beta[go + t], t < n);
  }
  workgroupBarrier();
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var z = 0.0;
    if (s < t && t < n) {
      var dl = 0.0;
      var kk = 0.0;
      for (var r = 0u; r <= s; r++) { dl -= A[mo + t * C + r] * Tm[mo + s * C + r]; }
      for (var i = 0u; i < DK; i++) { kk += k[(go + t) * DK + i] * k[(go + s) * DK + i]; }
      z = dl * exp(gs[t] - gs[s]) * kk;
    }
    M[idx] = z;
  }
  workgroupBarrier();
  for (var t = tid; t < C; t += NT) {
    var rz = 0.0;
    var cz = 0.0;
    for (var u = 0u; u < C; u++) {
      rz += M[t * C + u];
      cz += bs[u] * M[u * C + t];
    }
    rowZ[t] = rz;
    colBZ[t] = cz;
  }
  workgroupBarrier();
  for (var t = tid; t < n; t += NT) {
    dbetaL[go + t] = rowZ[t];
    dgamL[go + t] = bs[t] * rowZ[t] - colBZ[t];
  }
  for (var idx = tid; idx < C * C; idx += NT) {
    let t = idx / C;
    let s = idx % C;
    var d = 0.0;
    if (s < t && t < n) {
      var dl = 0.0;
      for (var r = 0u; r <= s; r++) { dl -= A[mo + t * C + r] * Tm[mo + s * C + r]; }
      d = dl * bs[t] * exp(gs[t] - gs[s]);
    }
    M[idx] = d;
  }
  workgroupBarrier();
  for (var idx = tid; idx < n * DK; idx += NT) {
    let r = idx / DK;
    let i = idx % DK;
    var x = 0.0;
    for (var s = 0u; s < r; s++) { x += M[r * C + s] * k[(go + s) * DK + i]; }
    for (var t = r + 1u; t < n; t++) { x += M[t * C + r] * k[(go + t) * DK + i]; }
    dKL[(go + r) * DK + i] = x;
  }`,
  },

  gdn_bwd_final: {
    inputs: ['dK1', 'dKy', 'dKL', 'dbeta1', 'dbetaL', 'dgam1', 'dgam2', 'dgamL'],
    outputs: ['dK', 'dbeta', 'dg'],
    scalars: [['T', 'u32']],
    decls: 'var<workgroup> acc: array<f32, C>;',
    body: `${chunkHead}
  for (var idx = tid; idx < n * DK; idx += NT) {
    let o = go * DK + idx;
    dK[o] = dK1[o] + dKy[o] + dKL[o];
  }
  for (var t = tid; t < C; t += NT) {
    if (t < n) { dbeta[go + t] = dbeta1[go + t] + dbetaL[go + t]; }
    acc[t] = select(0.0, dgam1[go + t] + dgam2[go + t] + dgamL[go + t], t < n);
  }
  workgroupBarrier();
  if (tid == 0u) {
    var run = 0.0;
    for (var u = 0u; u < C; u++) {
      let t = C - 1u - u;
      run += acc[t];
      acc[t] = run;
    }
  }
  workgroupBarrier();
  for (var t = tid; t < n; t += NT) { dg[go + t] = acc[t]; }`,
  },
}

export function gdnWgslSource(d: GdnDims, kernel: GdnKernelName): string {
  return wgslModule(kernel, KERNELS[kernel], { C: d.C, DK: d.DK, DV: d.DV, BV: d.BV, NT: 256 })
}
