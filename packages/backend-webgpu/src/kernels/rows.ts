import { registerCoreKernel, sizeOf, type TensorInfo } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { wgReduceWgsl } from '../wgsl/workgroup-reduce.js'
import { bindingsWgsl, type Operand, operand, Params, prelude, stagedOutput } from './common.js'

type RowKind = 'softmax' | 'logSoftmax' | 'rmsNorm' | 'layerNorm'

/**
 * Last-axis kernels: one workgroup per row, the row's statistics reduced across the workgroup
 * (subgroups when available), accumulating in f32.
 */
function rowKernel(
  b: WebGPUBackend,
  kind: RowKind,
  x: TensorInfo,
  extra: { weight?: TensorInfo; bias?: TensorInfo; eps?: number },
): TensorInfo {
  const D = x.shape[x.shape.length - 1] ?? 1
  const rows = D === 0 ? 0 : sizeOf(x.shape) / D
  const wg = D <= 128 ? 64 : 256
  const out = stagedOutput(b, x.shape, x.dtype, 'y')
  const ins: Operand[] = [operand(b, 'x', x)]
  if (extra.weight) ins.push(operand(b, 'w', extra.weight))
  if (extra.bias) ins.push(operand(b, 'bb', extra.bias))
  const params = new Params()
  const dAt = params.u32(D)
  const epsAt = params.f32(extra.eps ?? 0)
  const uniforms = params.toArray()
  const w = extra.weight ? ' * ld_w(j)' : ''
  const bias = extra.bias ? ' + ld_bb(j)' : ''
  let body: string
  switch (kind) {
    case 'softmax':
    case 'logSoftmax':
      body = `  var m = -inf_f();
  for (var j = lid; j < D; j += WGS) { m = max(m, ld_x(base + j)); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var j = lid; j < D; j += WGS) { s += exp(ld_x(base + j) - m); }
  s = wg_sum(s, lid);
  ${
    kind === 'softmax'
      ? 'let inv = 1.0 / s;\n  for (var j = lid; j < D; j += WGS) { st_y(base + j, exp(ld_x(base + j) - m) * inv); }'
      : 'let lse = m + log(s);\n  for (var j = lid; j < D; j += WGS) { st_y(base + j, ld_x(base + j) - lse); }'
  }`
      break
    case 'rmsNorm':
      body = `  var ss = 0.0;
  for (var j = lid; j < D; j += WGS) { let v = ld_x(base + j); ss += v * v; }
  ss = wg_sum(ss, lid);
  let inv = 1.0 / sqrt(ss / f32(D) + PF(${epsAt}u));
  for (var j = lid; j < D; j += WGS) { st_y(base + j, ld_x(base + j) * inv${w}); }`
      break
    case 'layerNorm':
      body = `  var s = 0.0;
  for (var j = lid; j < D; j += WGS) { s += ld_x(base + j); }
  let mu = wg_sum(s, lid) / f32(D);
  var v2 = 0.0;
  for (var j = lid; j < D; j += WGS) { let d = ld_x(base + j) - mu; v2 += d * d; }
  let inv = 1.0 / sqrt(wg_sum(v2, lid) / f32(D) + PF(${epsAt}u));
  for (var j = lid; j < D; j += WGS) { st_y(base + j, (ld_x(base + j) - mu) * inv${w}${bias}); }`
      break
  }
  b.launch({
    key: `row:${kind}:${wg}:${ins.map((i) => `${i.name}/${i.dtype}`).join(',')}:${out.target.dtype}`,
    label: kind,
    wgsl: () => `${prelude(b, { subgroups: true })}
${Params.decl(ins.length + 1, uniforms.length)}
${bindingsWgsl(b, ins, [out.target])}
${wgReduceWgsl(wg, b.subgroupSize, ['sum', 'max'])}
const WGS = ${wg}u;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  let D = P(${dAt}u);
  let base = row * D;
${body}
}`,
    inputs: ins.map((i) => i.binding),
    outputs: [out.target.binding],
    uniforms,
    grid: b.grid1d(rows),
  })
  return out.finish()
}

export function registerRowKernels(name: string): void {
  registerCoreKernel<'softmax', WebGPUBackend>('softmax', name, ({ inputs, backend: b }) =>
    rowKernel(b, 'softmax', inputs.x, {}),
  )
  registerCoreKernel<'logSoftmax', WebGPUBackend>('logSoftmax', name, ({ inputs, backend: b }) =>
    rowKernel(b, 'logSoftmax', inputs.x, {}),
  )
  registerCoreKernel<'rmsNorm', WebGPUBackend>('rmsNorm', name, ({ inputs, attrs, backend: b }) =>
    rowKernel(b, 'rmsNorm', inputs.x, { weight: inputs.weight, eps: attrs.eps }),
  )
  registerCoreKernel<'layerNorm', WebGPUBackend>('layerNorm', name, ({ inputs, attrs, backend: b }) =>
    rowKernel(b, 'layerNorm', inputs.x, { weight: inputs.weight, bias: inputs.bias, eps: attrs.eps }),
  )
}
