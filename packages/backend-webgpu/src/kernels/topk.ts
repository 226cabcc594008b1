import { registerCoreKernel, sizeOf } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { valueType } from '../wgsl/codec.js'
import { bindingsWgsl, operand, Params, prelude, stagedOutput, WG } from './common.js'

/**
 * Top-k along the last axis by rank: each invocation takes one element, counts the elements
 * of its row that order before it (larger, or equal with a lower index; NaN first when
 * largest, as the CPU reference does), and writes itself at that rank when it is below k.
 * Ranks are unique, so every output slot is written exactly once, with no sort and no atomics.
 */
export function registerTopkKernel(name: string): void {
  registerCoreKernel<'topk', WebGPUBackend>('topk', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const d = x.shape[x.shape.length - 1]
    const rows = d === 0 ? 0 : sizeOf(x.shape) / d
    const { k, largest } = attrs
    const outShape = [...x.shape.slice(0, -1), k]
    const values = stagedOutput(b, outShape, x.dtype, 'vals')
    const indices = b.allocData(rows * k, 'int32')
    const params = new Params()
    const dAt = params.u32(d)
    const kAt = params.u32(k)
    const nAt = params.u32(rows * d)
    const uniforms = params.toArray()
    const xo = operand(b, 'x', x)
    const isFloat = valueType(x.dtype) === 'f32'
    const key = isFloat
      ? `fn key(v: f32) -> f32 { return select(v, ${largest ? 'inf_f()' : '-inf_f()'}, v != v); }`
      : `fn key(v: ${valueType(x.dtype)}) -> ${valueType(x.dtype)} { return v; }`
    const before = largest ? '>' : '<'
    if (rows * d > 0)
      b.launch({
        key: `topk:${largest}:${x.dtype}:${values.target.dtype}`,
        label: 'topk',
        wgsl: () => `${prelude(b)}
${Params.decl(3, uniforms.length)}
${bindingsWgsl(b, [xo], [values.target, { name: 'idx', dtype: 'int32' }])}
${key}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= P(${nAt}u)) { return; }
  let d = P(${dAt}u);
  let k = P(${kAt}u);
  let row = i / d;
  let j = i % d;
  let base = row * d;
  let v = ld_x(i);
  let kv = key(v);
  var rank = 0u;
  for (var m = 0u; m < d; m++) {
    let km = key(ld_x(base + m));
    if (km ${before} kv || (km == kv && m < j)) { rank++; }
  }
  if (rank < k) {
    st_vals(row * k + rank, v);
    st_idx(row * k + rank, i32(j));
  }
}`,
        inputs: [xo.binding],
        outputs: [values.target.binding, indices],
        uniforms,
        grid: b.grid1d(Math.ceil((rows * d) / WG)),
      })
    return [values.finish(), { dataId: indices, shape: outShape, dtype: 'int32' }]
  })
}
