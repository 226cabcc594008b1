import { type AttentionAttrs, type DType, registerCoreKernel, type TensorInfo } from '@attnkit/core'
import type { GpuBinding, WebGPUBackend } from '../backend.js'
import { bindingsWgsl, mapInto, type Operand, operand, Params, prelude, stagedOutput } from './common.js'

/**
 * Fused attention with explicit positions, as flash attention: one invocation per query row
 * holds q and its output accumulator in registers, key/value tiles stream through workgroup
 * memory, and the softmax is online (running max and sum, rescaled per tile). Tiles that no
 * query of the block can see (the causal future, outside the window, no sink, nothing kept)
 * are skipped as a whole, from per-tile position ranges computed by a small pre-pass; tiles
 * that every query sees whole skip the per-element mask.
 *
 * The backward pass recomputes probabilities from the saved log-sum-exp: dQ with one
 * invocation per query row over key tiles, dK/dV with one invocation per key over query tiles
 * of every query head sharing that key (grouped-query attention).
 */

interface AttentionShapes {
  B: number
  Hq: number
  Hk: number
  Tq: number
  Tk: number
  D: number
  Dv: number
}

function shapesOf(q: TensorInfo, k: TensorInfo, v: TensorInfo): AttentionShapes {
  const [B, Hq, Tq, D] = q.shape
  const [, Hk, Tk] = k.shape
  return { B, Hq, Hk, Tq, Tk, D, Dv: v.shape[3] }
}

/** Keys per workgroup-memory tile for the forward and dQ kernels. */
function keyTile(D: number, Dv: number, b: WebGPUBackend): number {
  const budget = b.limits.maxComputeWorkgroupStorageSize
  for (const bc of [32, 16, 8]) {
    if (bc * (Math.ceil(D / 4) + Math.ceil(Dv / 4)) * 16 + bc * 8 <= budget) return bc
  }
  return 4
}

const BR = 64 // queries (one per invocation) per forward / dQ workgroup
const BK2 = 64 // keys (one per invocation) per dK/dV workgroup

/** Queries per workgroup-memory tile in dK/dV. */
function queryTile(D: number, Dv: number, b: WebGPUBackend): number {
  const budget = b.limits.maxComputeWorkgroupStorageSize
  for (const bq of [32, 16, 8]) {
    if (bq * (Math.ceil(D / 4) + Math.ceil(Dv / 4)) * 16 + bq * 12 <= budget) return bq
  }
  return 4
}

/**
 * Per-tile position ranges: for rows of `pos` [R, T] cut into tiles of `tile`, the min and max
 * position of the tile and whether any key of it is kept: int32 [R, nTiles, 3].
 */
function positionRanges(
  b: WebGPUBackend,
  pos: TensorInfo,
  keep: TensorInfo | undefined,
  tile: number,
): GpuBinding {
  const T = pos.shape[pos.shape.length - 1]
  const R = pos.shape.slice(0, -1).reduce((s, d) => s * d, 1)
  const nTiles = Math.max(1, Math.ceil(T / tile))
  const out = b.temp(R * nTiles * 3 * 4)
  const params = new Params()
  const at = params.array([T, nTiles, tile])
  const inputs: Operand[] = [operand(b, 'pos', pos)]
  if (keep) inputs.push(operand(b, 'keep', keep))
  mapInto(
    b,
    {
      key: `attn-ranges:${!!keep}`,
      label: 'attention tile ranges',
      inputs,
      outputs: [{ name: 'y', dtype: 'int32' }],
      n: R * nTiles * 3,
      params,
      body: `  let T = P(${at}u); let nTiles = P(${at + 1}u); let TS = P(${at + 2}u);
  let comp = i % 3u;
  let t = (i / 3u) % nTiles;
  let row = i / (3u * nTiles);
  var lo = 2147483647i;
  var hi = i32(-2147483647 - 1);
  var any = 0i;
  for (var j = t * TS; j < min(T, (t + 1u) * TS); j++) {
    let p = ld_pos(row * T + j);
    lo = min(lo, p);
    hi = max(hi, p);
    ${keep ? 'if (ld_keep(row * T + j) != 0u) { any = 1i; }' : ''}
  }
  r.y = select(select(any, hi, comp == 1u), lo, comp == 0u);`,
    },
    [{ name: 'y', dtype: 'int32', binding: out }],
  )
  return out
}

/** Host-side specialisation of the visibility rule (see core's keyVisible). */
interface MaskSpec {
  causal: boolean
  /** A selector is set (window > 0 or a keep mask): only selected keys are visible. */
  sel: boolean
  hasKeep: boolean
}

function maskSpec(attrs: AttentionAttrs, hasKeep: boolean): MaskSpec {
  return { causal: attrs.causal, sel: attrs.window > 0 || hasKeep, hasKeep }
}

/** WGSL: visible(qp, kp, kept) and tile_needed / tile_full over position ranges. */
function maskWgsl(m: MaskSpec, windowAt: number, sinksAt: number): string {
  return `fn visible(qp: i32, kp: i32, kept: u32) -> bool {
  ${m.causal ? 'if (kp > qp) { return false; }' : ''}
  ${
    m.sel
      ? `let w = PI(${windowAt}u);
  if (w > 0 && abs(qp - kp) < w) { return true; }
  if (kp < PI(${sinksAt}u)) { return true; }
  return ${m.hasKeep ? 'kept != 0u' : 'false'};`
      : 'return true;'
  }
}
fn tile_needed(minQ: i32, maxQ: i32, minK: i32, maxK: i32, anyKept: i32) -> bool {
  ${m.causal ? 'if (minK > maxQ) { return false; }' : ''}
  ${
    m.sel
      ? `let w = PI(${windowAt}u);
  if (w > 0 && max(0, max(minK - maxQ, minQ - maxK)) < w) { return true; }
  if (minK < PI(${sinksAt}u)) { return true; }
  return ${m.hasKeep ? 'anyKept != 0' : 'false'};`
      : 'return true;'
  }
}
fn tile_full(minQ: i32, maxK: i32) -> bool {
  return ${m.sel ? 'false' : m.causal ? 'maxK <= minQ' : 'true'};
}`
}

/** Storage declarations that read q/k/v-like tensors as vec4 rows (f32, width % 4 == 0) or per element. */
function vecReader(name: string, dtype: DType, width: number): { vec: boolean } {
  return { vec: dtype === 'float32' && width % 4 === 0 && name.length > 0 }
}

/** WGSL loading 4 elements of row-major storage `name` from element `e0` (row width `w`, column `c4*4`). */
function load4(name: string, vec: boolean, rowStart: string, c4: string, width: number): string {
  if (vec) return `${name}[(${rowStart}) / 4u + ${c4}]`
  const el = (k: number) =>
    `select(0.0, ld_${name}(${rowStart} + ${c4} * 4u + ${k}u), ${c4} * 4u + ${k}u < ${width}u)`
  return `vec4<f32>(${el(0)}, ${el(1)}, ${el(2)}, ${el(3)})`
}

function declareInputs(b: WebGPUBackend, inputs: { op: Operand; vec: boolean }[], first = 0): string {
  return inputs
    .map(({ op, vec }, i) =>
      vec
        ? `@group(0) @binding(${first + i}) var<storage, read> ${op.name}: array<vec4<f32>>;`
        : bindingsWgsl(b, [op], []).replace('@binding(0)', `@binding(${first + i})`),
    )
    .join('\n')
}

function attentionParams(s: AttentionShapes, attrs: AttentionAttrs, nQB: number, nKT: number): Params {
  const p = new Params()
  p.array([s.B, s.Hq, s.Hk, s.Tq, s.Tk, nQB, nKT])
  p.f32(attrs.scale) // 7
  p.i32(attrs.window) // 8
  p.i32(attrs.sinks) // 9
  return p
}

const PARAM_DECLS = `let B = P(0u); let Hq = P(1u); let Hk = P(2u); let Tq = P(3u); let Tk = P(4u);
  let nQB = P(5u); let nKT = P(6u); let scale = PF(7u);`

export function attentionForward(
  b: WebGPUBackend,
  inputs: AttentionInputs,
  attrs: AttentionAttrs,
): TensorInfo[] {
  const { q, k, v, qPos, kPos, keep } = inputs
  const s = shapesOf(q, k, v)
  const Bc = keyTile(s.D, s.Dv, b)
  const nQB = Math.ceil(s.Tq / BR)
  const nKT = Math.ceil(s.Tk / Bc)
  const qr = positionRanges(b, qPos, undefined, BR)
  const kr = positionRanges(b, kPos, keep, Bc)
  const out = stagedOutput(b, [s.B, s.Hq, s.Tq, s.Dv], q.dtype, 'o')
  const lse = b.allocData(s.B * s.Hq * s.Tq, 'float32')
  const m = maskSpec(attrs, !!keep)
  const D4 = Math.ceil(s.D / 4)
  const DV4 = Math.ceil(s.Dv / 4)
  const ins = [
    { op: operand(b, 'q', q), vec: vecReader('q', q.dtype, s.D).vec },
    { op: operand(b, 'k', k), vec: vecReader('k', k.dtype, s.D).vec },
    { op: operand(b, 'v', v), vec: vecReader('v', v.dtype, s.Dv).vec },
    { op: operand(b, 'qpos', qPos), vec: false },
    { op: operand(b, 'kpos', kPos), vec: false },
    { op: { name: 'qr', dtype: 'int32' as DType, binding: qr }, vec: false },
    { op: { name: 'kr', dtype: 'int32' as DType, binding: kr }, vec: false },
  ]
  if (keep) ins.push({ op: operand(b, 'keep', keep), vec: false })
  const params = attentionParams(s, attrs, nQB, nKT)
  const uniforms = params.toArray()
  const outs: Operand[] = [out.target, { name: 'lse', dtype: 'float32', binding: lse }]
  const key = [
    'attn-fwd',
    s.D,
    s.Dv,
    Bc,
    m.causal,
    m.sel,
    m.hasKeep,
    ...ins.map((i) => `${i.op.dtype}${i.vec ? 'v' : ''}`),
    out.target.dtype,
    uniforms.length,
  ].join(':')
  const keepLoad = keep ? `ld_keep(kvRow + key)` : '0u'
  b.launch({
    key,
    label: 'attention (flash forward)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${declareInputs(b, ins)}
${bindingsWgsl(b, [], outs).replace(/@binding\((\d+)\)/g, (_, n) => `@binding(${Number(n) + ins.length})`)}
${maskWgsl(m, 8, 9)}
const BR = ${BR}u;
const BC = ${Bc}u;
const D4 = ${D4}u;
const DV4 = ${DV4}u;
var<workgroup> Ks: array<vec4<f32>, ${Bc * D4}>;
var<workgroup> Vs: array<vec4<f32>, ${Bc * DV4}>;
var<workgroup> Kp: array<i32, ${Bc}>;
var<workgroup> Kk: array<u32, ${Bc}>;
@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nQB;
  // The last query blocks see the most keys under a causal mask: start them first.
  let qb = nQB - 1u - blk % nQB;
  let bb = bh / Hq;
  let hk = (bh % Hq) / (Hq / Hk);
  let i = qb * BR + lid;
  let valid = i < Tq;
  let row = bh * Tq + min(i, Tq - 1u);
  var qv: array<vec4<f32>, ${D4}>;
  for (var c = 0u; c < D4; c++) { qv[c] = ${load4('q', ins[0].vec, `row * ${s.D}u`, 'c', s.D)} * scale; }
  let qp = ld_qpos(row);
  var o: array<vec4<f32>, ${DV4}>;
  var mx = -inf_f();
  var l = 0.0;
  let minQ = ld_qr((bh * nQB + qb) * 3u);
  let maxQ = ld_qr((bh * nQB + qb) * 3u + 1u);
  let kvHead = bb * Hk + hk;
  let kvRow = kvHead * Tk;
  for (var kt = 0u; kt < nKT; kt++) {
    let rb = (kvHead * nKT + kt) * 3u;
    let minK = ld_kr(rb);
    let maxK = ld_kr(rb + 1u);
    if (!tile_needed(minQ, maxQ, minK, maxK, ld_kr(rb + 2u))) { continue; }
    let full = tile_full(minQ, maxK) && (kt + 1u) * BC <= Tk;
    for (var e = lid; e < BC * D4; e += BR) {
      let key = kt * BC + e / D4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('k', ins[1].vec, `(kvRow + key) * ${s.D}u`, '(e % D4)', s.D)}; }
      Ks[e] = w;
    }
    for (var e = lid; e < BC * DV4; e += BR) {
      let key = kt * BC + e / DV4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('v', ins[2].vec, `(kvRow + key) * ${s.Dv}u`, '(e % DV4)', s.Dv)}; }
      Vs[e] = w;
    }
    for (var j = lid; j < BC; j += BR) {
      let key = kt * BC + j;
      if (key < Tk) { Kp[j] = ld_kpos(kvRow + key); Kk[j] = ${keepLoad}; }
    }
    workgroupBarrier();
    var sc: array<f32, ${Bc}>;
    var mt = -inf_f();
    for (var j = 0u; j < BC; j++) {
      var acc = vec4<f32>(0.0);
      for (var c = 0u; c < D4; c++) { acc = fma(qv[c], Ks[j * D4 + c], acc); }
      var x = acc.x + acc.y + acc.z + acc.w;
      if (!full) {
        if (kt * BC + j >= Tk || !visible(qp, Kp[j], Kk[j])) { x = -inf_f(); }
      }
      sc[j] = x;
      mt = max(mt, x);
    }
    let mnew = max(mx, mt);
    if (mnew > -inf_f()) {
      let alpha = exp(mx - mnew);
      l = l * alpha;
      for (var c = 0u; c < DV4; c++) { o[c] = o[c] * alpha; }
      for (var j = 0u; j < BC; j++) {
        let p = exp(sc[j] - mnew);
        l = l + p;
        for (var c = 0u; c < DV4; c++) { o[c] = fma(vec4<f32>(p), Vs[j * DV4 + c], o[c]); }
      }
      mx = mnew;
    }
    workgroupBarrier();
  }
  if (!valid) { return; }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < DV4; c++) {
    let w = o[c] * inv;
    for (var t = 0u; t < 4u; t++) {
      if (c * 4u + t < ${s.Dv}u) { st_o(row * ${s.Dv}u + c * 4u + t, w[t]); }
    }
  }
  st_lse(row, select(-inf_f(), mx + log(l), l > 0.0));
}`,
    inputs: ins.map((x) => x.op.binding),
    outputs: outs.map((x) => x.binding),
    uniforms,
    grid: b.grid1d(nQB * s.B * s.Hq),
  })
  b.releaseTemp(qr)
  b.releaseTemp(kr)
  return [out.finish(), { dataId: lse, shape: [s.B, s.Hq, s.Tq], dtype: 'float32' }]
}

type AttentionInputs = {
  q: TensorInfo
  k: TensorInfo
  v: TensorInfo
  qPos: TensorInfo
  kPos: TensorInfo
  keep?: TensorInfo
}

export function attentionBackward(
  b: WebGPUBackend,
  inputs: AttentionInputs & { out: TensorInfo; lse: TensorInfo; dout: TensorInfo },
  attrs: AttentionAttrs,
): TensorInfo[] {
  const { q, k, v, qPos, kPos, keep, out, lse, dout } = inputs
  const s = shapesOf(q, k, v)
  const m = maskSpec(attrs, !!keep)
  const D4 = Math.ceil(s.D / 4)
  const DV4 = Math.ceil(s.Dv / 4)
  const rows = s.B * s.Hq * s.Tq
  // delta_i = dout_i . out_i
  const delta = b.temp(rows * 4)
  const dp = new Params()
  const dvAt = dp.u32(s.Dv)
  mapInto(
    b,
    {
      key: 'attn-delta',
      label: 'attention backward (delta)',
      inputs: [operand(b, 'dO', dout), operand(b, 'O', out)],
      outputs: [{ name: 'y', dtype: 'float32' }],
      n: rows,
      params: dp,
      body: `  let Dv = P(${dvAt}u);
  var acc = 0.0;
  for (var d = 0u; d < Dv; d++) { acc += ld_dO(i * Dv + d) * ld_O(i * Dv + d); }
  r.y = acc;`,
    },
    [{ name: 'y', dtype: 'float32', binding: delta }],
  )
  const keepLoad = (row: string) => (keep ? `ld_keep(${row})` : '0u')
  const dq = dqKernel(b, { q, k, v, qPos, kPos, keep, lse, dout }, delta, attrs, s, m, D4, DV4, keepLoad)
  const [dk, dv] = dkdvKernel(
    b,
    { q, k, v, qPos, kPos, keep, lse, dout },
    delta,
    attrs,
    s,
    m,
    D4,
    DV4,
    keepLoad,
  )
  b.releaseTemp(delta)
  return [dq, dk, dv]
}

type BwdInputs = AttentionInputs & { lse: TensorInfo; dout: TensorInfo }

function dqKernel(
  b: WebGPUBackend,
  x: BwdInputs,
  delta: GpuBinding,
  attrs: AttentionAttrs,
  s: AttentionShapes,
  m: MaskSpec,
  D4: number,
  DV4: number,
  keepLoad: (row: string) => string,
): TensorInfo {
  const Bc = keyTile(s.D, s.Dv, b)
  const nQB = Math.ceil(s.Tq / BR)
  const nKT = Math.ceil(s.Tk / Bc)
  const qr = positionRanges(b, x.qPos, undefined, BR)
  const kr = positionRanges(b, x.kPos, x.keep, Bc)
  const dq = stagedOutput(b, x.q.shape, x.q.dtype, 'dq')
  const ins = [
    { op: operand(b, 'q', x.q), vec: vecReader('q', x.q.dtype, s.D).vec },
    { op: operand(b, 'k', x.k), vec: vecReader('k', x.k.dtype, s.D).vec },
    { op: operand(b, 'v', x.v), vec: vecReader('v', x.v.dtype, s.Dv).vec },
    { op: operand(b, 'dO', x.dout), vec: vecReader('dO', x.dout.dtype, s.Dv).vec },
    { op: operand(b, 'lse', x.lse), vec: false },
    { op: { name: 'delta', dtype: 'float32' as DType, binding: delta }, vec: false },
    { op: operand(b, 'qpos', x.qPos), vec: false },
    { op: operand(b, 'kpos', x.kPos), vec: false },
    { op: { name: 'qr', dtype: 'int32' as DType, binding: qr }, vec: false },
    { op: { name: 'kr', dtype: 'int32' as DType, binding: kr }, vec: false },
  ]
  if (x.keep) ins.push({ op: operand(b, 'keep', x.keep), vec: false })
  const params = attentionParams(s, attrs, nQB, nKT)
  const uniforms = params.toArray()
  const key = [
    'attn-dq',
    s.D,
    s.Dv,
    Bc,
    m.causal,
    m.sel,
    m.hasKeep,
    ...ins.map((i) => `${i.op.dtype}${i.vec ? 'v' : ''}`),
    dq.target.dtype,
    uniforms.length,
  ].join(':')
  b.launch({
    key,
    label: 'attention backward (dq)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 1, uniforms.length)}
${declareInputs(b, ins)}
${bindingsWgsl(b, [], [dq.target]).replace(/@binding\(0\)/g, `@binding(${ins.length})`)}
${maskWgsl(m, 8, 9)}
const BR = ${BR}u;
const BC = ${Bc}u;
const D4 = ${D4}u;
const DV4 = ${DV4}u;
var<workgroup> Ks: array<vec4<f32>, ${Bc * D4}>;
var<workgroup> Vs: array<vec4<f32>, ${Bc * DV4}>;
var<workgroup> Kp: array<i32, ${Bc}>;
var<workgroup> Kk: array<u32, ${Bc}>;
@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nQB;
  let qb = nQB - 1u - blk % nQB;
  let bb = bh / Hq;
  let hk = (bh % Hq) / (Hq / Hk);
  let i = qb * BR + lid;
  let valid = i < Tq;
  let row = bh * Tq + min(i, Tq - 1u);
  var qv: array<vec4<f32>, ${D4}>;
  for (var c = 0u; c < D4; c++) { qv[c] = ${load4('q', ins[0].vec, `row * ${s.D}u`, 'c', s.D)}; }
  var dov: array<vec4<f32>, ${DV4}>;
  for (var c = 0u; c < DV4; c++) { dov[c] = ${load4('dO', ins[3].vec, `row * ${s.Dv}u`, 'c', s.Dv)}; }
  var dqv: array<vec4<f32>, ${D4}>;
  let L = ld_lse(row);
  let dl = ld_delta(row);
  let live = valid && L > -inf_f();
  let qp = ld_qpos(row);
  let minQ = ld_qr((bh * nQB + qb) * 3u);
  let maxQ = ld_qr((bh * nQB + qb) * 3u + 1u);
  let kvHead = bb * Hk + hk;
  let kvRow = kvHead * Tk;
  for (var kt = 0u; kt < nKT; kt++) {
    let rb = (kvHead * nKT + kt) * 3u;
    if (!tile_needed(minQ, maxQ, ld_kr(rb), ld_kr(rb + 1u), ld_kr(rb + 2u))) { continue; }
    for (var e = lid; e < BC * D4; e += BR) {
      let key = kt * BC + e / D4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('k', ins[1].vec, `(kvRow + key) * ${s.D}u`, '(e % D4)', s.D)}; }
      Ks[e] = w;
    }
    for (var e = lid; e < BC * DV4; e += BR) {
      let key = kt * BC + e / DV4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('v', ins[2].vec, `(kvRow + key) * ${s.Dv}u`, '(e % DV4)', s.Dv)}; }
      Vs[e] = w;
    }
    for (var j = lid; j < BC; j += BR) {
      let key = kt * BC + j;
      if (key < Tk) { Kp[j] = ld_kpos(kvRow + key); Kk[j] = ${keepLoad('kvRow + key')}; }
    }
    workgroupBarrier();
    if (live) {
      for (var j = 0u; j < BC; j++) {
        if (kt * BC + j >= Tk || !visible(qp, Kp[j], Kk[j])) { continue; }
        var acc = vec4<f32>(0.0);
        for (var c = 0u; c < D4; c++) { acc = fma(qv[c], Ks[j * D4 + c], acc); }
        let p = exp((acc.x + acc.y + acc.z + acc.w) * scale - L);
        var dpa = vec4<f32>(0.0);
        for (var c = 0u; c < DV4; c++) { dpa = fma(dov[c], Vs[j * DV4 + c], dpa); }
        let ds = p * (dpa.x + dpa.y + dpa.z + dpa.w - dl) * scale;
        for (var c = 0u; c < D4; c++) { dqv[c] = fma(vec4<f32>(ds), Ks[j * D4 + c], dqv[c]); }
      }
    }
    workgroupBarrier();
  }
  if (!valid) { return; }
  for (var c = 0u; c < D4; c++) {
    for (var t = 0u; t < 4u; t++) {
      if (c * 4u + t < ${s.D}u) { st_dq(row * ${s.D}u + c * 4u + t, dqv[c][t]); }
    }
  }
}`,
    inputs: ins.map((i) => i.op.binding),
    outputs: [dq.target.binding],
    uniforms,
    grid: b.grid1d(nQB * s.B * s.Hq),
  })
  b.releaseTemp(qr)
  b.releaseTemp(kr)
  return dq.finish()
}

function dkdvKernel(
  b: WebGPUBackend,
  x: BwdInputs,
  delta: GpuBinding,
  attrs: AttentionAttrs,
  s: AttentionShapes,
  m: MaskSpec,
  D4: number,
  DV4: number,
  keepLoad: (row: string) => string,
): TensorInfo[] {
  const BQ2 = queryTile(s.D, s.Dv, b)
  const nKB = Math.ceil(s.Tk / BK2)
  const nQT = Math.ceil(s.Tq / BQ2)
  const qr = positionRanges(b, x.qPos, undefined, BQ2)
  const kr = positionRanges(b, x.kPos, x.keep, BK2)
  const dk = stagedOutput(b, x.k.shape, x.k.dtype, 'dk')
  const dv = stagedOutput(b, x.v.shape, x.v.dtype, 'dv')
  const ins = [
    { op: operand(b, 'q', x.q), vec: vecReader('q', x.q.dtype, s.D).vec },
    { op: operand(b, 'k', x.k), vec: vecReader('k', x.k.dtype, s.D).vec },
    { op: operand(b, 'v', x.v), vec: vecReader('v', x.v.dtype, s.Dv).vec },
    { op: operand(b, 'dO', x.dout), vec: vecReader('dO', x.dout.dtype, s.Dv).vec },
    { op: operand(b, 'lse', x.lse), vec: false },
    { op: { name: 'delta', dtype: 'float32' as DType, binding: delta }, vec: false },
    { op: operand(b, 'qpos', x.qPos), vec: false },
    { op: operand(b, 'kpos', x.kPos), vec: false },
    { op: { name: 'qr', dtype: 'int32' as DType, binding: qr }, vec: false },
    { op: { name: 'kr', dtype: 'int32' as DType, binding: kr }, vec: false },
  ]
  if (x.keep) ins.push({ op: operand(b, 'keep', x.keep), vec: false })
  const params = attentionParams(s, attrs, nQT, nKB)
  const uniforms = params.toArray()
  const key = [
    'attn-dkdv',
    BQ2,
    s.D,
    s.Dv,
    m.causal,
    m.sel,
    m.hasKeep,
    ...ins.map((i) => `${i.op.dtype}${i.vec ? 'v' : ''}`),
    dk.target.dtype,
    dv.target.dtype,
    uniforms.length,
  ].join(':')
  b.launch({
    key,
    label: 'attention backward (dk, dv)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${declareInputs(b, ins)}
${bindingsWgsl(b, [], [dk.target, dv.target]).replace(/@binding\((\d+)\)/g, (_, n) => `@binding(${Number(n) + ins.length})`)}
${maskWgsl(m, 8, 9)}
const BKK = ${BK2}u;
const BQ = ${BQ2}u;
const D4 = ${D4}u;
const DV4 = ${DV4}u;
var<workgroup> Qs: array<vec4<f32>, ${BQ2 * D4}>;
var<workgroup> Os: array<vec4<f32>, ${BQ2 * DV4}>;
var<workgroup> Ls: array<f32, ${BQ2}>;
var<workgroup> Ds: array<f32, ${BQ2}>;
var<workgroup> Qp: array<i32, ${BQ2}>;
@compute @workgroup_size(${BK2})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  // Here nQB counts query tiles of BQ and nKT key blocks of BKK.
  let blk = wid.x + wid.y * nwg.x;
  let kvHead = blk / nKT;
  let kb = blk % nKT;
  let bb = kvHead / Hk;
  let hk = kvHead % Hk;
  let j = kb * BKK + lid;
  let valid = j < Tk;
  let krow = kvHead * Tk + min(j, Tk - 1u);
  var kv: array<vec4<f32>, ${D4}>;
  for (var c = 0u; c < D4; c++) { kv[c] = ${load4('k', ins[1].vec, `krow * ${s.D}u`, 'c', s.D)}; }
  var vv: array<vec4<f32>, ${DV4}>;
  for (var c = 0u; c < DV4; c++) { vv[c] = ${load4('v', ins[2].vec, `krow * ${s.Dv}u`, 'c', s.Dv)}; }
  var dkv: array<vec4<f32>, ${D4}>;
  var dvv: array<vec4<f32>, ${DV4}>;
  let kp = ld_kpos(krow);
  let kept = ${keepLoad('krow')};
  let rk = (kvHead * nKT + kb) * 3u;
  let minK = ld_kr(rk);
  let maxK = ld_kr(rk + 1u);
  let anyK = ld_kr(rk + 2u);
  let group = Hq / Hk;
  for (var g = 0u; g < group; g++) {
    let qHead = bb * Hq + hk * group + g;
    for (var qt = 0u; qt < nQB; qt++) {
      let rq = (qHead * nQB + qt) * 3u;
      if (!tile_needed(ld_qr(rq), ld_qr(rq + 1u), minK, maxK, anyK)) { continue; }
      for (var e = lid; e < BQ * D4; e += BKK) {
        let qi = qt * BQ + e / D4;
        var w = vec4<f32>(0.0);
        if (qi < Tq) { w = ${load4('q', ins[0].vec, `(qHead * Tq + qi) * ${s.D}u`, '(e % D4)', s.D)}; }
        Qs[e] = w;
      }
      for (var e = lid; e < BQ * DV4; e += BKK) {
        let qi = qt * BQ + e / DV4;
        var w = vec4<f32>(0.0);
        if (qi < Tq) { w = ${load4('dO', ins[3].vec, `(qHead * Tq + qi) * ${s.Dv}u`, '(e % DV4)', s.Dv)}; }
        Os[e] = w;
      }
      for (var t = lid; t < BQ; t += BKK) {
        let qi = qt * BQ + t;
        if (qi < Tq) {
          Ls[t] = ld_lse(qHead * Tq + qi);
          Ds[t] = ld_delta(qHead * Tq + qi);
          Qp[t] = ld_qpos(qHead * Tq + qi);
        } else {
          Ls[t] = -inf_f();
        }
      }
      workgroupBarrier();
      if (valid) {
        for (var t = 0u; t < BQ; t++) {
          let L = Ls[t];
          if (L == -inf_f() || !visible(Qp[t], kp, kept)) { continue; }
          var acc = vec4<f32>(0.0);
          for (var c = 0u; c < D4; c++) { acc = fma(Qs[t * D4 + c], kv[c], acc); }
          let p = exp((acc.x + acc.y + acc.z + acc.w) * scale - L);
          var dpa = vec4<f32>(0.0);
          for (var c = 0u; c < DV4; c++) {
            let o = Os[t * DV4 + c];
            dvv[c] = fma(vec4<f32>(p), o, dvv[c]);
            dpa = fma(o, vv[c], dpa);
          }
          let ds = p * (dpa.x + dpa.y + dpa.z + dpa.w - Ds[t]) * scale;
          for (var c = 0u; c < D4; c++) { dkv[c] = fma(vec4<f32>(ds), Qs[t * D4 + c], dkv[c]); }
        }
      }
      workgroupBarrier();
    }
  }
  if (!valid) { return; }
  for (var c = 0u; c < D4; c++) {
    for (var t = 0u; t < 4u; t++) {
      if (c * 4u + t < ${s.D}u) { st_dk(krow * ${s.D}u + c * 4u + t, dkv[c][t]); }
    }
  }
  for (var c = 0u; c < DV4; c++) {
    for (var t = 0u; t < 4u; t++) {
      if (c * 4u + t < ${s.Dv}u) { st_dv(krow * ${s.Dv}u + c * 4u + t, dvv[c][t]); }
    }
  }
}`,
    inputs: ins.map((i) => i.op.binding),
    outputs: [dk.target.binding, dv.target.binding],
    uniforms,
    grid: b.grid1d(nKB * s.B * s.Hk),
  })
  b.releaseTemp(qr)
  b.releaseTemp(kr)
  return [dk.finish(), dv.finish()]
}

export function registerAttentionKernels(name: string): void {
  registerCoreKernel<'attention', WebGPUBackend>('attention', name, ({ inputs, attrs, backend: b }) =>
    attentionForward(b, inputs, attrs),
  )
  registerCoreKernel<'attentionBackward', WebGPUBackend>(
    'attentionBackward',
    name,
    ({ inputs, attrs, backend: b }) => attentionBackward(b, inputs, attrs),
  )
}
