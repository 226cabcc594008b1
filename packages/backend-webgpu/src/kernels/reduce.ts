import {
  ArgumentError,
  type DType,
  type ReduceOp,
  registerCoreKernel,
  sizeOf,
  stridesOf,
} from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { valueType } from '../wgsl/codec.js'
import { wgReduceWgsl } from '../wgsl/workgroup-reduce.js'
import {
  bindingsWgsl,
  LINEAR_MAIN_ARGS,
  MAX_RANK,
  mapKernel,
  type Operand,
  operand,
  Params,
  prelude,
  stagedOutput,
  WG,
} from './common.js'

/**
 * A reduction's shape with neighbouring kept axes merged and neighbouring reduced axes merged:
 * kept [dims, strides] and reduced [dims, strides] in the input's element strides.
 */
export function splitAxes(
  shape: readonly number[],
  axes: readonly number[],
): { kept: [number, number][]; reduced: [number, number][] } {
  const strides = stridesOf(shape)
  const kept: [number, number][] = []
  const reduced: [number, number][] = []
  let prev: boolean | undefined
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue
    const isReduced = axes.includes(d)
    const list = isReduced ? reduced : kept
    if (prev === isReduced && list.length) {
      // Row-major: the previous axis of the same kind is outer; merge into it.
      const last = list[list.length - 1]
      last[0] *= shape[d]
      last[1] = strides[d]
    } else list.push([shape[d], strides[d]])
    prev = isReduced
  }
  return { kept, reduced }
}

/**
 * WGSL adding to `off` the offset of index `idx` decomposed over the (dim, stride) pairs at
 * uniform word `at` (MAX_RANK pairs, `count` of them used, the count itself at `countAt`).
 */
export function decomposeWgsl(countAt: number, at: number, idx: string, off: string): string {
  return `  { var rem = ${idx};
    for (var d = i32(P(${countAt}u)) - 1; d >= 0; d--) {
      let du = u32(d);
      let dim = P(${at}u + 2u * du);
      ${off} += (rem % dim) * P(${at}u + 2u * du + 1u);
      rem = rem / dim;
    }
  }`
}

function pairs(list: [number, number][]): number[] {
  const out = list.flat()
  while (out.length < 2 * MAX_RANK) out.push(1, 0)
  return out
}

const REDUCE_OPS: ReduceOp[] = ['sum', 'mean', 'max', 'min']

function identity(op: ReduceOp, dtype: DType): string {
  const vt = valueType(dtype)
  if (op === 'sum' || op === 'mean') return vt === 'f32' ? '0.0' : vt === 'i32' ? '0i' : '0u'
  if (vt === 'f32') return op === 'max' ? '-inf_f()' : 'inf_f()'
  if (vt === 'i32') return op === 'max' ? 'i32(-2147483647 - 1)' : '2147483647i'
  return op === 'max' ? '0u' : '4294967295u'
}

function combine(op: ReduceOp, dtype: DType, acc: string, v: string): string {
  if (op === 'sum' || op === 'mean') return `${acc} + ${v}`
  // NaN wins, as in the CPU reference.
  if (valueType(dtype) === 'f32') return `select(${op}(${acc}, ${v}), ${v}, ${v} != ${v})`
  return `${op}(${acc}, ${v})`
}

function finish(op: ReduceOp, dtype: DType, acc: string, count: string): string {
  if (op !== 'mean') return acc
  const vt = valueType(dtype)
  return vt === 'f32' ? `${acc} / f32(${count})` : `${vt}(trunc(f32(${acc}) / f32(${count})))`
}

export function registerReduceKernels(name: string): void {
  registerCoreKernel<'reduce', WebGPUBackend>('reduce', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const { axes, op, keepDims } = attrs
    const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    const outShape = keepDims ? keptShape : x.shape.filter((_, i) => !axes.includes(i))
    const nOut = sizeOf(outShape)
    const R = axes.reduce((c, a) => c * x.shape[a], 1)
    const { kept, reduced } = splitAxes(x.shape, axes)
    if (kept.length > MAX_RANK || reduced.length > MAX_RANK)
      throw new ArgumentError(`reduce: webgpu handles up to ${MAX_RANK} kept and reduced axis groups`)
    const params = new Params()
    const keptCountAt = params.u32(kept.length)
    const redCountAt = params.u32(reduced.length)
    const keptAt = params.array(pairs(kept))
    const redAt = params.array(pairs(reduced))
    const rAt = params.u32(R)
    const opAt = params.u32(REDUCE_OPS.indexOf(op))
    const vt = valueType(x.dtype)
    if (R <= 512 || nOut >= 8192 || vt !== 'f32') {
      // One invocation per output element.
      const loop = (o: ReduceOp) => `var acc: ${vt} = ${identity(o, x.dtype)};
      for (var ri = 0u; ri < R; ri++) {
        var off = base;
  ${decomposeWgsl(redCountAt, redAt, 'ri', 'off')}
        let v = ld_x(off);
        acc = ${combine(o, x.dtype, 'acc', 'v')};
      }
      r.y = ${finish(o, x.dtype, 'acc', 'R')};`
      return mapKernel(
        b,
        {
          key: 'reduce-thread',
          label: `reduce ${op}`,
          inputs: [operand(b, 'x', x)],
          outputs: [{ name: 'y', dtype: x.dtype }],
          n: nOut,
          params,
          body: `  var base = 0u;
${decomposeWgsl(keptCountAt, keptAt, 'i', 'base')}
  let R = P(${rAt}u);
  switch (P(${opAt}u)) {
${REDUCE_OPS.map((o, k) => `    case ${k}u: {\n      ${loop(o)}\n    }`).join('\n')}
    default: {}
  }`,
        },
        outShape,
      )[0]
    }
    // One workgroup per output element for long reductions.
    const out = stagedOutput(b, outShape, x.dtype, 'y')
    const xs: Operand = operand(b, 'x', x)
    const wgOp = op === 'mean' ? 'sum' : op
    const uniforms = params.toArray()
    b.launch({
      key: `reduce-wg:${op}:${x.dtype}:${out.target.dtype}:${uniforms.length}`,
      label: `reduce ${op}`,
      wgsl: () => `${prelude(b, { subgroups: true })}
${Params.decl(2, uniforms.length)}
${bindingsWgsl(b, [xs], [out.target])}
${wgReduceWgsl(WG, b.subgroupSize, [wgOp])}
@compute @workgroup_size(${WG})
fn main(${LINEAR_MAIN_ARGS}) {
  let o = wid.x + wid.y * nwg.x;
  var base = 0u;
${decomposeWgsl(keptCountAt, keptAt, 'o', 'base')}
  var acc = ${identity(op, x.dtype)};
  let R = P(${rAt}u);
  for (var r = lid; r < R; r += ${WG}u) {
    var off = base;
${decomposeWgsl(redCountAt, redAt, 'r', 'off')}
    let v = ld_x(off);
    acc = ${combine(op, x.dtype, 'acc', 'v')};
  }
  let total = wg_${wgOp}(acc, lid);
  if (lid == 0u) { st_y(o, ${finish(op, x.dtype, 'total', 'R')}); }
}`,
      inputs: [xs.binding],
      outputs: [out.target.binding],
      uniforms,
      grid: b.grid1d(nOut),
    })
    return out.finish()
  })

  registerCoreKernel<'argReduce', WebGPUBackend>('argReduce', name, ({ inputs, attrs, backend: b }) => {
    const { x } = inputs
    const a = attrs.axis
    const len = x.shape[a]
    const inner = sizeOf(x.shape.slice(a + 1))
    const outShape = x.shape.filter((_, i) => i !== a)
    const params = new Params()
    const lenAt = params.u32(len)
    const innerAt = params.u32(inner)
    const better = attrs.op === 'argmax' ? '>' : '<'
    const nanCheck = valueType(x.dtype) === 'f32' ? ' || (v != v && best == best)' : ''
    return mapKernel(
      b,
      {
        key: `argReduce:${attrs.op}`,
        label: attrs.op,
        inputs: [operand(b, 'x', x)],
        outputs: [{ name: 'y', dtype: 'int32' }],
        n: sizeOf(outShape),
        params,
        body: `  let len = P(${lenAt}u);
  let inner = P(${innerAt}u);
  let o = i / inner;
  let k = i % inner;
  var best = ld_x(o * len * inner + k);
  var at = 0i;
  for (var j = 1u; j < len; j++) {
    let v = ld_x((o * len + j) * inner + k);
    if (v ${better} best${nanCheck}) { best = v; at = i32(j); }
  }
  r.y = at;`,
      },
      outShape,
    )[0]
  })
}
