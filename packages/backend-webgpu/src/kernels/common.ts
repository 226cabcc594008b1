import type { DType, Shape, TensorInfo } from '@attnkit/core'
import { sizeOf } from '@attnkit/core'
import { type GpuBinding, GpuData, type WebGPUBackend } from '../backend.js'
import {
  codecPrelude,
  directStore,
  loadFn,
  storageDecl,
  storeFn,
  storeGroup,
  valueType,
} from '../wgsl/codec.js'
import { MATH_HELPERS } from '../wgsl/math.js'

/** Uniform words for a kernel: u32 values, with helpers for f32/i32 bit patterns and arrays. */
export class Params {
  readonly words: number[] = []

  u32(v: number): number {
    this.words.push(v >>> 0)
    return this.words.length - 1
  }

  i32(v: number): number {
    return this.u32(v | 0)
  }

  f32(v: number): number {
    F32[0] = v
    return this.u32(U32[0])
  }

  array(vs: readonly number[]): number {
    const at = this.words.length
    for (const v of vs) this.u32(v)
    return at
  }

  toArray(): Uint32Array {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4)
    const out = new Uint32Array(n)
    out.set(this.words)
    return out
  }

  /** WGSL declaring the uniform block at `binding` and accessors P (u32), PF (f32), PI (i32). */
  static decl(binding: number, words: number): string {
    const vecs = Math.max(1, Math.ceil(words / 4))
    return `struct Params { u: array<vec4<u32>, ${vecs}> }
@group(0) @binding(${binding}) var<uniform> params: Params;
fn P(k: u32) -> u32 { return params.u[k >> 2u][k & 3u]; }
fn PF(k: u32) -> f32 { return bitcast<f32>(P(k)); }
fn PI(k: u32) -> i32 { return bitcast<i32>(P(k)); }`
  }
}

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)

/** Storage of a kernel input: a tensor's data or a scratch binding with its dtype. */
export interface Operand {
  name: string
  dtype: DType
  binding: GpuBinding
}

export function operand(b: WebGPUBackend, name: string, t: TensorInfo): Operand {
  return { name, dtype: t.dtype, binding: b.data(t.dataId, `input '${name}'`) }
}

/** Declarations, loads and stores for a kernel's inputs (read) and outputs (read_write). */
export function bindingsWgsl(
  b: WebGPUBackend,
  inputs: readonly { name: string; dtype: DType }[],
  outputs: readonly { name: string; dtype: DType; atomic?: boolean }[],
  opts: { loadOutputs?: boolean } = {},
): string {
  const o = b.codec
  const lines: string[] = []
  inputs.forEach((x, i) => {
    lines.push(storageDecl(i, x.name, x.dtype, 'read', o))
    lines.push(loadFn(x.name, x.dtype, o))
  })
  outputs.forEach((x, i) => {
    if (x.atomic) {
      lines.push(
        `@group(0) @binding(${inputs.length + i}) var<storage, read_write> ${x.name}: array<atomic<u32>>;`,
      )
      return
    }
    lines.push(storageDecl(inputs.length + i, x.name, x.dtype, 'read_write', o))
    lines.push(storeFn(x.name, x.dtype, o))
    if (opts.loadOutputs) lines.push(loadFn(x.name, x.dtype, o))
  })
  return lines.join('\n')
}

/** Codec and maths helpers every generated shader starts with. */
export function prelude(b: WebGPUBackend, opts: { subgroups?: boolean } = {}): string {
  const enables = opts.subgroups && b.subgroupSize > 0 ? 'enable subgroups;\n' : ''
  return `${enables}${codecPrelude(b.codec)}\n${MATH_HELPERS}`
}

export const WG = 256

/** Linear invocation index for 1-D kernels launched with grid1d (x spills into y). */
export const LINEAR_MAIN_ARGS = `@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32`
export const LINEAR_INDEX = `let t = (wid.x + wid.y * nwg.x) * ${WG}u + lid;`

export interface MapOutput {
  name: string
  dtype: DType
}

export interface MapSpec {
  /** Identity of the generated source (kernel, op, dtypes, ranks, index modes). */
  key: string
  label: string
  inputs: readonly Operand[]
  outputs: readonly MapOutput[]
  /** Output elements. */
  n: number
  /**
   * WGSL statements for output element `i` (u32): read inputs with ld_<name>(index), uniform
   * words with P/PF/PI, and assign every output as `r.<name>` (its value type).
   */
  body: string
  params?: Params
  /** Extra WGSL (helper functions) placed before the kernel. */
  helpers?: string
  /**
   * An argument check the body makes with `flag()` (e.g. an index out of range); the next
   * read then throws this message.
   */
  flagMessage?: string
}

/**
 * An elementwise kernel: each output element computed independently by `body`. Outputs whose
 * dtype packs several elements per 32-bit word are written a whole word per thread.
 */
export function mapKernel(b: WebGPUBackend, spec: MapSpec, shape: Shape): TensorInfo[] {
  const outs = spec.outputs.map((o) => b.allocData(spec.n, o.dtype))
  mapInto(
    b,
    spec,
    outs.map((d, i) => ({ name: spec.outputs[i].name, dtype: spec.outputs[i].dtype, binding: d })),
  )
  return outs.map((d) => ({ dataId: d, shape: [...shape], dtype: d.dtype }))
}

/** Like mapKernel, writing into existing storage. */
export function mapInto(b: WebGPUBackend, spec: MapSpec, outputs: readonly Operand[]): void {
  const params = spec.params ?? new Params()
  const nIndex = params.u32(spec.n)
  const groups = outputs.map((o) => storeGroup(o.dtype, b.codec))
  const G = Math.max(1, ...groups)
  const threads = Math.ceil(spec.n / G)
  const flag = spec.flagMessage ? b.flagBinding(spec.flagMessage) : undefined
  const flagCode = flag ? params.u32(flag.code) : -1
  const uniforms = params.toArray()
  const nBound = spec.inputs.length + outputs.length + (flag ? 1 : 0)
  b.launch({
    key: `map\u0000${flag ? 'flag\u0000' : ''}${spec.key}\u0000${outputs.map((o) => o.dtype).join(',')}\u0000${spec.inputs.map((i) => i.dtype).join(',')}\u0000${uniforms.length}\u0000${nIndex}`,
    label: spec.label,
    wgsl: () => {
      const valsStruct = `struct Vals { ${outputs.map((o) => `${o.name}: ${valueType(o.dtype)}`).join(', ')} }`
      const compute = `fn compute(i: u32) -> Vals {\n  var r: Vals;\n${spec.body}\n  return r;\n}`
      let mainBody: string
      if (G === 1) {
        mainBody = `let i = t;\n  if (i >= n) { return; }\n  let r = compute(i);\n${outputs.map((o) => `  st_${o.name}(i, r.${o.name});`).join('\n')}`
      } else {
        const decls = outputs
          .map((o, k) => (groups[k] > 1 ? `  var a_${o.name}: array<${valueType(o.dtype)}, ${G}>;` : ''))
          .join('\n')
        const perElement = outputs
          .map((o, k) => (groups[k] > 1 ? `a_${o.name}[e] = r.${o.name};` : `st_${o.name}(i, r.${o.name});`))
          .join(' ')
        const words = outputs
          .map((o, k) => {
            const g = groups[k]
            if (g === 1) return ''
            const parts: string[] = []
            for (let w = 0; w < G / g; w++) {
              const items = Array.from({ length: g }, (_, e) => `a_${o.name}[${w * g + e}]`).join(', ')
              parts.push(
                `  if (base + ${w * g}u < n) { stw_${o.name}(base / ${g}u + ${w}u, array<${valueType(o.dtype)}, ${g}>(${items})); }`,
              )
            }
            return parts.join('\n')
          })
          .join('\n')
        mainBody = `let base = t * ${G}u;
  if (base >= n) { return; }
${decls}
  for (var e = 0u; e < ${G}u; e++) {
    let i = base + e;
    if (i < n) { let r = compute(i); ${perElement} }
  }
${words}`
      }
      return `${prelude(b)}
${Params.decl(nBound, uniforms.length)}
${bindingsWgsl(b, spec.inputs, outputs)}
${flag ? flagWgsl(spec.inputs.length + outputs.length, flagCode) : ''}
${spec.helpers ?? ''}
${valsStruct}
${compute}
@compute @workgroup_size(${WG})
fn main(${LINEAR_MAIN_ARGS}) {
  ${LINEAR_INDEX}
  let n = P(${nIndex}u);
  ${mainBody}
}`
    },
    inputs: spec.inputs.map((x) => x.binding),
    outputs: flag ? [...outputs.map((x) => x.binding), flag.binding] : outputs.map((x) => x.binding),
    uniforms,
    grid: b.grid1d(Math.ceil(threads / WG)),
  })
}

/** The argument-flag binding and `flag()`, which records uniform word `codeAt` as the error. */
export function flagWgsl(binding: number, codeAt: number): string {
  return `@group(0) @binding(${binding}) var<storage, read_write> flags: array<atomic<u32>>;
fn flag() { atomicMax(&flags[0], P(${codeAt}u)); }`
}

/**
 * WGSL computing, from flat index `index` over `shape`, the element offset of each named
 * operand with the given strides (0 where broadcast). Declares `var off_<name>: u32`. The rank
 * is read at run time and the uniform slots are fixed-size, so one pipeline serves all ranks.
 */
export function offsetsWgsl(
  params: Params,
  shape: readonly number[],
  strides: Record<string, readonly number[]>,
  index = 'i',
): string {
  const slot = Math.max(MAX_RANK, shape.length)
  const rankAt = params.u32(shape.length)
  const shapeAt = params.array(padTo(shape, slot))
  const names = Object.keys(strides)
  const at = names.map((n) => params.array(padTo(strides[n], slot)))
  const lines = names.map((n) => `  var off_${n} = 0u;`)
  lines.push(`  { var rem = ${index};`)
  lines.push(`    for (var d = i32(P(${rankAt}u)) - 1; d >= 0; d--) {`)
  lines.push(`      let du = u32(d); let dim = P(${shapeAt}u + du); let c = rem % dim; rem = rem / dim;`)
  for (let k = 0; k < names.length; k++) lines.push(`      off_${names[k]} += c * P(${at[k]}u + du);`)
  lines.push('    }', '  }')
  return lines.join('\n')
}

/** Uniform slots hold this many dims unless a tensor has more (then the slot grows, with its key). */
export const MAX_RANK = 8

function padTo(v: readonly number[], n: number): number[] {
  return [...v, ...new Array<number>(n - v.length).fill(0)]
}

/** Element strides of `shape` broadcast to `outShape` (0 on broadcast axes), aligned right. */
export function broadcastStridesFor(shape: Shape, outShape: Shape): number[] {
  const rank = outShape.length
  const strides = new Array<number>(rank).fill(0)
  let s = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = rank - shape.length + i
    strides[o] = shape[i] === 1 && outShape[o] !== 1 ? 0 : s
    s *= shape[i]
  }
  return strides
}

/**
 * Index mode of an operand in a map kernel: its elements line up with the output ('same'),
 * it is a single element ('scalar'), or it needs broadcast strides ('strided').
 */
export function indexMode(shape: Shape, outShape: Shape): 'same' | 'scalar' | 'strided' {
  const n = sizeOf(shape)
  if (n === 1) return 'scalar'
  if (n === sizeOf(outShape) && shape.length <= outShape.length) return 'same'
  return 'strided'
}

/**
 * Where a kernel that writes elements one at a time stores a result of `dtype`: directly when
 * the dtype allows single-element stores, else into a float32 scratch that `finish()` converts
 * (bfloat16, float16 without shader-f16, and bool pack several elements per word).
 */
export function stagedOutput(
  b: WebGPUBackend,
  shape: Shape,
  dtype: DType,
  name: string,
): { target: Operand; finish: () => TensorInfo } {
  const n = sizeOf(shape)
  if (directStore(dtype, b.codec)) {
    const data = b.allocData(n, dtype)
    return {
      target: { name, dtype, binding: data },
      finish: () => ({ dataId: data, shape: [...shape], dtype }),
    }
  }
  const scratch = b.temp(n * 4)
  return {
    target: { name, dtype: 'float32', binding: scratch },
    finish: () => {
      const out = convert(b, { name: 'x', dtype: 'float32', binding: scratch }, n, dtype)
      b.releaseTemp(scratch)
      return { dataId: out, shape: [...shape], dtype }
    },
  }
}

/** Converts `n` elements of an operand into new storage of `dtype` (value semantics of cast). */
export function convert(b: WebGPUBackend, x: Operand, n: number, dtype: DType): GpuData {
  const out = b.allocData(n, dtype)
  mapInto(
    b,
    {
      key: `convert`,
      label: `convert ${x.dtype}->${dtype}`,
      inputs: [{ ...x, name: 'x' }],
      outputs: [{ name: 'y', dtype }],
      n,
      body: `  r.y = ${castExpr('ld_x(i)', x.dtype, dtype)};`,
    },
    [{ name: 'y', dtype, binding: out }],
  )
  return out
}

/** WGSL converting a value of `from`'s value type to `to`'s, with the CPU reference's semantics. */
export function castExpr(v: string, from: DType, to: DType): string {
  const vf = valueType(from)
  const vt = valueType(to)
  const zero = vf === 'f32' ? '0.0' : vf === 'i32' ? '0i' : '0u'
  if (to === 'bool') return `select(0u, 1u, ${v} != ${zero})`
  if (from === 'bool') return vt === 'f32' ? `f32(${v})` : vt === 'i32' ? `i32(${v})` : v
  if (vf === vt) return v
  if (vt === 'f32') return `f32(${v})`
  if (vt === 'i32') return vf === 'u32' ? `bitcast<i32>(${v})` : `i32(trunc(${v}))`
  // to uint32: floats truncate toward zero and wrap like the CPU's `>>> 0`.
  return vf === 'i32' ? `bitcast<u32>(${v})` : `f32_to_u32_wrap(${v})`
}

export function isGpuData(x: unknown): x is GpuData {
  return x instanceof GpuData
}
