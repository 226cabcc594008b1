/**
 * Element types. `float64` exists for the CPU reference backend (finite-difference gradient
 * checks, float64 reference maths); GPU backends reject it with a clear error.
 */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int32' | 'uint32' | 'bool'

export const DTYPES: readonly DType[] = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int32',
  'uint32',
  'bool',
]
export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'float64']

/** The array type a tensor reads back as. 16-bit floats read back as float32 (exact). */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array

export type DataFor<D extends DType> = D extends 'float64'
  ? Float64Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'uint32'
      ? Uint32Array
      : D extends 'bool'
        ? Uint8Array
        : Float32Array

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64'
}

export function isInteger(dtype: DType): boolean {
  return dtype === 'int32' || dtype === 'uint32'
}

/** Bytes one element occupies in its natural storage (what safetensors and GPU backends use). */
export function byteSize(dtype: DType): number {
  switch (dtype) {
    case 'float64':
      return 8
    case 'float32':
    case 'int32':
    case 'uint32':
      return 4
    case 'float16':
    case 'bfloat16':
      return 2
    case 'bool':
      return 1
  }
}

/** Allocates the canonical host array for `dtype` (16-bit floats are held as float32). */
export function allocHostArray(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float64':
      return new Float64Array(size)
    case 'float32':
    case 'float16':
    case 'bfloat16':
      return new Float32Array(size)
    case 'int32':
      return new Int32Array(size)
    case 'uint32':
      return new Uint32Array(size)
    case 'bool':
      return new Uint8Array(size)
  }
}

/** Converts any numeric array-like into the canonical host array of `dtype`, rounding 16-bit floats. */
export function toHostArray(dtype: DType, values: ArrayLike<number>): TypedArray {
  const out = allocHostArray(dtype, values.length)
  if (dtype === 'bool') {
    for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0
  } else {
    out.set(values)
  }
  roundInPlace(dtype, out)
  return out
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** float32 -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0)
    return ((bits >>> 16) | 0x0040) & 0xffff
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1)
  return (rounded >>> 16) & 0xffff
}

export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16
  return f32[0]
}

/** float32 -> IEEE half bits, round to nearest even, with subnormals, overflow to infinity. */
export function float32ToFloat16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  let mant = bits & 0x007fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x0200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x00800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    const rest = mant & ((1 << shift) - 1)
    let h = mant >>> shift
    if (rest > half || (rest === half && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++
  return sign | h
}

/** IEEE half bits -> value, from the definition (what the lookup table holds). */
function decodeFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exp = (bits >>> 10) & 0x1f
  const mant = bits & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

// Every half value, by bits: decoding is a load instead of a power (hundreds of millions of
// values pass through here when a 16-bit model's weights are placed on a device).
let float16Values: Float32Array | undefined

function float16Table(): Float32Array {
  if (!float16Values) {
    float16Values = new Float32Array(0x10000)
    for (let b = 0; b < 0x10000; b++) float16Values[b] = decodeFloat16Bits(b)
  }
  return float16Values
}

export function float16BitsToFloat32(bits: number): number {
  return (float16Values ?? float16Table())[bits & 0xffff]
}

/** Rounds the values of a float32-held 16-bit tensor to the precision of its dtype. */
export function roundInPlace(dtype: DType, values: TypedArray): void {
  if (dtype === 'bfloat16') {
    for (let i = 0; i < values.length; i++)
      values[i] = bfloat16BitsToFloat32(float32ToBfloat16Bits(values[i]))
  } else if (dtype === 'float16') {
    const table = float16Table()
    for (let i = 0; i < values.length; i++) values[i] = table[float32ToFloat16Bits(values[i])]
  }
}

/** Rounds a single number to what `dtype` can hold. */
export function roundScalar(dtype: DType, x: number): number {
  switch (dtype) {
    case 'float64':
      return x
    case 'float32':
      return Math.fround(x)
    case 'bfloat16':
      return bfloat16BitsToFloat32(float32ToBfloat16Bits(x))
    case 'float16':
      return float16BitsToFloat32(float32ToFloat16Bits(x))
    case 'int32':
      return x | 0
    case 'uint32':
      return x >>> 0
    case 'bool':
      return x ? 1 : 0
  }
}

/** Relative tolerance for comparing results of `dtype` against a float64 reference. */
export function defaultTolerance(dtype: DType): { rtol: number; atol: number } {
  switch (dtype) {
    case 'float64':
      return { rtol: 1e-10, atol: 1e-12 }
    case 'float32':
      return { rtol: 2e-4, atol: 1e-5 }
    case 'float16':
      return { rtol: 1e-2, atol: 1e-3 }
    case 'bfloat16':
      return { rtol: 4e-2, atol: 1e-2 }
    default:
      return { rtol: 0, atol: 0 }
  }
}
