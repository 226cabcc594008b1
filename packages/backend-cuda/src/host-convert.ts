import {
  allocHostArray,
  byteSize,
  type DType,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  type TypedArray,
} from '@attnkit/core'

/** C type of each storable dtype, as the kernels spell it. */
export const CTYPE: Record<Exclude<DType, 'float64'>, string> = {
  float32: 'float',
  float16: '__half',
  bfloat16: '__nv_bfloat16',
  int32: 'int',
  uint32: 'unsigned int',
  bool: 'unsigned char',
}

/** Kind code the kernels branch on: 0 float-like, 1 int32, 2 uint32, 3 bool. */
export const KIND: Record<Exclude<DType, 'float64'>, number> = {
  float32: 0,
  float16: 0,
  bfloat16: 0,
  int32: 1,
  uint32: 2,
  bool: 3,
}

export function ctype(dtype: DType): string {
  if (dtype === 'float64') throw new Error('float64 has no CUDA storage here')
  return CTYPE[dtype]
}

export function kind(dtype: DType): number {
  if (dtype === 'float64') throw new Error('float64 has no CUDA storage here')
  return KIND[dtype]
}

/** Device bytes of n elements. */
export function deviceBytes(dtype: DType, n: number): number {
  return byteSize(dtype) * n
}

/** float32 -> bfloat16 bits (round to nearest even, NaN kept quiet), vectorised over a Uint32 view. */
function toBf16(src: Float32Array, out: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0; i < u.length; i++) {
    const b = u[i]
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) out[i] = ((b >>> 16) | 0x40) & 0xffff
    else out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff
  }
}

/** The bytes a tensor of `dtype` occupies on the device, from its canonical host array. */
export function toDeviceLayout(values: TypedArray, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32':
      return values instanceof Float32Array ? values : Float32Array.from(values)
    case 'bfloat16': {
      const src = values instanceof Float32Array ? values : Float32Array.from(values)
      const out = new Uint16Array(src.length)
      toBf16(src, out)
      return out
    }
    case 'float16': {
      const out = new Uint16Array(values.length)
      for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i])
      return out
    }
    case 'int32':
      return values instanceof Int32Array ? values : Int32Array.from(values)
    case 'uint32':
      return values instanceof Uint32Array ? values : Uint32Array.from(values)
    case 'bool': {
      if (values instanceof Uint8Array) return values
      const out = new Uint8Array(values.length)
      for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0
      return out
    }
    default:
      throw new Error(`no device layout for ${dtype}`)
  }
}

/** A host buffer to receive a tensor's device bytes. */
export function deviceLayoutBuffer(dtype: DType, n: number): ArrayBufferView {
  switch (dtype) {
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(n)
    default:
      return allocHostArray(dtype, n)
  }
}

/** The canonical host array (16-bit floats widened to float32) from device bytes. */
export function fromDeviceLayout(raw: ArrayBufferView, dtype: DType, n: number): TypedArray {
  if (dtype === 'bfloat16') {
    const src = raw as Uint16Array
    const out = new Float32Array(n)
    const u = new Uint32Array(out.buffer)
    for (let i = 0; i < n; i++) u[i] = src[i] << 16
    return out
  }
  if (dtype === 'float16') {
    const src = raw as Uint16Array
    const out = new Float32Array(n)
    // core's decode is a lookup in its table of every half value.
    for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32(src[i])
    return out
  }
  return raw as TypedArray
}

/** The bit pattern that fills `dtype` elements with `value` (for cuMemsetD8/16/32). */
export function fillPattern(dtype: DType, value: number): { bits: number; width: 1 | 2 | 4 } {
  switch (dtype) {
    case 'float32': {
      const f = new Float32Array([value])
      return { bits: new Uint32Array(f.buffer)[0], width: 4 }
    }
    case 'bfloat16': {
      const out = new Uint16Array(1)
      toBf16(new Float32Array([value]), out)
      return { bits: out[0], width: 2 }
    }
    case 'float16':
      return { bits: float32ToFloat16Bits(value), width: 2 }
    case 'int32':
      return { bits: (value | 0) >>> 0, width: 4 }
    case 'uint32':
      return { bits: value >>> 0, width: 4 }
    case 'bool':
      return { bits: value ? 1 : 0, width: 1 }
    default:
      throw new Error(`no fill pattern for ${dtype}`)
  }
}
