/**
 * safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?},
 * then the raw little-endian data, offsets relative to the end of the header.
 */
import type { Backend } from './backend.js'
import {
  allocHostArray,
  bfloat16BitsToFloat32,
  byteSize,
  type DType,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  type TypedArray,
} from './dtype.js'
import { ENGINE } from './engine.js'
import { AttnkitError } from './errors.js'
import { sizeOf } from './shape.js'
import type { Tensor } from './tensor.js'

export class SafetensorsError extends AttnkitError {
  override name = 'SafetensorsError'
}

const TO_FORMAT: Record<DType, string> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int32: 'I32',
  uint32: 'U32',
  bool: 'BOOL',
}
const FROM_FORMAT: Record<string, DType> = Object.fromEntries(
  Object.entries(TO_FORMAT).map(([k, v]) => [v, k as DType]),
)

export interface HostTensor {
  dtype: DType
  shape: number[]
  /** Canonical host values (16-bit floats decoded to float32). */
  values: TypedArray
}

export interface ParsedSafetensors {
  tensors: Map<string, HostTensor>
  metadata: Record<string, string>
}

/** Parses a safetensors byte buffer into host arrays, validating the header against the data. */
export function parseSafetensors(bytes: Uint8Array): ParsedSafetensors {
  if (bytes.byteLength < 8)
    throw new SafetensorsError(
      `safetensors: file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`,
    )
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLen = Number(view.getBigUint64(0, true))
  if (headerLen > bytes.byteLength - 8) {
    throw new SafetensorsError(
      `safetensors: header length ${headerLen} exceeds the file (${bytes.byteLength - 8} bytes after it)`,
    )
  }
  let header: Record<string, unknown>
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)))
  } catch (e) {
    throw new SafetensorsError(`safetensors: header is not valid JSON (${(e as Error).message})`)
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new SafetensorsError('safetensors: header must be a JSON object')
  const dataStart = 8 + headerLen
  const dataLen = bytes.byteLength - dataStart
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>
  const entries: [string, { dtype: DType; shape: number[]; begin: number; end: number }][] = []
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    const dtype = FROM_FORMAT[String(e.dtype)]
    if (!dtype)
      throw new SafetensorsError(
        `safetensors: tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(FROM_FORMAT).join(', ')})`,
      )
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new SafetensorsError(
        `safetensors: tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`,
      )
    }
    const offs = e.data_offsets
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      offs.some((o) => !Number.isInteger(o) || o < 0) ||
      offs[1] < offs[0]
    ) {
      throw new SafetensorsError(
        `safetensors: tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`,
      )
    }
    const expected = sizeOf(e.shape as number[]) * byteSize(dtype)
    if (offs[1] - offs[0] !== expected) {
      throw new SafetensorsError(
        `safetensors: tensor '${name}' ${dtype} [${e.shape}] needs ${expected} bytes, data_offsets span ${offs[1] - offs[0]}`,
      )
    }
    if (offs[1] > dataLen)
      throw new SafetensorsError(
        `safetensors: tensor '${name}' ends at byte ${offs[1]} beyond the data (${dataLen} bytes)`,
      )
    entries.push([name, { dtype, shape: e.shape as number[], begin: offs[0], end: offs[1] }])
  }
  // The format requires the buffers to tile the data section with no holes or overlaps.
  const sorted = [...entries].sort((a, b) => a[1].begin - b[1].begin)
  let cursor = 0
  for (const [name, e] of sorted) {
    if (e.begin !== cursor)
      throw new SafetensorsError(
        `safetensors: tensor '${name}' starts at ${e.begin}, expected ${cursor} (holes or overlaps in the data)`,
      )
    cursor = e.end
  }
  if (cursor !== dataLen)
    throw new SafetensorsError(
      `safetensors: tensors cover ${cursor} bytes but the data section has ${dataLen}`,
    )
  const tensors = new Map<string, HostTensor>()
  for (const [name, e] of entries) {
    tensors.set(name, {
      dtype: e.dtype,
      shape: e.shape,
      values: decode(e.dtype, bytes, dataStart + e.begin, sizeOf(e.shape)),
    })
  }
  return { tensors, metadata }
}

function decode(dtype: DType, bytes: Uint8Array, offset: number, n: number): TypedArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, n * byteSize(dtype))
  const out = allocHostArray(dtype, n)
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'float64':
        out[i] = view.getFloat64(i * 8, true)
        break
      case 'float32':
        out[i] = view.getFloat32(i * 4, true)
        break
      case 'float16':
        out[i] = float16BitsToFloat32(view.getUint16(i * 2, true))
        break
      case 'bfloat16':
        out[i] = bfloat16BitsToFloat32(view.getUint16(i * 2, true))
        break
      case 'int32':
        out[i] = view.getInt32(i * 4, true)
        break
      case 'uint32':
        out[i] = view.getUint32(i * 4, true)
        break
      case 'bool':
        out[i] = view.getUint8(i) ? 1 : 0
        break
    }
  }
  return out
}

function encode(dtype: DType, values: ArrayLike<number>, view: DataView, offset: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    switch (dtype) {
      case 'float64':
        view.setFloat64(offset + i * 8, v, true)
        break
      case 'float32':
        view.setFloat32(offset + i * 4, v, true)
        break
      case 'float16':
        view.setUint16(offset + i * 2, float32ToFloat16Bits(v), true)
        break
      case 'bfloat16':
        view.setUint16(offset + i * 2, float32ToBfloat16Bits(v), true)
        break
      case 'int32':
        view.setInt32(offset + i * 4, v, true)
        break
      case 'uint32':
        view.setUint32(offset + i * 4, v, true)
        break
      case 'bool':
        view.setUint8(offset + i, v ? 1 : 0)
        break
    }
  }
}

/** Serialises host tensors (sorted by name) with optional string metadata. */
export function serializeHostTensors(
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors))
  const names = [...map.keys()].sort()
  const header: Record<string, unknown> = {}
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata
  let offset = 0
  for (const name of names) {
    const t = map.get(name)!
    const n = sizeOf(t.shape) * byteSize(t.dtype)
    header[name] = { dtype: TO_FORMAT[t.dtype], shape: t.shape, data_offsets: [offset, offset + n] }
    offset += n
  }
  let json = JSON.stringify(header)
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + headerBytes.length + offset)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let cursor = 8 + headerBytes.length
  for (const name of names) {
    const t = map.get(name)!
    encode(t.dtype, t.values, view, cursor)
    cursor += sizeOf(t.shape) * byteSize(t.dtype)
  }
  return out
}

/** Reads tensors back from their backends and serialises them. */
export async function serializeSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const host = new Map<string, HostTensor>()
  for (const [name, t] of Object.entries(tensors))
    host.set(name, { dtype: t.dtype, shape: [...t.shape], values: await t.data() })
  return serializeHostTensors(host, metadata)
}

/** Parses a safetensors buffer into tensors on `backend` (the active one by default). */
export function loadSafetensors(
  bytes: Uint8Array,
  opts: { backend?: Backend } = {},
): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const parsed = parseSafetensors(bytes)
  const tensors: Record<string, Tensor> = {}
  for (const [name, t] of parsed.tensors)
    tensors[name] = ENGINE.fromHost(t.values, t.shape, t.dtype, opts.backend)
  return { tensors, metadata: parsed.metadata }
}

/** Node only: reads a .safetensors file. */
export async function readSafetensorsFile(path: string, opts: { backend?: Backend } = {}) {
  const { readFile } = await import('node:fs/promises')
  return loadSafetensors(new Uint8Array(await readFile(path)), opts)
}

/** Node only: writes tensors to a .safetensors file. */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { writeFile } = await import('node:fs/promises')
  await writeFile(path, await serializeSafetensors(tensors, metadata))
}
