import type { DType } from '@attnkit/core'

/**
 * WGSL for reading and writing tensors of every dtype. Kernels compute in a "value type"
 * (f32 for every float dtype, i32, u32, and u32 0/1 for bool) and reach storage only through
 * the functions generated here, so one kernel body serves all dtypes.
 */

export interface CodecOptions {
  /** shader-f16 is enabled: float16 tensors are `array<f16>`. */
  f16: boolean
}

export type ValueType = 'f32' | 'i32' | 'u32'

export function valueType(dtype: DType): ValueType {
  if (dtype === 'int32') return 'i32'
  if (dtype === 'uint32' || dtype === 'bool') return 'u32'
  return 'f32'
}

/** WGSL element type of the storage array. */
export function storageElement(dtype: DType, o: CodecOptions): string {
  switch (dtype) {
    case 'float32':
      return 'f32'
    case 'float16':
      return o.f16 ? 'f16' : 'u32'
    case 'int32':
      return 'i32'
    default:
      return 'u32'
  }
}

/** Whether a shader can store one element without touching its neighbours' bytes. */
export function directStore(dtype: DType, o: CodecOptions): boolean {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'uint32' || (dtype === 'float16' && o.f16)
}

/** Elements one thread writes as a unit: 1 for direct stores, else the elements of a word. */
export function storeGroup(dtype: DType, o: CodecOptions): number {
  if (directStore(dtype, o)) return 1
  return dtype === 'bool' ? 4 : 2
}

export function storageDecl(
  binding: number,
  name: string,
  dtype: DType,
  access: 'read' | 'read_write',
  o: CodecOptions,
): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${storageElement(dtype, o)}>;`
}

/** `fn ld_<name>(i: u32) -> <value type>`: element i of the tensor. */
export function loadFn(name: string, dtype: DType, o: CodecOptions): string {
  const head = `fn ld_${name}(i: u32) -> ${valueType(dtype)}`
  switch (dtype) {
    case 'float32':
    case 'int32':
    case 'uint32':
      return `${head} { return ${name}[i]; }`
    case 'float16':
      return o.f16
        ? `${head} { return f32(${name}[i]); }`
        : `${head} { return f16_to_f32((${name}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }`
    case 'bfloat16':
      return `${head} { let w = ${name}[i >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }`
    case 'bool':
      return `${head} { return select(0u, 1u, ((${name}[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu) != 0u); }`
    default:
      throw new Error(`no WGSL load for ${dtype}`)
  }
}

/** The bits of a value of `dtype` inside its word (16 or 8 low bits), for packed stores. */
function bitsExpr(dtype: DType, v: string): string {
  if (dtype === 'bool') return `select(0u, 1u, ${v} != 0u)`
  return dtype === 'bfloat16' ? `bf16_bits(${v})` : `f16_bits(${v})`
}

/**
 * `fn st_<name>(i: u32, v)` for direct stores, or `fn stw_<name>(w: u32, v: array<T, G>)`
 * writing word w from G values for packed dtypes.
 */
export function storeFn(name: string, dtype: DType, o: CodecOptions): string {
  const vt = valueType(dtype)
  if (directStore(dtype, o)) {
    const conv = dtype === 'float16' ? `bitcast<vec2<f16>>(f16_bits(v))[0]` : 'v'
    return `fn st_${name}(i: u32, v: ${vt}) { ${name}[i] = ${conv}; }`
  }
  const g = storeGroup(dtype, o)
  const shift = 32 / g
  const parts = Array.from({ length: g }, (_, e) => `(${bitsExpr(dtype, `v[${e}]`)} << ${e * shift}u)`)
  return `fn stw_${name}(w: u32, v: array<${vt}, ${g}>) { ${name}[w] = ${parts.join(' | ')}; }`
}

/** Helpers the codec functions use; include once per shader. */
export function codecPrelude(o: CodecOptions): string {
  return `${o.f16 ? 'enable f16;\n' : ''}
// float32 -> IEEE half bits, round to nearest even, subnormals, overflow to infinity.
fn f16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let ex = (b >> 23u) & 0xffu;
  var mant = b & 0x007fffffu;
  if (ex == 0xffu) { return sign | 0x7c00u | select(0u, 0x0200u, mant != 0u); }
  let e = i32(ex) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x00800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = mant & ((1u << shift) - 1u);
    var h = mant >> shift;
    if (rest > half || (rest == half && (h & 1u) == 1u)) { h = h + 1u; }
    return sign | h;
  }
  var h = (u32(e) << 10u) | (mant >> 13u);
  let rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) { h = h + 1u; }
  return sign | h;
}
// IEEE half bits -> float32, exactly (subnormals included).
fn f16_to_f32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let ex = (h >> 10u) & 0x1fu;
  let mant = h & 0x3ffu;
  if (ex == 0u) { return select(1.0, -1.0, sign != 0u) * f32(mant) * 5.9604644775390625e-8; }
  if (ex == 31u) { return bitcast<f32>(sign | 0x7f800000u | (mant << 13u)); }
  return bitcast<f32>(sign | ((ex + 112u) << 23u) | (mant << 13u));
}
// float32 -> bfloat16 bits, round to nearest even; NaN stays NaN.
fn bf16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u) { return ((b >> 16u) | 0x0040u) & 0xffffu; }
  return ((b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u) & 0xffffu;
}
`
}

/** Rounds an f32 to what `dtype` holds (identity for float32), for results kept in registers. */
export function roundToDType(dtype: DType, v: string): string {
  if (dtype === 'float16') return `f16_to_f32(f16_bits(${v}))`
  if (dtype === 'bfloat16') return `bitcast<f32>(bf16_bits(${v}) << 16u)`
  return v
}
