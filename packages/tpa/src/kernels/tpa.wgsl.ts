/**
 * The package's WGSL kernels (float32). Shapes are baked into the source as constants, so each
 * layer shape compiles once (the backend caches programs by name and source hash). Binding
 * convention (core's ProgramSpec): inputs, then outputs, then one uniform struct of scalars.
 */
import type { DecodeShape, WgslDecodeLayout } from './plan.js'

const NEG = '-1.0e30'

function bindings(inputs: string[], outputs: string[], params: string): string {
  const lines = inputs.map((n, i) => `@group(0) @binding(${i}) var<storage, read> ${n}: array<f32>;`)
  for (const [i, n] of outputs.entries())
    lines.push(`@group(0) @binding(${inputs.length + i}) var<storage, read_write> ${n}: array<f32>;`)
  lines.push(`@group(0) @binding(${inputs.length + outputs.length}) var<uniform> p: ${params};`)
  return lines.join('\n')
}

/** Inputs: q [B,H,D], store [B,cap,REC], tail [B,tcap,REC], (aKc [H,RK]), (aVc [H,RV]). */
export function wgslDecodePartial(s: DecodeShape, l: WgslDecodeLayout): string {
  const { heads: H, headDim: D, kRank: RK, vRank: RV, layout } = s
  const inputs = ['q', 'store', 'tail']
  if (!layout.aK) inputs.push('aKc')
  if (!layout.aV) inputs.push('aVc')
  const aK = layout.aK ? `tile[j * REC + ${layout.aK.offset}u + i * RK + r]` : 'aKc[i * RK + r]'
  const aV = layout.aV ? `tile[j * REC + ${layout.aV.offset}u + i * RV + r]` : 'aVc[i * RV + r]'
  return /* wgsl */ `
const H: u32 = ${H}u;
const D: u32 = ${D}u;
const RK: u32 = ${RK}u;
const RV: u32 = ${RV}u;
const REC: u32 = ${layout.size}u;
const OFF_BK: u32 = ${layout.bK.offset}u;
const OFF_BV: u32 = ${layout.bV.offset}u;
const TILE: u32 = ${l.tile}u;
const WG: u32 = ${l.workgroupSize}u;
const ACC_N: u32 = ${Math.ceil((H * D) / l.workgroupSize)}u;
const NEG: f32 = ${NEG};

struct Params {
  storeLen: u32,
  tailLen: u32,
  tokensPerSplit: u32,
  storeCap: u32,
  tailCap: u32,
  splits: u32,
  scoreScale: f32,
}
${bindings(inputs, ['partO', 'partML'], 'Params')}

var<workgroup> tile: array<f32, ${l.tile * layout.size}>;
var<workgroup> sc: array<f32, ${H * l.tile}>;
var<workgroup> mRun: array<f32, H>;
var<workgroup> lRun: array<f32, H>;
var<workgroup> alpha: array<f32, H>;

fn recordAt(b: u32, g: u32, col: u32) -> f32 {
  if (g < p.storeLen) {
    return store[(b * p.storeCap + g) * REC + col];
  }
  return tail[(b * p.tailCap + (g - p.storeLen)) * REC + col];
}

fn aK(j: u32, i: u32, r: u32) -> f32 { return ${aK}; }
fn aV(j: u32, i: u32, r: u32) -> f32 { return ${aV}; }

// Scores are kept in the log2 domain (scoreScale carries log2(e)), as the combine kernel expects.
@compute @workgroup_size(${l.workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let s = wid.x;
  let b = wid.y;
  let total = p.storeLen + p.tailLen;
  let start = min(s * p.tokensPerSplit, total);
  let end = min(start + p.tokensPerSplit, total);
  var acc: array<f32, ACC_N>;
  for (var k = 0u; k < ACC_N; k++) { acc[k] = 0.0; }
  for (var i = tid; i < H; i += WG) { mRun[i] = NEG; lRun[i] = 0.0; }
  workgroupBarrier();
  for (var t0 = start; t0 < end; t0 += TILE) {
    let n = min(TILE, end - t0);
    for (var e = tid; e < n * REC; e += WG) {
      tile[e] = recordAt(b, t0 + e / REC, e % REC);
    }
    workgroupBarrier();
    // Contract q with B_K (one dot per rank), then with A_K.
    for (var e = tid; e < H * TILE; e += WG) {
      let i = e / TILE;
      let j = e % TILE;
      var sv = NEG;
      if (j < n) {
        var a = 0.0;
        for (var r = 0u; r < RK; r++) {
          var dot = 0.0;
          for (var d = 0u; d < D; d++) {
            dot += q[(b * H + i) * D + d] * tile[j * REC + OFF_BK + r * D + d];
          }
          a += aK(j, i, r) * dot;
        }
        sv = a * p.scoreScale;
      }
      sc[e] = sv;
    }
    workgroupBarrier();
    for (var i = tid; i < H; i += WG) {
      var mt = NEG;
      for (var j = 0u; j < n; j++) { mt = max(mt, sc[i * TILE + j]); }
      let mNew = max(mRun[i], mt);
      let a = exp2(mRun[i] - mNew);
      var sum = 0.0;
      for (var j = 0u; j < n; j++) {
        let pj = exp2(sc[i * TILE + j] - mNew);
        sc[i * TILE + j] = pj;
        sum += pj;
      }
      lRun[i] = lRun[i] * a + sum;
      mRun[i] = mNew;
      alpha[i] = a;
    }
    workgroupBarrier();
    // Weights p_j A_V[j, i, r] against B_V: o_i += sum_j,r p_j A_V[j,i,r] B_V[j,r,:].
    for (var k = 0u; k < ACC_N; k++) {
      let e = tid + k * WG;
      if (e < H * D) {
        let i = e / D;
        let d = e % D;
        var v = acc[k] * alpha[i];
        for (var j = 0u; j < n; j++) {
          let pj = sc[i * TILE + j];
          for (var r = 0u; r < RV; r++) {
            v += pj * aV(j, i, r) * tile[j * REC + OFF_BV + r * D + d];
          }
        }
        acc[k] = v;
      }
    }
    workgroupBarrier();
  }
  let base = b * p.splits + s;
  for (var k = 0u; k < ACC_N; k++) {
    let e = tid + k * WG;
    if (e < H * D) { partO[base * H * D + e] = acc[k]; }
  }
  for (var i = tid; i < H; i += WG) {
    partML[(base * H + i) * 2u] = mRun[i];
    partML[(base * H + i) * 2u + 1u] = lRun[i];
  }
}
`
}

/** Inputs: partO [B,S,H,D], partML [B,S,H,2]; output o [B,H,D]. One workgroup per (head, batch). */
export function wgslDecodeCombine(s: DecodeShape): string {
  return /* wgsl */ `
const H: u32 = ${s.heads}u;
const D: u32 = ${s.headDim}u;
const NEG: f32 = ${NEG};
struct Params { splits: u32, outScale: f32 }
${bindings(['partO', 'partML'], ['out'], 'Params')}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = wid.x;
  let b = wid.y;
  var m = NEG;
  for (var s = 0u; s < p.splits; s++) { m = max(m, partML[((b * p.splits + s) * H + i) * 2u]); }
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let k = ((b * p.splits + s) * H + i) * 2u;
    l += exp2(partML[k] - m) * partML[k + 1u];
  }
  let inv = select(0.0, p.outScale / l, l > 0.0);
  for (var d = tid; d < D; d += 64u) {
    var o = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      let k = (b * p.splits + s) * H + i;
      o += exp2(partML[k * 2u] - m) * partO[k * D + d];
    }
    out[(b * H + i) * D + d] = o * inv;
  }
}
`
}

/** Inputs: store [B,cap,REC], src [B,n,REC]; output [B,cap,REC] with rows [offset, offset+n) from src. */
export function wgslCacheWrite(rec: number): string {
  return /* wgsl */ `
const REC: u32 = ${rec}u;
struct Params { offset: u32, n: u32, cap: u32 }
${bindings(['store', 'src'], ['out'], 'Params')}

// Rows at and past offset + n are left unwritten: nothing reads them before a later write.
// Grid: x strides over one batch row's elements, y is the batch row.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = wid.y;
  let used = (p.offset + p.n) * REC;
  let rowBase = b * p.cap * REC;
  for (var e = gid.x; e < used; e += nwg.x * 256u) {
    let row = e / REC;
    if (row < p.offset) {
      out[rowBase + e] = store[rowBase + e];
    } else {
      out[rowBase + e] = src[(b * p.n + row - p.offset) * REC + e % REC];
    }
  }
}
`
}

/** Copies n float32 values (the bench's bandwidth probe). */
export function wgslCopy(): string {
  return /* wgsl */ `
struct Params { n: u32 }
${bindings(['src'], ['dst'], 'Params')}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  for (var e = gid.x; e < p.n; e += nwg.x * 256u) { dst[e] = src[e]; }
}
`
}
