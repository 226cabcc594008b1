import {
  allocHostArray,
  BackendError,
  bfloat16BitsToFloat32,
  type DType,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  type TypedArray,
} from '@attnkit/core'

/**
 * How each dtype lies in a GPU buffer. The bytes are the natural little-endian layout of the
 * dtype (what safetensors uses), whatever the shader sees: float16 is `array<f16>` with
 * shader-f16 and `array<u32>` holding two halves without it; bfloat16 is always two per u32;
 * bool is one byte per element, four per u32.
 */
export const GPU_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32', 'uint32', 'bool']

export function supportsGpuDType(dtype: DType): boolean {
  return GPU_DTYPES.includes(dtype)
}

export function elementBytes(dtype: DType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
    case 'uint32':
      return 4
    case 'float16':
    case 'bfloat16':
      return 2
    case 'bool':
      return 1
    default:
      throw new BackendError(`webgpu: dtype ${dtype} is not supported (float64 has no WGSL type)`)
  }
}

/** Elements of `dtype` that share one 32-bit word (the unit a shader writes without races). */
export function elementsPerWord(dtype: DType): number {
  return 4 / elementBytes(dtype)
}

/** Bytes a buffer for `n` elements needs: whole 32-bit words, at least one. */
export function bufferBytes(dtype: DType, n: number): number {
  return Math.max(4, Math.ceil((n * elementBytes(dtype)) / 4) * 4)
}

/** Host values (canonical array of the dtype) as the bytes the GPU buffer holds, padded to words. */
export function encodeHost(values: TypedArray, dtype: DType): Uint8Array {
  const n = values.length
  const bytes = new Uint8Array(bufferBytes(dtype, n))
  switch (dtype) {
    case 'float32':
      new Float32Array(bytes.buffer, 0, n).set(values)
      break
    case 'int32':
      new Int32Array(bytes.buffer, 0, n).set(values)
      break
    case 'uint32':
      new Uint32Array(bytes.buffer, 0, n).set(values)
      break
    case 'float16': {
      const h = new Uint16Array(bytes.buffer, 0, n)
      for (let i = 0; i < n; i++) h[i] = float32ToFloat16Bits(values[i])
      break
    }
    case 'bfloat16': {
      const h = new Uint16Array(bytes.buffer, 0, n)
      for (let i = 0; i < n; i++) h[i] = float32ToBfloat16Bits(values[i])
      break
    }
    case 'bool':
      for (let i = 0; i < n; i++) bytes[i] = values[i] ? 1 : 0
      break
    default:
      throw new BackendError(`webgpu: dtype ${dtype} is not supported`)
  }
  return bytes
}

/** GPU bytes back to the canonical host array of `dtype` (16-bit floats as float32). */
export function decodeHost(bytes: ArrayBuffer, dtype: DType, n: number): TypedArray {
  const out = allocHostArray(dtype, n)
  switch (dtype) {
    case 'float32':
    case 'int32':
    case 'uint32':
      out.set(
        dtype === 'float32'
          ? new Float32Array(bytes, 0, n)
          : dtype === 'int32'
            ? new Int32Array(bytes, 0, n)
            : new Uint32Array(bytes, 0, n),
      )
      break
    case 'float16': {
      const h = new Uint16Array(bytes, 0, n)
      for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32(h[i])
      break
    }
    case 'bfloat16': {
      const h = new Uint16Array(bytes, 0, n)
      for (let i = 0; i < n; i++) out[i] = bfloat16BitsToFloat32(h[i])
      break
    }
    case 'bool': {
      const b = new Uint8Array(bytes, 0, n)
      for (let i = 0; i < n; i++) out[i] = b[i] ? 1 : 0
      break
    }
    default:
      throw new BackendError(`webgpu: dtype ${dtype} is not supported`)
  }
  return out
}
