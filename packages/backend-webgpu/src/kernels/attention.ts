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

/** Overrides for tuning runs (bench/speed.ts); undefined keeps the built-in choice. */
export const attentionTuning: { keyTile?: number; queryRows?: number } = {}

/** Keys per workgroup-memory tile for the forward and dQ kernels: `preferred` where it fits. */
function keyTile(D: number, Dv: number, b: WebGPUBackend, preferred = 32): number {
  const budget = b.limits.maxComputeWorkgroupStorageSize
  for (const bc of [attentionTuning.keyTile ?? preferred, 32, 16, 8]) {
    if (bc * (Math.ceil(D / 4) + Math.ceil(Dv / 4)) * 16 + bc * 8 <= budget) return bc
  }
  return 4
}

const BR = 64 // queries (one per invocation) per dQ workgroup (the forward: FORWARD_ROWS)
/**
 * The forward's tile: 16 keys, 128 queries (one per invocation) per workgroup. On the H100
 * through Dawn ([1,16,4096,64] causal float32, robustness on; bench/results) 12.9 TFLOP/s,
 * against 10.4 with 64 queries and 7.0 with 32 keys x 64 queries: more queries share each
 * workgroup tile of keys and values, and a 16-key tile keeps the written-out score registers
 * few enough for 128-invocation workgroups.
 */
const FORWARD_KEY_TILE = 16
const FORWARD_ROWS = 128

const forwardRows = (): number => attentionTuning.queryRows ?? FORWARD_ROWS
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

/**
 * WGSL: visible(qp, kp, kept) and tile_needed / tile_full over position ranges, mirroring
 * core's keyVisible. The flags are uniforms (words 10..12: causal, selector set, keep mask
 * given) so one pipeline serves every masking mode; they are uniform, so branches stay cheap.
 */
const MASK_WGSL = `fn visible(qp: i32, kp: i32, kept: u32) -> bool {
  if (P(10u) != 0u && kp > qp) { return false; }
  if (P(11u) == 0u) { return true; }
  let w = PI(8u);
  if (w > 0 && abs(qp - kp) < w) { return true; }
  if (kp < PI(9u)) { return true; }
  return P(12u) != 0u && kept != 0u;
}
fn tile_needed(minQ: i32, maxQ: i32, minK: i32, maxK: i32, anyKept: i32) -> bool {
  if (P(10u) != 0u && minK > maxQ) { return false; }
  if (P(11u) == 0u) { return true; }
  let w = PI(8u);
  if (w > 0 && max(0, max(minK - maxQ, minQ - maxK)) < w) { return true; }
  if (minK < PI(9u)) { return true; }
  return P(12u) != 0u && anyKept != 0;
}
fn tile_full(minQ: i32, maxK: i32) -> bool {
  if (P(11u) != 0u) { return false; }
  return P(10u) == 0u || maxK <= minQ;
}`

/**
 * Head-dimension constants as WGSL: literals on GPUs (loops unroll into registers), uniform
 * reads on CPU adapters with register arrays sized to a power-of-two bucket (fewer variants,
 * no unrolling). Uniform words 13..16 hold D, Dv, D/4, Dv/4 rounded up.
 */
interface HeadDims {
  D: string
  Dv: string
  D4: string
  DV4: string
  /** Register / workgroup array lengths in vec4s. */
  aD4: number
  aDV4: number
  /** Counts for `repeat`: numbers on GPUs (written out), the WGSL names on lean adapters (loops). */
  countD4: number | string
  countDV4: number | string
  key: string
}

function headDims(b: WebGPUBackend, D: number, Dv: number): HeadDims {
  const D4 = Math.ceil(D / 4)
  const DV4 = Math.ceil(Dv / 4)
  if (!b.lean)
    return {
      D: `${D}u`,
      Dv: `${Dv}u`,
      D4: `${D4}u`,
      DV4: `${DV4}u`,
      aD4: D4,
      aDV4: DV4,
      countD4: D4,
      countDV4: DV4,
      key: `${D}/${Dv}`,
    }
  const bucket = (n: number) => Math.max(2, 2 ** Math.ceil(Math.log2(n)))
  return {
    D: 'P(13u)',
    Dv: 'P(14u)',
    D4: 'P(15u)',
    DV4: 'P(16u)',
    aD4: bucket(D4),
    aDV4: bucket(DV4),
    countD4: 'D4',
    countDV4: 'DV4',
    key: `lean/${bucket(D4)}/${bucket(DV4)}`,
  }
}

/**
 * WGSL declaring D, Dv, D4, DV4 and the tile bound `tileName`: `const` on GPUs, so that
 * indices built from them and literal indices (see `repeat`) are constant expressions, which
 * Dawn's robustness transform leaves unclamped; `let` of uniform words on lean adapters.
 */
function declareDims(b: WebGPUBackend, hd: HeadDims, tileName: string, tile: string): string {
  const kw = b.lean ? 'let' : 'const'
  return `${kw} D = ${hd.D}; ${kw} Dv = ${hd.Dv}; ${kw} D4 = ${hd.D4}; ${kw} DV4 = ${hd.DV4}; ${kw} ${tileName} = ${tile};`
}

/**
 * WGSL running `body(i)` for i = 0 .. count - 1. A numeric count (GPUs) writes the copies out,
 * each in its own block with the literal index `i`, so per-invocation arrays are only ever
 * indexed by constants: they stay in registers, and Dawn's robustness transform has no index
 * to clamp. (As loops with clamped dynamic indices, q, the output accumulator and the scores
 * of the forward kernel apparently left registers on the H100: 5x slower than unclamped.)
 * A WGSL count (lean CPU adapters, whose compilers should not unroll) keeps one loop over
 * `index`.
 */
function repeat(count: number | string, index: string, body: (i: string) => string): string {
  if (typeof count === 'string')
    return `for (var ${index} = 0u; ${index} < ${count}; ${index}++) {${body(index)}}`
  return Array.from({ length: count }, (_, i) => `{${body(`${i}u`)}}`).join('\n')
}

/** Whether a q/k/v-like tensor is read as vec4 rows (float32 with a width divisible by 4). */
function vec4Rows(dtype: DType, width: number): boolean {
  return dtype === 'float32' && width % 4 === 0
}

/** WGSL loading 4 elements of row-major storage `name` from `rowStart`, column group `c4` (row width `width`). */
function load4(name: string, vec: boolean, rowStart: string, c4: string, width: string): string {
  if (vec) return `${name}[(${rowStart}) / 4u + ${c4}]`
  const el = (k: number) =>
    `select(0.0, ld_${name}(${rowStart} + ${c4} * 4u + ${k}u), ${c4} * 4u + ${k}u < ${width})`
  return `vec4<f32>(${el(0)}, ${el(1)}, ${el(2)}, ${el(3)})`
}

interface Input {
  op: Operand
  vec: boolean
}

function declareInputs(b: WebGPUBackend, inputs: readonly Input[]): string {
  return inputs
    .map(({ op, vec }, i) =>
      vec
        ? `@group(0) @binding(${i}) var<storage, read> ${op.name}: array<vec4<f32>>;`
        : bindingsWgsl(b, [op], []).replace('@binding(0)', `@binding(${i})`),
    )
    .join('\n')
}

function declareOutputs(b: WebGPUBackend, outs: readonly Operand[], first: number): string {
  return bindingsWgsl(b, [], outs).replace(/@binding\((\d+)\)/g, (_, n) => `@binding(${Number(n) + first})`)
}

function inputKey(ins: readonly Input[]): string {
  return ins.map((i) => `${i.op.dtype}${i.vec ? 'v' : ''}`).join(',')
}

function attentionParams(
  s: AttentionShapes,
  attrs: AttentionAttrs,
  nQB: number,
  nKT: number,
  hasKeep: boolean,
  tile: number,
  meta: MetaOffsets,
  rows = 0,
): Params {
  const p = new Params()
  p.array([s.B, s.Hq, s.Hk, s.Tq, s.Tk, nQB, nKT])
  p.f32(attrs.scale) // 7
  p.i32(attrs.window) // 8
  p.i32(attrs.sinks) // 9
  p.array([attrs.causal ? 1 : 0, attrs.window > 0 || hasKeep ? 1 : 0, hasKeep ? 1 : 0]) // 10..12
  p.array([s.D, s.Dv, Math.ceil(s.D / 4), Math.ceil(s.Dv / 4)]) // 13..16
  p.u32(tile) // 17: keys (forward, dq) or queries (dk/dv) per workgroup-memory tile
  p.array([meta.qpos, meta.kpos, meta.keep, meta.qr, meta.kr]) // 18..22: regions of `meta`
  p.u32(rows) // 23: where delta starts in `stats` (backward)
  return p
}

/** Word offsets of the regions of the packed position buffer. */
interface MetaOffsets {
  qpos: number
  kpos: number
  keep: number
  qr: number
  kr: number
}

/**
 * Query and key positions, the keep mask (its bytes) and the per-tile position ranges, packed
 * into one int32 buffer: kernels stay within the 8 storage buffers every WebGPU device allows.
 */
function buildMeta(
  b: WebGPUBackend,
  qPos: TensorInfo,
  kPos: TensorInfo,
  keep: TensorInfo | undefined,
  qTile: number,
  kTile: number,
): { meta: GpuBinding; offsets: MetaOffsets } {
  const qr = positionRanges(b, qPos, undefined, qTile)
  const kr = positionRanges(b, kPos, keep, kTile)
  const nq = qPos.shape.reduce((a, d) => a * d, 1)
  const nk = kPos.shape.reduce((a, d) => a * d, 1)
  const keepWords = keep ? Math.ceil(nk / 4) : 0
  const offsets: MetaOffsets = { qpos: 0, kpos: nq, keep: nq + nk, qr: nq + nk + keepWords, kr: 0 }
  offsets.kr = offsets.qr + qr.bytes / 4
  const meta = b.temp((offsets.kr + kr.bytes / 4) * 4)
  b.copy(b.data(qPos.dataId, 'qPositions'), 0, meta, 0, nq * 4)
  b.copy(b.data(kPos.dataId, 'kPositions'), 0, meta, offsets.kpos * 4, nk * 4)
  if (keep) b.copy(b.data(keep.dataId, 'keep'), 0, meta, offsets.keep * 4, keepWords * 4)
  b.copy(qr, 0, meta, offsets.qr * 4, qr.bytes)
  b.copy(kr, 0, meta, offsets.kr * 4, kr.bytes)
  b.releaseTemp(qr)
  b.releaseTemp(kr)
  return { meta, offsets }
}

/** Readers of the packed buffers (uniform words 18..23 from attentionParams). */
const META_WGSL = `fn ld_qpos(i: u32) -> i32 { return pmeta[P(18u) + i]; }
fn ld_kpos(i: u32) -> i32 { return pmeta[P(19u) + i]; }
fn ld_keep(i: u32) -> u32 {
  let w = bitcast<u32>(pmeta[P(20u) + (i >> 2u)]);
  return select(0u, 1u, ((w >> ((i & 3u) * 8u)) & 0xffu) != 0u);
}
fn ld_qr(i: u32) -> i32 { return pmeta[P(21u) + i]; }
fn ld_kr(i: u32) -> i32 { return pmeta[P(22u) + i]; }`

const STATS_WGSL = `fn ld_lse(i: u32) -> f32 { return stats[i]; }
fn ld_delta(i: u32) -> f32 { return stats[P(23u) + i]; }`

/** The tile loop bound: constant on GPUs, uniform word 17 on CPU adapters. */
function tileBound(b: WebGPUBackend, tile: number): string {
  return b.lean ? 'P(17u)' : `${tile}u`
}

const PARAM_DECLS = `let B = P(0u); let Hq = P(1u); let Hk = P(2u); let Tq = P(3u); let Tk = P(4u);
  let nQB = P(5u); let nKT = P(6u); let scale = PF(7u);`

type AttentionInputs = {
  q: TensorInfo
  k: TensorInfo
  v: TensorInfo
  qPos: TensorInfo
  kPos: TensorInfo
  keep?: TensorInfo
}

export function attentionForward(
  b: WebGPUBackend,
  inputs: AttentionInputs,
  attrs: AttentionAttrs,
): TensorInfo[] {
  const { q, k, v, qPos, kPos, keep } = inputs
  const s = shapesOf(q, k, v)
  const Bc = keyTile(s.D, s.Dv, b, FORWARD_KEY_TILE)
  const rows = forwardRows()
  const nQB = Math.ceil(s.Tq / rows)
  const nKT = Math.ceil(s.Tk / Bc)
  const { meta, offsets } = buildMeta(b, qPos, kPos, keep, rows, Bc)
  const out = stagedOutput(b, [s.B, s.Hq, s.Tq, s.Dv], q.dtype, 'o')
  const lse = b.allocData(s.B * s.Hq * s.Tq, 'float32')
  const hd = headDims(b, s.D, s.Dv)
  const BC = tileBound(b, Bc)
  const countKeys = b.lean ? 'BC' : Bc
  const ins: Input[] = [
    { op: operand(b, 'q', q), vec: vec4Rows(q.dtype, s.D) },
    { op: operand(b, 'k', k), vec: vec4Rows(k.dtype, s.D) },
    { op: operand(b, 'v', v), vec: vec4Rows(v.dtype, s.Dv) },
    { op: { name: 'pmeta', dtype: 'int32', binding: meta }, vec: false },
  ]
  const uniforms = attentionParams(s, attrs, nQB, nKT, !!keep, Bc, offsets).toArray()
  const outs: Operand[] = [out.target, { name: 'lse', dtype: 'float32', binding: lse }]
  b.launch({
    key: ['attn-fwd', hd.key, Bc, rows, inputKey(ins), out.target.dtype, uniforms.length].join(':'),
    label: 'attention (flash forward)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${declareInputs(b, ins)}
${declareOutputs(b, outs, ins.length)}
${MASK_WGSL}
${META_WGSL}
const BR = ${rows}u;
var<workgroup> Ks: array<vec4<f32>, ${Bc * hd.aD4}>;
var<workgroup> Vs: array<vec4<f32>, ${Bc * hd.aDV4}>;
var<workgroup> Kp: array<i32, ${Bc}>;
var<workgroup> Kk: array<u32, ${Bc}>;
@compute @workgroup_size(${rows})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  ${declareDims(b, hd, 'BC', BC)}
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nQB;
  // The last query blocks see the most keys under a causal mask: start them first.
  let qb = nQB - 1u - blk % nQB;
  let bb = bh / Hq;
  let hk = (bh % Hq) / (Hq / Hk);
  let i = qb * BR + lid;
  let valid = i < Tq;
  let row = bh * Tq + min(i, Tq - 1u);
  // Registers q, o and sc are indexed only through repeat(): by literals on GPUs.
  var qv: array<vec4<f32>, ${hd.aD4}>;
  ${repeat(hd.countD4, 'c', (c) => ` qv[${c}] = ${load4('q', ins[0].vec, 'row * D', c, 'D')} * scale; `)}
  let qp = ld_qpos(row);
  var o: array<vec4<f32>, ${hd.aDV4}>;
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
      if (key < Tk) { w = ${load4('k', ins[1].vec, '(kvRow + key) * D', '(e % D4)', 'D')}; }
      Ks[e] = w;
    }
    for (var e = lid; e < BC * DV4; e += BR) {
      let key = kt * BC + e / DV4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('v', ins[2].vec, '(kvRow + key) * Dv', '(e % DV4)', 'Dv')}; }
      Vs[e] = w;
    }
    for (var j = lid; j < BC; j += BR) {
      let key = kt * BC + j;
      if (key < Tk) {
        Kp[j] = ld_kpos(kvRow + key);
        if (P(12u) != 0u) { Kk[j] = ld_keep(kvRow + key); }
      }
    }
    workgroupBarrier();
    var sc: array<f32, ${Bc}>;
    var mt = -inf_f();
    ${repeat(
      countKeys,
      'j',
      (j) => `
      var acc = vec4<f32>(0.0);
      ${repeat(hd.countD4, 'c', (c) => ` acc = fma(qv[${c}], Ks[${j} * D4 + ${c}], acc); `)}
      var x = acc.x + acc.y + acc.z + acc.w;
      if (!full) {
        if (kt * BC + ${j} >= Tk || !visible(qp, Kp[${j}], Kk[${j}])) { x = -inf_f(); }
      }
      sc[${j}] = x;
      mt = max(mt, x);
    `,
    )}
    let mnew = max(mx, mt);
    if (mnew > -inf_f()) {
      let alpha = exp(mx - mnew);
      l = l * alpha;
      ${repeat(hd.countDV4, 'c', (c) => ` o[${c}] = o[${c}] * alpha; `)}
      ${repeat(
        countKeys,
        'j',
        (j) => `
        let p = exp(sc[${j}] - mnew);
        l = l + p;
        ${repeat(hd.countDV4, 'c', (c) => ` o[${c}] = fma(vec4<f32>(p), Vs[${j} * DV4 + ${c}], o[${c}]); `)}
      `,
      )}
      mx = mnew;
    }
    workgroupBarrier();
  }
  if (!valid) { return; }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  ${repeat(
    hd.countDV4,
    'c',
    (c) => `
    let w = o[${c}] * inv;
    ${[0, 1, 2, 3].map((t) => `if (${c} * 4u + ${t}u < Dv) { st_o(row * Dv + ${c} * 4u + ${t}u, w[${t}]); }`).join('\n    ')}
  `,
  )}
  st_lse(row, select(-inf_f(), mx + log(l), l > 0.0));
}`,
    inputs: ins.map((x) => x.op.binding),
    outputs: outs.map((x) => x.binding),
    uniforms,
    grid: b.grid1d(nQB * s.B * s.Hq),
  })
  b.releaseTemp(meta)
  return [out.finish(), { dataId: lse, shape: [s.B, s.Hq, s.Tq], dtype: 'float32' }]
}

export function attentionBackward(
  b: WebGPUBackend,
  inputs: AttentionInputs & { out: TensorInfo; lse: TensorInfo; dout: TensorInfo },
  attrs: AttentionAttrs,
): TensorInfo[] {
  const { out, dout } = inputs
  const s = shapesOf(inputs.q, inputs.k, inputs.v)
  const rows = s.B * s.Hq * s.Tq
  // stats = [lse | delta], delta_i = dout_i . out_i
  const stats = b.temp(rows * 8)
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
  b.copy(b.data(inputs.lse.dataId, 'lse'), 0, stats, 0, rows * 4)
  b.copy(delta, 0, stats, rows * 4, rows * 4)
  b.releaseTemp(delta)
  const dq = dqKernel(b, inputs, stats, attrs, s)
  const [dk, dv] = dkdvKernel(b, inputs, stats, attrs, s)
  b.releaseTemp(stats)
  return [dq, dk, dv]
}

type BwdInputs = AttentionInputs & { lse: TensorInfo; dout: TensorInfo }

function backwardInputs(
  b: WebGPUBackend,
  x: BwdInputs,
  s: AttentionShapes,
  stats: GpuBinding,
  meta: GpuBinding,
): Input[] {
  return [
    { op: operand(b, 'q', x.q), vec: vec4Rows(x.q.dtype, s.D) },
    { op: operand(b, 'k', x.k), vec: vec4Rows(x.k.dtype, s.D) },
    { op: operand(b, 'v', x.v), vec: vec4Rows(x.v.dtype, s.Dv) },
    { op: operand(b, 'dO', x.dout), vec: vec4Rows(x.dout.dtype, s.Dv) },
    { op: { name: 'stats', dtype: 'float32', binding: stats }, vec: false },
    { op: { name: 'pmeta', dtype: 'int32', binding: meta }, vec: false },
  ]
}

function dqKernel(
  b: WebGPUBackend,
  x: BwdInputs,
  stats: GpuBinding,
  attrs: AttentionAttrs,
  s: AttentionShapes,
): TensorInfo {
  const Bc = keyTile(s.D, s.Dv, b)
  const nQB = Math.ceil(s.Tq / BR)
  const nKT = Math.ceil(s.Tk / Bc)
  const { meta, offsets } = buildMeta(b, x.qPos, x.kPos, x.keep, BR, Bc)
  const dq = stagedOutput(b, x.q.shape, x.q.dtype, 'dq')
  const ins = backwardInputs(b, x, s, stats, meta)
  const hd = headDims(b, s.D, s.Dv)
  const BC = tileBound(b, Bc)
  const rows = s.B * s.Hq * s.Tq
  const uniforms = attentionParams(s, attrs, nQB, nKT, !!x.keep, Bc, offsets, rows).toArray()
  b.launch({
    key: ['attn-dq', hd.key, Bc, inputKey(ins), dq.target.dtype, uniforms.length].join(':'),
    label: 'attention backward (dq)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 1, uniforms.length)}
${declareInputs(b, ins)}
${declareOutputs(b, [dq.target], ins.length)}
${MASK_WGSL}
${META_WGSL}
${STATS_WGSL}
const BR = ${BR}u;
var<workgroup> Ks: array<vec4<f32>, ${Bc * hd.aD4}>;
var<workgroup> Vs: array<vec4<f32>, ${Bc * hd.aDV4}>;
var<workgroup> Kp: array<i32, ${Bc}>;
var<workgroup> Kk: array<u32, ${Bc}>;
@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  ${declareDims(b, hd, 'BC', BC)}
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nQB;
  let qb = nQB - 1u - blk % nQB;
  let bb = bh / Hq;
  let hk = (bh % Hq) / (Hq / Hk);
  let i = qb * BR + lid;
  let valid = i < Tq;
  let row = bh * Tq + min(i, Tq - 1u);
  var qv: array<vec4<f32>, ${hd.aD4}>;
  for (var c = 0u; c < D4; c++) { qv[c] = ${load4('q', ins[0].vec, 'row * D', 'c', 'D')}; }
  var dov: array<vec4<f32>, ${hd.aDV4}>;
  for (var c = 0u; c < DV4; c++) { dov[c] = ${load4('dO', ins[3].vec, 'row * Dv', 'c', 'Dv')}; }
  var dqv: array<vec4<f32>, ${hd.aD4}>;
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
      if (key < Tk) { w = ${load4('k', ins[1].vec, '(kvRow + key) * D', '(e % D4)', 'D')}; }
      Ks[e] = w;
    }
    for (var e = lid; e < BC * DV4; e += BR) {
      let key = kt * BC + e / DV4;
      var w = vec4<f32>(0.0);
      if (key < Tk) { w = ${load4('v', ins[2].vec, '(kvRow + key) * Dv', '(e % DV4)', 'Dv')}; }
      Vs[e] = w;
    }
    for (var j = lid; j < BC; j += BR) {
      let key = kt * BC + j;
      if (key < Tk) {
        Kp[j] = ld_kpos(kvRow + key);
        if (P(12u) != 0u) { Kk[j] = ld_keep(kvRow + key); }
      }
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
      if (c * 4u + t < D) { st_dq(row * D + c * 4u + t, dqv[c][t]); }
    }
  }
}`,
    inputs: ins.map((i) => i.op.binding),
    outputs: [dq.target.binding],
    uniforms,
    grid: b.grid1d(nQB * s.B * s.Hq),
  })
  b.releaseTemp(meta)
  return dq.finish()
}

function dkdvKernel(
  b: WebGPUBackend,
  x: BwdInputs,
  stats: GpuBinding,
  attrs: AttentionAttrs,
  s: AttentionShapes,
): TensorInfo[] {
  const Bq = queryTile(s.D, s.Dv, b)
  const nKB = Math.ceil(s.Tk / BK2)
  const nQT = Math.ceil(s.Tq / Bq)
  const { meta, offsets } = buildMeta(b, x.qPos, x.kPos, x.keep, Bq, BK2)
  const dk = stagedOutput(b, x.k.shape, x.k.dtype, 'dk')
  const dv = stagedOutput(b, x.v.shape, x.v.dtype, 'dv')
  const ins = backwardInputs(b, x, s, stats, meta)
  const hd = headDims(b, s.D, s.Dv)
  const BQ = tileBound(b, Bq)
  const rows = s.B * s.Hq * s.Tq
  // Here words 5 and 6 count query tiles of Bq and key blocks of BK2.
  const uniforms = attentionParams(s, attrs, nQT, nKB, !!x.keep, Bq, offsets, rows).toArray()
  const outs = [dk.target, dv.target]
  b.launch({
    key: ['attn-dkdv', hd.key, Bq, inputKey(ins), dk.target.dtype, dv.target.dtype, uniforms.length].join(
      ':',
    ),
    label: 'attention backward (dk, dv)',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${declareInputs(b, ins)}
${declareOutputs(b, outs, ins.length)}
${MASK_WGSL}
${META_WGSL}
${STATS_WGSL}
const BKK = ${BK2}u;
var<workgroup> Qs: array<vec4<f32>, ${Bq * hd.aD4}>;
var<workgroup> Os: array<vec4<f32>, ${Bq * hd.aDV4}>;
var<workgroup> Ls: array<f32, ${Bq}>;
var<workgroup> Ds: array<f32, ${Bq}>;
var<workgroup> Qp: array<i32, ${Bq}>;
@compute @workgroup_size(${BK2})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${PARAM_DECLS}
  ${declareDims(b, hd, 'BQ', BQ)}
  let blk = wid.x + wid.y * nwg.x;
  let kvHead = blk / nKT;
  let kb = blk % nKT;
  let bb = kvHead / Hk;
  let hk = kvHead % Hk;
  let j = kb * BKK + lid;
  let valid = j < Tk;
  let krow = kvHead * Tk + min(j, Tk - 1u);
  var kv: array<vec4<f32>, ${hd.aD4}>;
  for (var c = 0u; c < D4; c++) { kv[c] = ${load4('k', ins[1].vec, 'krow * D', 'c', 'D')}; }
  var vv: array<vec4<f32>, ${hd.aDV4}>;
  for (var c = 0u; c < DV4; c++) { vv[c] = ${load4('v', ins[2].vec, 'krow * Dv', 'c', 'Dv')}; }
  var dkv: array<vec4<f32>, ${hd.aD4}>;
  var dvv: array<vec4<f32>, ${hd.aDV4}>;
  let kp = ld_kpos(krow);
  var kept = 0u;
  if (P(12u) != 0u) { kept = ld_keep(krow); }
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
        if (qi < Tq) { w = ${load4('q', ins[0].vec, '(qHead * Tq + qi) * D', '(e % D4)', 'D')}; }
        Qs[e] = w;
      }
      for (var e = lid; e < BQ * DV4; e += BKK) {
        let qi = qt * BQ + e / DV4;
        var w = vec4<f32>(0.0);
        if (qi < Tq) { w = ${load4('dO', ins[3].vec, '(qHead * Tq + qi) * Dv', '(e % DV4)', 'Dv')}; }
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
      if (c * 4u + t < D) { st_dk(krow * D + c * 4u + t, dkv[c][t]); }
    }
  }
  for (var c = 0u; c < DV4; c++) {
    for (var t = 0u; t < 4u; t++) {
      if (c * 4u + t < Dv) { st_dv(krow * Dv + c * 4u + t, dvv[c][t]); }
    }
  }
}`,
    inputs: ins.map((i) => i.op.binding),
    outputs: outs.map((o) => o.binding),
    uniforms,
    grid: b.grid1d(nKB * s.B * s.Hk),
  })
  b.releaseTemp(meta)
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
