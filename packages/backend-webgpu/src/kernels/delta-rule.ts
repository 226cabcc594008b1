import { type DeltaRuleAttrs, registerCoreKernel, type TensorInfo } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { bufferBytes, elementBytes } from '../dtype-layout.js'
import { bindingsWgsl, mapInto, type Operand, operand, Params, prelude, stagedOutput } from './common.js'

/**
 * The gated delta rule on the GPU. Each column of the state S [Dk, Dv] evolves on its own:
 *   S_t[:, j] = a_t (S[:, j] - beta_t k_t (k_t . S[:, j])) + beta_t k_t v_t[j],  o_t[j] = scale q_t . S_t[:, j]
 * so one invocation per (batch, head, column) runs the recurrence exactly, Dk values in
 * registers, all columns in parallel. Both modes compute this same function ('chunked' names
 * the CPU reference's WY evaluation order, whose advantage needs matrix units); chunkSize sets
 * the checkpoint interval of the backward pass.
 *
 * Backward: the same invocations replay the recurrence storing a checkpoint every chunkSize
 * steps, then walk the chunks backwards, recomputing each chunk's states from its checkpoint.
 * The state gradient of a column also evolves on its own; only dq, dk, dg and dbeta sum over
 * columns, which the workgroup reduces per step (64 columns per workgroup) and a final pass
 * adds across column blocks.
 */
const NT = 64

interface DeltaShapes {
  B: number
  H: number
  T: number
  Dk: number
  Dv: number
  nCB: number
}

function shapesOf(q: TensorInfo, v: TensorInfo): DeltaShapes {
  const [B, H, T, Dk] = q.shape
  const Dv = v.shape[3]
  return { B, H, T, Dk, Dv, nCB: Math.ceil(Dv / NT) }
}

function commonParams(s: DeltaShapes, attrs: DeltaRuleAttrs): Params {
  const p = new Params()
  p.array([s.B * s.H, s.T, s.Dk, s.Dv, s.nCB, attrs.chunkSize])
  p.f32(attrs.scale) // 6
  p.u32(s.Dk) // 7: the column length on CPU adapters
  return p
}

const HEADER = `let BH = P(0u); let T = P(1u); let Dk = P(2u); let Dv = P(3u); let nCB = P(4u); let C = P(5u);
  let scale = PF(6u);
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nCB;
  let j = (blk % nCB) * ${NT}u + lid;
  let valid = j < Dv;
  let jj = min(j, Dv - 1u);`

/**
 * The state column's length: Dk as a constant on GPUs; on CPU adapters a register array of a
 * power-of-two bucket with the loop bound read from uniform word 7 (see WebGPUBackend.lean).
 */
function columnDims(b: WebGPUBackend, Dk: number): { DK: string; size: number; key: string } {
  if (!b.lean) return { DK: `${Dk}u`, size: Dk, key: `${Dk}` }
  const size = Math.max(4, 2 ** Math.ceil(Math.log2(Dk)))
  return { DK: 'P(7u)', size, key: `lean/${size}` }
}

/** WGSL: one recurrence step on the register column S (k, v at step t of head bh). */
function stepWgsl(size: number, DK: string): string {
  return `fn step(S: ptr<function, array<f32, ${size}>>, bh: u32, t: u32, vj: f32) {
  let T = P(1u);
  let a = exp(ld_g(bh * T + t));
  let bt = ld_beta(bh * T + t);
  let kb = (bh * T + t) * P(2u);
  var u = 0.0;
  for (var i = 0u; i < ${DK}; i++) { u += ld_k(kb + i) * (*S)[i]; }
  let c = bt * (vj - a * u);
  for (var i = 0u; i < ${DK}; i++) { (*S)[i] = a * (*S)[i] + c * ld_k(kb + i); }
}`
}

export function deltaRuleForward(
  b: WebGPUBackend,
  x: { q: TensorInfo; k: TensorInfo; v: TensorInfo; g: TensorInfo; beta: TensorInfo; state?: TensorInfo },
  attrs: DeltaRuleAttrs,
): TensorInfo[] {
  const s = shapesOf(x.q, x.v)
  const out = stagedOutput(b, [s.B, s.H, s.T, s.Dv], x.v.dtype, 'o')
  const state = b.allocData(s.B * s.H * s.Dk * s.Dv, 'float32')
  const ins: Operand[] = [
    operand(b, 'q', x.q),
    operand(b, 'k', x.k),
    operand(b, 'v', x.v),
    operand(b, 'g', x.g),
    operand(b, 'beta', x.beta),
  ]
  if (x.state) ins.push(operand(b, 's0', x.state))
  const outs: Operand[] = [out.target, { name: 'sf', dtype: 'float32', binding: state }]
  const uniforms = commonParams(s, attrs).toArray()
  const cd = columnDims(b, s.Dk)
  const Dk = cd.size
  const DK = cd.DK
  b.launch({
    key: `gdr-fwd:${cd.key}:${!!x.state}:${ins.map((i) => i.dtype).join(',')}:${out.target.dtype}:${uniforms.length}`,
    label: 'gatedDeltaRule',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${bindingsWgsl(b, ins, outs)}
${stepWgsl(Dk, DK)}
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${HEADER}
  var S: array<f32, ${Dk}>;
  ${x.state ? `if (valid) { for (var i = 0u; i < ${DK}; i++) { S[i] = ld_s0((bh * Dk + i) * Dv + j); } }` : ''}
  for (var t = 0u; t < T; t++) {
    let vj = select(0.0, ld_v((bh * T + t) * Dv + jj), valid);
    step(&S, bh, t, vj);
    var o = 0.0;
    let qb = (bh * T + t) * Dk;
    for (var i = 0u; i < ${DK}; i++) { o += ld_q(qb + i) * S[i]; }
    if (valid) { st_o((bh * T + t) * Dv + j, scale * o); }
  }
  if (valid) { for (var i = 0u; i < ${DK}; i++) { st_sf((bh * Dk + i) * Dv + j, S[i]); } }
}`,
    inputs: ins.map((i) => i.binding),
    outputs: outs.map((o) => o.binding),
    uniforms,
    grid: b.grid1d(s.B * s.H * s.nCB),
  })
  return [out.finish(), { dataId: state, shape: [s.B, s.H, s.Dk, s.Dv], dtype: 'float32' }]
}

export function deltaRuleBackward(
  b: WebGPUBackend,
  x: {
    q: TensorInfo
    k: TensorInfo
    v: TensorInfo
    g: TensorInfo
    beta: TensorInfo
    state?: TensorInfo
    dout: TensorInfo
    dFinalState?: TensorInfo
  },
  attrs: DeltaRuleAttrs,
): TensorInfo[] {
  const s = shapesOf(x.q, x.v)
  const C = Math.max(1, Math.min(attrs.chunkSize, s.T))
  const nChunks = Math.ceil(s.T / C)
  const BH = s.B * s.H
  const cd = columnDims(b, s.Dk)
  const Dk = cd.size
  const DK = cd.DK
  const col = s.Dk * s.Dv
  const rows = BH * s.T
  // Everything lives in 8 storage buffers (the WebGPU minimum): g|beta, initial state|its
  // gradient in, checkpoints|chunk states as scratch, and one f32 result buffer holding the
  // column blocks' partial dq, dk, dg, dbeta, then dv and the initial state's gradient.
  const gBytes = bufferBytes(x.g.dtype, rows)
  const gb = b.temp(gBytes * 2)
  b.copy(b.data(x.g.dataId, 'g'), 0, gb, 0, gBytes)
  b.copy(b.data(x.beta.dataId, 'beta'), 0, gb, gBytes, gBytes)
  const sinWords = (x.state ? BH * col : 0) + (x.dFinalState ? BH * col : 0)
  const sin = sinWords ? b.temp(sinWords * 4) : b.constantBuffer('delta-rule:none', () => new Uint32Array(4))
  if (x.state) b.copy(b.data(x.state.dataId, 'state'), 0, sin, 0, BH * col * 4)
  const dsfAt = x.state ? BH * col : 0
  if (x.dFinalState) b.copy(b.data(x.dFinalState.dataId, 'dFinalState'), 0, sin, dsfAt * 4, BH * col * 4)
  const stAt = BH * nChunks * col
  const scr = b.temp((stAt + BH * (C + 1) * col) * 4)
  const at = { dqp: 0, dkp: 0, dgp: 0, dbp: 0, dv: 0, ds: 0 }
  at.dkp = s.nCB * rows * s.Dk
  at.dgp = 2 * at.dkp
  at.dbp = at.dgp + s.nCB * rows
  at.dv = at.dbp + s.nCB * rows
  at.ds = at.dv + rows * s.Dv
  const res = b.temp((at.ds + BH * col) * 4)
  const ins: Operand[] = [
    operand(b, 'q', x.q),
    operand(b, 'k', x.k),
    operand(b, 'v', x.v),
    { name: 'gb', dtype: x.g.dtype, binding: gb },
    operand(b, 'dO', x.dout),
    { name: 'sin', dtype: 'float32', binding: sin },
  ]
  const outs: Operand[] = [
    { name: 'scr', dtype: 'float32', binding: scr },
    { name: 'res', dtype: 'float32', binding: res },
  ]
  const params = commonParams(s, { ...attrs, chunkSize: C })
  const w = params.array([
    gBytes / elementBytes(x.g.dtype),
    x.state ? 1 : 0,
    x.dFinalState ? 1 : 0,
    dsfAt,
    stAt,
    at.dkp,
    at.dgp,
    at.dbp,
    at.dv,
    at.ds,
  ])
  const regions = `fn ld_g(i: u32) -> f32 { return ld_gb(i); }
fn ld_beta(i: u32) -> f32 { return ld_gb(P(${w}u) + i); }
fn ld_s0(i: u32) -> f32 { return ld_sin(i); }
fn ld_dsf(i: u32) -> f32 { return ld_sin(P(${w + 3}u) + i); }
fn st_ckp(i: u32, v: f32) { scr[i] = v; }
fn ld_ckp(i: u32) -> f32 { return scr[i]; }
fn st_sts(i: u32, v: f32) { scr[P(${w + 4}u) + i] = v; }
fn ld_sts(i: u32) -> f32 { return scr[P(${w + 4}u) + i]; }
fn st_dqp(i: u32, v: f32) { res[i] = v; }
fn st_dkp(i: u32, v: f32) { res[P(${w + 5}u) + i] = v; }
fn st_dgp(i: u32, v: f32) { res[P(${w + 6}u) + i] = v; }
fn st_dbp(i: u32, v: f32) { res[P(${w + 7}u) + i] = v; }
fn st_dv(i: u32, v: f32) { res[P(${w + 8}u) + i] = v; }
fn st_ds(i: u32, v: f32) { res[P(${w + 9}u) + i] = v; }`
  const hasS0 = `P(${w + 1}u) != 0u`
  const hasDsf = `P(${w + 2}u) != 0u`
  const nChunksAt = params.u32(nChunks)
  const uniforms = params.toArray()
  const RC = 16
  b.launch({
    key: `gdr-bwd:${cd.key}:${ins.map((i) => i.dtype).join(',')}:${uniforms.length}`,
    label: 'gatedDeltaRuleBackward',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + outs.length, uniforms.length)}
${bindingsWgsl(b, ins, outs)}
${regions}
${stepWgsl(Dk, DK)}
var<workgroup> redX: array<f32, ${RC * NT}>;
var<workgroup> redY: array<f32, ${RC * NT}>;
var<workgroup> redS: array<f32, ${2 * NT}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${HEADER}
  let nChunks = P(${nChunksAt}u);
  let cb = blk % nCB;
  let col = Dk * Dv;
  // Replay the recurrence, keeping the state at the start of every chunk.
  var S: array<f32, ${Dk}>;
  if (valid && ${hasS0}) { for (var i = 0u; i < ${DK}; i++) { S[i] = ld_s0(bh * col + i * Dv + j); } }
  for (var t = 0u; t < T; t++) {
    if (t % C == 0u && valid) {
      for (var i = 0u; i < ${DK}; i++) { st_ckp((bh * nChunks + t / C) * col + i * Dv + j, S[i]); }
    }
    step(&S, bh, t, select(0.0, ld_v((bh * T + t) * Dv + jj), valid));
  }
  var dS: array<f32, ${Dk}>;
  if (valid && ${hasDsf}) { for (var i = 0u; i < ${DK}; i++) { dS[i] = ld_dsf(bh * col + i * Dv + j); } }
  for (var ci = i32(nChunks) - 1; ci >= 0; ci--) {
    let c = u32(ci);
    let t0 = c * C;
    let n = min(T, t0 + C) - t0;
    // States before each step of the chunk (states[n] is the state after it).
    for (var i = 0u; i < ${DK}; i++) { S[i] = select(0.0, ld_ckp((bh * nChunks + c) * col + i * Dv + jj), valid); }
    for (var sIdx = 0u; sIdx < n; sIdx++) {
      if (valid) { for (var i = 0u; i < ${DK}; i++) { st_sts((bh * (C + 1u) + sIdx) * col + i * Dv + j, S[i]); } }
      step(&S, bh, t0 + sIdx, select(0.0, ld_v((bh * T + t0 + sIdx) * Dv + jj), valid));
    }
    if (valid) { for (var i = 0u; i < ${DK}; i++) { st_sts((bh * (C + 1u) + n) * col + i * Dv + j, S[i]); } }
    for (var si = i32(n) - 1; si >= 0; si--) {
      let sIdx = u32(si);
      let t = t0 + sIdx;
      let row = bh * T + t;
      let kb = row * Dk;
      let doj = select(0.0, ld_dO(row * Dv + jj), valid);
      let vj = select(0.0, ld_v(row * Dv + jj), valid);
      let a = exp(ld_g(row));
      let bt = ld_beta(row);
      let prevAt = (bh * (C + 1u) + sIdx) * col + jj;
      let nextAt = prevAt + col;
      var u = 0.0;
      var kd = 0.0;
      var dsp = 0.0;
      for (var i = 0u; i < ${DK}; i++) {
        dS[i] += scale * ld_q(kb + i) * doj;
        let sp = select(0.0, ld_sts(prevAt + i * Dv), valid);
        let ki = ld_k(kb + i);
        u += ki * sp;
        kd += ki * dS[i];
        dsp += dS[i] * sp;
      }
      let r = vj - a * u;
      let dr = bt * kd;
      let du = -a * dr;
      // Sum over the workgroup's columns: dq_t, dk_t (Dk each), dbeta_t and da.
      for (var ro = 0u; ro < (Dk + ${RC - 1}u) / ${RC}u; ro++) {
        for (var rr = 0u; rr < ${RC}u; rr++) {
          let i = ro * ${RC}u + rr;
          var xv = 0.0;
          var yv = 0.0;
          if (i < Dk && valid) {
            xv = scale * doj * ld_sts(nextAt + i * Dv);
            yv = bt * r * dS[i] + du * ld_sts(prevAt + i * Dv);
          }
          redX[rr * ${NT}u + lid] = xv;
          redY[rr * ${NT}u + lid] = yv;
        }
        workgroupBarrier();
        if (lid < ${2 * RC}u) {
          let rr = lid % ${RC}u;
          let i = ro * ${RC}u + rr;
          var acc = 0.0;
          if (lid < ${RC}u) { for (var m = 0u; m < ${NT}u; m++) { acc += redX[rr * ${NT}u + m]; } }
          else { for (var m = 0u; m < ${NT}u; m++) { acc += redY[rr * ${NT}u + m]; } }
          if (i < Dk) {
            if (lid < ${RC}u) { st_dqp((cb * BH * T + row) * Dk + i, acc); }
            else { st_dkp((cb * BH * T + row) * Dk + i, acc); }
          }
        }
        workgroupBarrier();
      }
      redS[lid] = select(0.0, kd * r, valid);
      redS[${NT}u + lid] = select(0.0, dsp - dr * u, valid);
      workgroupBarrier();
      if (lid < 2u) {
        var acc = 0.0;
        for (var m = 0u; m < ${NT}u; m++) { acc += redS[lid * ${NT}u + m]; }
        if (lid == 0u) { st_dbp(cb * BH * T + row, acc); } else { st_dgp(cb * BH * T + row, acc * a); }
      }
      workgroupBarrier();
      for (var i = 0u; i < ${DK}; i++) { dS[i] = a * dS[i] + ld_k(kb + i) * du; }
      if (valid) { st_dv(row * Dv + j, dr); }
    }
  }
  if (valid) { for (var i = 0u; i < ${DK}; i++) { st_ds(bh * col + i * Dv + j, dS[i]); } }
}`,
    inputs: ins.map((i) => i.binding),
    outputs: outs.map((o) => o.binding),
    uniforms,
    grid: b.grid1d(BH * s.nCB),
  })
  // Sum the column blocks' partial dq, dk, dg, dbeta into the outputs; dv and dstate are whole.
  const sumBlocks = (
    offset: number,
    blocks: number,
    n: number,
    like: TensorInfo,
    label: string,
  ): TensorInfo => {
    const out = b.allocData(n, like.dtype)
    const p = new Params()
    const at = p.array([blocks, n, offset])
    mapInto(
      b,
      {
        key: 'gdr-sum-blocks',
        label: `gatedDeltaRuleBackward (${label})`,
        inputs: [{ name: 'x', dtype: 'float32', binding: res }],
        outputs: [{ name: 'y', dtype: like.dtype }],
        n,
        params: p,
        body: `  var acc = 0.0;
  for (var c = 0u; c < P(${at}u); c++) { acc += ld_x(P(${at + 2}u) + c * P(${at + 1}u) + i); }
  r.y = acc;`,
      },
      [{ name: 'y', dtype: like.dtype, binding: out }],
    )
    return { dataId: out, shape: [...like.shape], dtype: like.dtype }
  }
  const dq = sumBlocks(at.dqp, s.nCB, rows * s.Dk, x.q, 'dq')
  const dk = sumBlocks(at.dkp, s.nCB, rows * s.Dk, x.k, 'dk')
  const dg = sumBlocks(at.dgp, s.nCB, rows, x.g, 'dg')
  const db = sumBlocks(at.dbp, s.nCB, rows, x.beta, 'dbeta')
  const dv = sumBlocks(at.dv, 1, rows * s.Dv, x.v, 'dv')
  const dstate = b.allocData(BH * col, 'float32')
  b.copy(res, at.ds * 4, dstate, 0, BH * col * 4)
  for (const t of [gb, scr, res]) b.releaseTemp(t)
  if (sinWords) b.releaseTemp(sin)
  return [dq, dk, dv, dg, db, { dataId: dstate, shape: [s.B, s.H, s.Dk, s.Dv], dtype: 'float32' }]
}

export function registerDeltaRuleKernels(name: string): void {
  registerCoreKernel<'gatedDeltaRule', WebGPUBackend>(
    'gatedDeltaRule',
    name,
    ({ inputs, attrs, backend: b }) => deltaRuleForward(b, inputs, attrs),
  )
  registerCoreKernel<'gatedDeltaRuleBackward', WebGPUBackend>(
    'gatedDeltaRuleBackward',
    name,
    ({ inputs, attrs, backend: b }) => deltaRuleBackward(b, inputs, attrs),
  )
}
