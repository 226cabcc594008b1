import { registerCoreKernel, roundScalar, sizeOf, stridesOf, type TensorInfo } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { valueType } from '../wgsl/codec.js'
import {
  bindingsWgsl,
  castExpr,
  convert,
  flagWgsl,
  mapInto,
  mapKernel,
  offsetsWgsl,
  operand,
  Params,
  prelude,
  stagedOutput,
  WG,
} from './common.js'

export function registerLayoutKernels(name: string): void {
  registerCoreKernel<'transpose', WebGPUBackend>('transpose', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const outShape = attrs.perm.map((p) => x.shape[p])
    const inStrides = stridesOf(x.shape)
    const params = new Params()
    const offsets = offsetsWgsl(params, outShape, { x: attrs.perm.map((p) => inStrides[p]) })
    return mapKernel(
      b,
      {
        key: 'transpose',
        label: 'transpose',
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(outShape),
        params,
        body: `${offsets}\n  r.y = ld_x(off_x);`,
      },
      outShape,
    )[0]
  })

  registerCoreKernel<'slice', WebGPUBackend>('slice', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const strides = stridesOf(x.shape)
    const base = attrs.begin.reduce((s, v, i) => s + v * strides[i], 0)
    const params = new Params()
    const offsets = offsetsWgsl(params, attrs.size, { x: strides })
    const baseAt = params.u32(base)
    return mapKernel(
      b,
      {
        key: 'slice',
        label: 'slice',
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(attrs.size),
        params,
        body: `${offsets}\n  r.y = ld_x(P(${baseAt}u) + off_x);`,
      },
      attrs.size,
    )[0]
  })

  registerCoreKernel<'pad', WebGPUBackend>('pad', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const outShape = x.shape.map((d, i) => d + attrs.paddings[i][0] + attrs.paddings[i][1])
    const rank = outShape.length
    const params = new Params()
    const outAt = params.array(outShape)
    const inAt = params.array(x.shape)
    const beforeAt = params.array(attrs.paddings.map((p) => p[0]))
    const vt = valueType(x.dtype)
    const v = roundScalar(x.dtype, attrs.value)
    const valueAt = vt === 'f32' ? params.f32(v) : params.u32(v)
    const value = vt === 'f32' ? `PF(${valueAt}u)` : vt === 'i32' ? `PI(${valueAt}u)` : `P(${valueAt}u)`
    const lines = ['  var rem = i;', '  var off = 0u;', '  var mul = 1u;', '  var inside = true;']
    for (let d = rank - 1; d >= 0; d--) {
      lines.push(
        `  { let c = i32(rem % P(${outAt + d}u)) - i32(P(${beforeAt + d}u)); rem = rem / P(${outAt + d}u);`,
        `    if (c < 0 || c >= i32(P(${inAt + d}u))) { inside = false; } else { off += u32(c) * mul; }`,
        `    mul *= P(${inAt + d}u); }`,
      )
    }
    lines.push(`  if (inside) { r.y = ld_x(off); } else { r.y = ${value}; }`)
    return mapKernel(
      b,
      {
        key: `pad:${rank}`,
        label: 'pad',
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(outShape),
        params,
        body: lines.join('\n'),
      },
      outShape,
    )[0]
  })

  // One dispatch per input, each copying its block into the output at its offset on the axis.
  registerCoreKernel<'concat', WebGPUBackend>('concat', name, ({ inputs, attrs, backend: b }) => {
    const xs = inputs.xs
    const a = attrs.axis
    const first = xs[0]
    const outShape = [...first.shape]
    outShape[a] = xs.reduce((s, x) => s + x.shape[a], 0)
    const inner = sizeOf(first.shape.slice(a + 1))
    const out = stagedOutput(b, outShape, first.dtype, 'y')
    let offset = 0
    for (const x of xs) {
      const n = sizeOf(x.shape)
      const params = new Params()
      const lenAt = params.u32(x.shape[a] * inner)
      const outLenAt = params.u32(outShape[a] * inner)
      const offAt = params.u32(offset * inner)
      const nAt = params.u32(n)
      const uniforms = params.toArray()
      const xo = operand(b, 'x', x)
      if (n > 0)
        b.launch({
          key: `concat:${x.dtype}:${out.target.dtype}`,
          label: 'concat',
          wgsl: () => `${prelude(b)}
${Params.decl(2, uniforms.length)}
${bindingsWgsl(b, [xo], [out.target])}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= P(${nAt}u)) { return; }
  let len = P(${lenAt}u);
  st_y((i / len) * P(${outLenAt}u) + P(${offAt}u) + i % len, ${castExpr('ld_x(i)', x.dtype, out.target.dtype)});
}`,
          inputs: [xo.binding],
          outputs: [out.target.binding],
          uniforms,
          grid: b.grid1d(Math.ceil(n / WG)),
        })
      offset += x.shape[a]
    }
    return out.finish()
  })

  registerCoreKernel<'gather', WebGPUBackend>('gather', name, ({ inputs, attrs, backend: b }) => {
    const { x, indices } = inputs
    const a = attrs.axis
    const len = x.shape[a]
    const inner = sizeOf(x.shape.slice(a + 1))
    const nIdx = sizeOf(indices.shape)
    const outShape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)]
    const params = new Params()
    const lenAt = params.u32(len)
    const innerAt = params.u32(inner)
    const nIdxAt = params.u32(nIdx)
    return mapKernel(
      b,
      {
        key: 'gather',
        label: 'gather',
        inputs: [operand(b, 'x', x), operand(b, 'idx', indices)],
        outputs: [{ name: 'y', dtype: x.dtype }],
        n: sizeOf(outShape),
        params,
        flagMessage: `gather: argument 'indices' has a value outside [0, ${len})`,
        body: `  let inner = P(${innerAt}u);
  let nIdx = P(${nIdxAt}u);
  let len = P(${lenAt}u);
  let k = i % inner;
  let j = (i / inner) % nIdx;
  let o = i / (inner * nIdx);
  let ix = ld_idx(j);
  if (ix < 0 || u32(ix) >= len) { flag(); return r; }
  r.y = ld_x((o * len + u32(ix)) * inner + k);`,
      },
      outShape,
    )[0]
  })

  registerCoreKernel<'takeAlongAxis', WebGPUBackend>(
    'takeAlongAxis',
    name,
    ({ inputs, attrs, backend: b }) => {
      const { x, indices } = inputs
      const a = attrs.axis
      const xStrides = stridesOf(x.shape)
      const params = new Params()
      const offsets = offsetsWgsl(params, indices.shape, { x: xStrides.map((s, i) => (i === a ? 0 : s)) })
      const axisStrideAt = params.u32(xStrides[a])
      const lenAt = params.u32(x.shape[a])
      return mapKernel(
        b,
        {
          key: 'takeAlongAxis',
          label: 'takeAlongAxis',
          inputs: [operand(b, 'x', x), operand(b, 'idx', indices)],
          outputs: [{ name: 'y', dtype: x.dtype }],
          n: sizeOf(indices.shape),
          params,
          flagMessage: `takeAlongAxis: argument 'indices' has a value outside [0, ${x.shape[a]})`,
          body: `${offsets}
  let ix = ld_idx(i);
  if (ix < 0 || u32(ix) >= P(${lenAt}u)) { flag(); return r; }
  r.y = ld_x(off_x + u32(ix) * P(${axisStrideAt}u));`,
        },
        indices.shape,
      )[0]
    },
  )

  registerCoreKernel<'scatterAdd', WebGPUBackend>('scatterAdd', name, ({ inputs, attrs, backend: b }) =>
    scatterAdd(b, inputs.x, inputs.indices, inputs.updates, attrs.axis),
  )
}

/**
 * out = x, then out[..idx..] += updates: float sums through a compare-and-swap loop on the
 * f32 bits (WGSL has no float atomics), integers with atomicAdd.
 */
function scatterAdd(
  b: WebGPUBackend,
  x: TensorInfo,
  indices: TensorInfo,
  updates: TensorInfo,
  a: number,
): TensorInfo {
  const n = sizeOf(x.shape)
  const isInt = x.dtype === 'int32' || x.dtype === 'uint32'
  const accDType = isInt ? x.dtype : 'float32'
  const direct = accDType === x.dtype
  const acc = direct ? b.allocData(n, x.dtype) : undefined
  const scratch = direct ? undefined : b.temp(n * 4)
  const accBinding = acc ?? scratch!
  mapInto(
    b,
    {
      key: 'scatter-init',
      label: 'scatterAdd init',
      inputs: [operand(b, 'x', x)],
      outputs: [{ name: 'y', dtype: accDType }],
      n,
      body: '  r.y = ld_x(i);',
    },
    [{ name: 'y', dtype: accDType, binding: accBinding }],
  )
  const xStrides = stridesOf(x.shape)
  const params = new Params()
  const offsets = offsetsWgsl(params, indices.shape, { x: xStrides.map((s, i) => (i === a ? 0 : s)) })
  const axisStrideAt = params.u32(xStrides[a])
  const lenAt = params.u32(x.shape[a])
  const nAt = params.u32(sizeOf(indices.shape))
  const flag = b.flagBinding(`scatterAdd: argument 'indices' has a value outside [0, ${x.shape[a]})`)
  const codeAt = params.u32(flag.code)
  const uniforms = params.toArray()
  const ins = [operand(b, 'idx', indices), operand(b, 'u', updates)]
  const add = isInt
    ? `atomicAdd(&acc[dst], ${x.dtype === 'int32' ? 'bitcast<u32>(ld_u(i))' : 'ld_u(i)'});`
    : `let v = ld_u(i);
  var old = atomicLoad(&acc[dst]);
  loop {
    let res = atomicCompareExchangeWeak(&acc[dst], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (res.exchanged) { break; }
    old = res.old_value;
  }`
  const nUpd = sizeOf(indices.shape)
  if (nUpd > 0)
    b.launch({
      key: `scatterAdd:${updates.dtype}:${isInt}:${uniforms.length}`,
      label: 'scatterAdd',
      wgsl: () => `${prelude(b)}
${Params.decl(4, uniforms.length)}
${bindingsWgsl(b, ins, [])}
@group(0) @binding(2) var<storage, read_write> acc: array<atomic<u32>>;
${flagWgsl(3, codeAt)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= P(${nAt}u)) { return; }
${offsets}
  let ix = ld_idx(i);
  if (ix < 0 || u32(ix) >= P(${lenAt}u)) { flag(); return; }
  let dst = off_x + u32(ix) * P(${axisStrideAt}u);
  ${add}
}`,
      inputs: ins.map((o) => o.binding),
      outputs: [accBinding, flag.binding],
      uniforms,
      grid: b.grid1d(Math.ceil(nUpd / WG)),
    })
  if (acc) return { dataId: acc, shape: [...x.shape], dtype: x.dtype }
  const out = convert(b, { name: 'x', dtype: 'float32', binding: scratch! }, n, x.dtype)
  b.releaseTemp(scratch!)
  return { dataId: out, shape: [...x.shape], dtype: x.dtype }
}
