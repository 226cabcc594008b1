import { type RopeAttrs, registerCoreKernel } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { mapKernel, operand, Params } from './common.js'

/**
 * Rotation (cos, sin) tables for rope: for frequency f, level L in 0..3 and byte v, the angle
 * v * 256^L * f reduced mod 2 pi in float64 on the host. A position's angle is the sum over
 * its four bytes, so the shader combines four exact rotations instead of evaluating sin/cos
 * of p * f in f32 (which loses ~1e-4 rad at p ~ 4096).
 */
function ropeTable(base: number, rotaryDim: number): Float32Array {
  const half = rotaryDim / 2
  const t = new Float32Array(half * 4 * 256 * 2)
  for (let f = 0; f < half; f++) {
    const inv = base ** ((-2 * f) / rotaryDim)
    for (let L = 0; L < 4; L++) {
      for (let v = 0; v < 256; v++) {
        const theta = v * 256 ** L * inv
        const o = ((f * 4 + L) * 256 + v) * 2
        t[o] = Math.cos(theta)
        t[o + 1] = Math.sin(theta)
      }
    }
  }
  return t
}

export function registerConvRopeKernels(name: string): void {
  registerCoreKernel<'conv1d', WebGPUBackend>('conv1d', name, ({ inputs, attrs, backend: b }) => {
    const { x, weight, bias } = inputs
    const [B, T, cin] = x.shape
    const [cout, cinPG, K] = weight.shape
    const { dilation, padLeft, padRight, groups } = attrs
    const Tout = T + padLeft + padRight - dilation * (K - 1)
    const params = new Params()
    const at = params.array([T, cin, cout, cinPG, K, dilation, padLeft, cout / groups, Tout])
    const ins = [operand(b, 'x', x), operand(b, 'w', weight)]
    if (bias) ins.push(operand(b, 'bias', bias))
    const P = (k: number) => `P(${at + k}u)`
    return mapKernel(
      b,
      {
        key: `conv1d:${!!bias}`,
        label: 'conv1d',
        inputs: ins,
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: B * Tout * cout,
        params,
        body: `  let T = ${P(0)}; let cin = ${P(1)}; let cout = ${P(2)}; let cinPG = ${P(3)}; let K = ${P(4)};
  let co = i % cout;
  let t = (i / cout) % ${P(8)};
  let bb = i / (cout * ${P(8)});
  let g0 = (co / ${P(7)}) * cinPG;
  var s = ${bias ? 'ld_bias(co)' : '0.0'};
  for (var k = 0u; k < K; k++) {
    let ti = i32(t) - i32(${P(6)}) + i32(k * ${P(5)});
    if (ti < 0 || ti >= i32(T)) { continue; }
    let xo = (bb * T + u32(ti)) * cin + g0;
    let wo = co * cinPG * K + k;
    for (var c = 0u; c < cinPG; c++) { s += ld_w(wo + c * K) * ld_x(xo + c); }
  }
  r.y = s;`,
      },
      [B, Tout, cout],
    )[0]
  })

  registerCoreKernel<'conv1dBackwardInput', WebGPUBackend>(
    'conv1dBackwardInput',
    name,
    ({ inputs, attrs, backend: b }) => {
      const { dy, weight } = inputs
      const [B, Tout, cout] = dy.shape
      const [, cinPG, K] = weight.shape
      const { dilation, padLeft, groups, inputLength: T } = attrs
      const cin = cinPG * groups
      const params = new Params()
      const at = params.array([T, cin, cout, cinPG, K, dilation, padLeft, cout / groups, Tout])
      const P = (k: number) => `P(${at + k}u)`
      return mapKernel(
        b,
        {
          key: 'conv1dBackwardInput',
          label: 'conv1dBackwardInput',
          inputs: [operand(b, 'dy', dy), operand(b, 'w', weight)],
          outputs: [{ name: 'y', dtype: dy.dtype }],
          n: B * T * cin,
          params,
          body: `  let T = ${P(0)}; let cin = ${P(1)}; let cout = ${P(2)}; let cinPG = ${P(3)}; let K = ${P(4)};
  let coutPG = ${P(7)}; let Tout = ${P(8)};
  let ci = i % cin;
  let ti = (i / cin) % T;
  let bb = i / (cin * T);
  let g = ci / cinPG;
  let c = ci % cinPG;
  var s = 0.0;
  for (var k = 0u; k < K; k++) {
    let t = i32(ti) + i32(${P(6)}) - i32(k * ${P(5)});
    if (t < 0 || t >= i32(Tout)) { continue; }
    for (var q = 0u; q < coutPG; q++) {
      let co = g * coutPG + q;
      s += ld_dy((bb * Tout + u32(t)) * cout + co) * ld_w((co * cinPG + c) * K + k);
    }
  }
  r.y = s;`,
        },
        [B, T, cin],
      )[0]
    },
  )

  registerCoreKernel<'conv1dBackwardWeight', WebGPUBackend>(
    'conv1dBackwardWeight',
    name,
    ({ inputs, attrs, backend: b }) => {
      const { x, dy } = inputs
      const [B, T, cin] = x.shape
      const [, Tout, cout] = dy.shape
      const { dilation, padLeft, groups, kernelSize: K } = attrs
      const cinPG = cin / groups
      const params = new Params()
      const at = params.array([T, cin, cout, cinPG, K, dilation, padLeft, cout / groups, Tout, B])
      const P = (k: number) => `P(${at + k}u)`
      return mapKernel(
        b,
        {
          key: 'conv1dBackwardWeight',
          label: 'conv1dBackwardWeight',
          inputs: [operand(b, 'x', x), operand(b, 'dy', dy)],
          outputs: [{ name: 'y', dtype: x.dtype }],
          n: cout * cinPG * K,
          params,
          body: `  let T = ${P(0)}; let cin = ${P(1)}; let cout = ${P(2)}; let cinPG = ${P(3)}; let K = ${P(4)};
  let Tout = ${P(8)}; let B = ${P(9)};
  let k = i % K;
  let c = (i / K) % cinPG;
  let co = i / (K * cinPG);
  let g0 = (co / ${P(7)}) * cinPG;
  var s = 0.0;
  for (var bb = 0u; bb < B; bb++) {
    for (var t = 0u; t < Tout; t++) {
      let ti = i32(t) - i32(${P(6)}) + i32(k * ${P(5)});
      if (ti < 0 || ti >= i32(T)) { continue; }
      s += ld_dy((bb * Tout + t) * cout + co) * ld_x((bb * T + u32(ti)) * cin + g0 + c);
    }
  }
  r.y = s;`,
        },
        [cout, cinPG, K],
      )[0]
    },
  )

  registerCoreKernel<'rope', WebGPUBackend>('rope', name, ({ inputs, attrs, backend: b }) => {
    const { x, positions } = inputs
    const D = x.shape[3]
    const a: RopeAttrs = attrs
    const half = a.rotaryDim / 2
    const table = b.constantBuffer(`rope:${a.base}:${a.rotaryDim}`, () => ropeTable(a.base, a.rotaryDim))
    const params = new Params()
    const at = params.array([D, half])
    return mapKernel(
      b,
      {
        key: `rope:${a.inverse}`,
        label: 'rope',
        inputs: [
          operand(b, 'x', x),
          operand(b, 'pos', positions),
          { name: 'tab', dtype: 'float32', binding: table },
        ],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: x.shape.reduce((s, d) => s * d, 1),
        params,
        body: `  let D = P(${at}u);
  let half = P(${at + 1}u);
  let row = i / D;
  let j = i % D;
  if (j >= 2u * half) { r.y = ld_x(i); return r; }
  let f = j % half;
  let p = ld_pos(row);
  let ap = u32(abs(p));
  var c = 1.0;
  var s = 0.0;
  for (var L = 0u; L < 4u; L++) {
    let v = (ap >> (8u * L)) & 255u;
    if (v == 0u) { continue; }
    let o = ((f * 4u + L) * 256u + v) * 2u;
    let ec = ld_tab(o);
    let es = ld_tab(o + 1u);
    let c2 = c * ec - s * es;
    s = s * ec + c * es;
    c = c2;
  }
  if ((p < 0) != ${a.inverse}) { s = -s; }
  let base = row * D;
  if (j < half) {
    r.y = ld_x(base + j) * c - ld_x(base + j + half) * s;
  } else {
    r.y = ld_x(base + j) * c + ld_x(base + j - half) * s;
  }`,
      },
      x.shape,
    )[0]
  })
}
