import { type DeltaRuleAttrs, registerCoreKernel, type TensorInfo } from '@attnkit/core'
import type { GpuBinding, WebGPUBackend } from '../backend.js'
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
  return p
}

const HEADER = `let BH = P(0u); let T = P(1u); let Dk = P(2u); let Dv = P(3u); let nCB = P(4u); let C = P(5u);
  let scale = PF(6u);
  let blk = wid.x + wid.y * nwg.x;
  let bh = blk / nCB;
  let j = (blk % nCB) * ${NT}u + lid;
  let valid = j < Dv;
  let jj = min(j, Dv - 1u);`

/** WGSL: one recurrence step on the register column S (k, v at step t of head bh). */
function stepWgsl(Dk: number): string {
  return `fn step(S: ptr<function, array<f32, ${Dk}>>, bh: u32, t: u32, vj: f32) {
  let T = P(1u);
  let a = exp(ld_g(bh * T + t));
  let bt = ld_beta(bh * T + t);
  let kb = (bh * T + t) * ${Dk}u;
  var u = 0.0;
  for (var i = 0u; i < ${Dk}u; i++) { u += ld_k(kb + i) * (*S)[i]; }
  let c = bt * (vj - a * u);
  for (var i = 0u; i < ${Dk}u; i++) { (*S)[i] = a * (*S)[i] + c * ld_k(kb + i); }
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
  const Dk = s.Dk
  b.launch({
    key: `gdr-fwd:${Dk}:${!!x.state}:${ins.map((i) => i.dtype).join(',')}:${out.target.dtype}:${uniforms.length}`,
    label: 'gatedDeltaRule',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + 2, uniforms.length)}
${bindingsWgsl(b, ins, outs)}
${stepWgsl(Dk)}
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${HEADER}
  var S: array<f32, ${Dk}>;
  ${x.state ? `if (valid) { for (var i = 0u; i < ${Dk}u; i++) { S[i] = ld_s0((bh * Dk + i) * Dv + j); } }` : ''}
  for (var t = 0u; t < T; t++) {
    let vj = select(0.0, ld_v((bh * T + t) * Dv + jj), valid);
    step(&S, bh, t, vj);
    var o = 0.0;
    let qb = (bh * T + t) * ${Dk}u;
    for (var i = 0u; i < ${Dk}u; i++) { o += ld_q(qb + i) * S[i]; }
    if (valid) { st_o((bh * T + t) * Dv + j, scale * o); }
  }
  if (valid) { for (var i = 0u; i < ${Dk}u; i++) { st_sf((bh * Dk + i) * Dv + j, S[i]); } }
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
  const Dk = s.Dk
  const col = Dk * s.Dv
  const ckpt = b.temp(BH * nChunks * col * 4)
  const states = b.temp(BH * (C + 1) * col * 4)
  const rows = BH * s.T
  const dqP = b.temp(s.nCB * rows * Dk * 4)
  const dkP = b.temp(s.nCB * rows * Dk * 4)
  const dgP = b.temp(s.nCB * rows * 4)
  const dbP = b.temp(s.nCB * rows * 4)
  const dv = stagedOutput(b, x.v.shape, x.v.dtype, 'dv')
  const dstate = b.allocData(BH * col, 'float32')
  const ins: Operand[] = [
    operand(b, 'q', x.q),
    operand(b, 'k', x.k),
    operand(b, 'v', x.v),
    operand(b, 'g', x.g),
    operand(b, 'beta', x.beta),
    operand(b, 'dO', x.dout),
  ]
  if (x.state) ins.push(operand(b, 's0', x.state))
  if (x.dFinalState) ins.push(operand(b, 'dsf', x.dFinalState))
  const f32 = (name: string, binding: GpuBinding): Operand => ({ name, dtype: 'float32', binding })
  const outs: Operand[] = [
    f32('ckp', ckpt),
    f32('sts', states),
    f32('dqp', dqP),
    f32('dkp', dkP),
    f32('dgp', dgP),
    f32('dbp', dbP),
    dv.target,
    f32('ds', dstate),
  ]
  const params = commonParams(s, { ...attrs, chunkSize: C })
  const nChunksAt = params.u32(nChunks)
  const uniforms = params.toArray()
  const RC = Math.min(16, Dk)
  const rounds = Math.ceil(Dk / RC)
  b.launch({
    key: `gdr-bwd:${Dk}:${!!x.state}:${!!x.dFinalState}:${ins.map((i) => i.dtype).join(',')}:${dv.target.dtype}:${uniforms.length}`,
    label: 'gatedDeltaRuleBackward',
    wgsl: () => `${prelude(b)}
${Params.decl(ins.length + outs.length, uniforms.length)}
${bindingsWgsl(b, ins, outs, { loadOutputs: true })}
${stepWgsl(Dk)}
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
  ${x.state ? `if (valid) { for (var i = 0u; i < ${Dk}u; i++) { S[i] = ld_s0(bh * col + i * Dv + j); } }` : ''}
  for (var t = 0u; t < T; t++) {
    if (t % C == 0u && valid) {
      for (var i = 0u; i < ${Dk}u; i++) { st_ckp((bh * nChunks + t / C) * col + i * Dv + j, S[i]); }
    }
    step(&S, bh, t, select(0.0, ld_v((bh * T + t) * Dv + jj), valid));
  }
  var dS: array<f32, ${Dk}>;
  ${x.dFinalState ? `if (valid) { for (var i = 0u; i < ${Dk}u; i++) { dS[i] = ld_dsf(bh * col + i * Dv + j); } }` : ''}
  for (var ci = i32(nChunks) - 1; ci >= 0; ci--) {
    let c = u32(ci);
    let t0 = c * C;
    let n = min(T, t0 + C) - t0;
    // States before each step of the chunk (states[n] is the state after it).
    for (var i = 0u; i < ${Dk}u; i++) { S[i] = select(0.0, ld_ckp((bh * nChunks + c) * col + i * Dv + jj), valid); }
    for (var sIdx = 0u; sIdx < n; sIdx++) {
      if (valid) { for (var i = 0u; i < ${Dk}u; i++) { st_sts((bh * (C + 1u) + sIdx) * col + i * Dv + j, S[i]); } }
      step(&S, bh, t0 + sIdx, select(0.0, ld_v((bh * T + t0 + sIdx) * Dv + jj), valid));
    }
    if (valid) { for (var i = 0u; i < ${Dk}u; i++) { st_sts((bh * (C + 1u) + n) * col + i * Dv + j, S[i]); } }
    for (var si = i32(n) - 1; si >= 0; si--) {
      let sIdx = u32(si);
      let t = t0 + sIdx;
      let row = bh * T + t;
      let kb = row * ${Dk}u;
      let doj = select(0.0, ld_dO(row * Dv + jj), valid);
      let vj = select(0.0, ld_v(row * Dv + jj), valid);
      let a = exp(ld_g(row));
      let bt = ld_beta(row);
      let prevAt = (bh * (C + 1u) + sIdx) * col + jj;
      let nextAt = prevAt + col;
      var u = 0.0;
      var kd = 0.0;
      var dsp = 0.0;
      for (var i = 0u; i < ${Dk}u; i++) {
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
      for (var ro = 0u; ro < ${rounds}u; ro++) {
        for (var rr = 0u; rr < ${RC}u; rr++) {
          let i = ro * ${RC}u + rr;
          var xv = 0.0;
          var yv = 0.0;
          if (i < ${Dk}u && valid) {
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
          if (i < ${Dk}u) {
            if (lid < ${RC}u) { st_dqp((cb * BH * T + row) * ${Dk}u + i, acc); }
            else { st_dkp((cb * BH * T + row) * ${Dk}u + i, acc); }
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
      for (var i = 0u; i < ${Dk}u; i++) { dS[i] = a * dS[i] + ld_k(kb + i) * du; }
      if (valid) { st_dv(row * Dv + j, dr); }
    }
  }
  if (valid) { for (var i = 0u; i < ${Dk}u; i++) { st_ds(bh * col + i * Dv + j, dS[i]); } }
}`,
    inputs: ins.map((i) => i.binding),
    outputs: outs.map((o) => o.binding),
    uniforms,
    grid: b.grid1d(BH * s.nCB),
  })
  // Sum the column blocks' partial dq, dk, dg, dbeta into the outputs.
  const sumBlocks = (partial: GpuBinding, n: number, like: TensorInfo, label: string): TensorInfo => {
    const out = b.allocData(n, like.dtype)
    const p = new Params()
    const at = p.array([s.nCB, n])
    mapInto(
      b,
      {
        key: 'gdr-sum-blocks',
        label: `gatedDeltaRuleBackward (${label})`,
        inputs: [f32('x', partial)],
        outputs: [{ name: 'y', dtype: like.dtype }],
        n,
        params: p,
        body: `  var acc = 0.0;
  for (var c = 0u; c < P(${at}u); c++) { acc += ld_x(c * P(${at + 1}u) + i); }
  r.y = acc;`,
      },
      [{ name: 'y', dtype: like.dtype, binding: out }],
    )
    return { dataId: out, shape: [...like.shape], dtype: like.dtype }
  }
  const dq = sumBlocks(dqP, rows * Dk, x.q, 'dq')
  const dk = sumBlocks(dkP, rows * Dk, x.k, 'dk')
  const dg = sumBlocks(dgP, rows, x.g, 'dg')
  const db = sumBlocks(dbP, rows, x.beta, 'dbeta')
  for (const t of [ckpt, states, dqP, dkP, dgP, dbP]) b.releaseTemp(t)
  return [dq, dk, dv.finish(), dg, db, { dataId: dstate, shape: [s.B, s.H, Dk, s.Dv], dtype: 'float32' }]
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
