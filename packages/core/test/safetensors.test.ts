import { describe, expect, it } from 'vitest'
import {
  loadSafetensors,
  memory,
  parseSafetensors,
  SafetensorsError,
  serializeHostTensors,
  serializeSafetensors,
  tensor,
} from '../src/index.js'

/** Builds a safetensors file by hand, byte by byte, from the format spec. */
function handBuilt(header: object, data: number[], pad = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad))
  const out = new Uint8Array(8 + json.length + data.length)
  // 8-byte little-endian header length.
  let n = json.length
  for (let i = 0; i < 8; i++) {
    out[i] = n & 0xff
    n = Math.floor(n / 256)
  }
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

describe('safetensors', () => {
  it('reads every dtype from hand-built bytes', () => {
    const data = [
      // F32 [2]: 1.5 = 0x3fc00000, -2 = 0xc0000000 (little-endian)
      0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0,
      // F16 [2]: 1.0 = 0x3c00, -0.5 = 0xb800
      0x00, 0x3c, 0x00, 0xb8,
      // BF16 [2]: 3.0 = 0x4040, 0.15625 = 0x3e20
      0x40, 0x40, 0x20, 0x3e,
      // I32 [1]: -7
      0xf9, 0xff, 0xff, 0xff,
      // U32 [1]: 4000000000 = 0xee6b2800
      0x00, 0x28, 0x6b, 0xee,
      // BOOL [3]
      0x01, 0x00, 0x01,
      // F64 [1]: 0.1 = 0x3fb999999999999a
      0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f,
    ]
    const header = {
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      h: { dtype: 'F16', shape: [2, 1], data_offsets: [8, 12] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [12, 16] },
      i: { dtype: 'I32', shape: [], data_offsets: [16, 20] },
      u: { dtype: 'U32', shape: [1], data_offsets: [20, 24] },
      m: { dtype: 'BOOL', shape: [3], data_offsets: [24, 27] },
      d: { dtype: 'F64', shape: [1], data_offsets: [27, 35] },
    }
    const parsed = parseSafetensors(handBuilt(header, data, 3))
    expect(parsed.metadata).toEqual({ format: 'pt' })
    const get = (k: string) => parsed.tensors.get(k)!
    expect([...get('a').values]).toEqual([1.5, -2])
    expect(get('h').shape).toEqual([2, 1])
    expect([...get('h').values]).toEqual([1, -0.5])
    expect([...get('b').values]).toEqual([3, 0.15625])
    expect(get('i').shape).toEqual([])
    expect([...get('i').values]).toEqual([-7])
    expect([...get('u').values]).toEqual([4000000000])
    expect([...get('m').values]).toEqual([1, 0, 1])
    expect(get('d').values[0]).toBe(0.1)
  })

  it('writes the bytes the spec prescribes', () => {
    const bytes = serializeHostTensors(
      { w: { dtype: 'bfloat16', shape: [2], values: new Float32Array([3, 0.15625]) } },
      { by: 'attnkit' },
    )
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect((8 + headerLen) % 8).toBe(0)
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)))
    expect(header).toEqual({
      __metadata__: { by: 'attnkit' },
      w: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] },
    })
    expect([...bytes.subarray(8 + headerLen)]).toEqual([0x40, 0x40, 0x20, 0x3e])
  })

  it('round-trips tensors of every dtype through a backend', async () => {
    const before = memory().liveTensors
    const src = {
      f32: tensor([
        [1.25, -3],
        [0.5, 7],
      ]),
      f16: tensor([0.1, 65504, -2e-5], [3], 'float16'),
      bf16: tensor([1e30, -0.3], [2], 'bfloat16'),
      i32: tensor([-5, 6], [2], 'int32'),
      u32: tensor([1, 4294967295], [2], 'uint32'),
      b: tensor([1, 0, 0, 1], [4], 'bool'),
      f64: tensor([Math.PI], [1], 'float64'),
    }
    const bytes = await serializeSafetensors(src)
    const { tensors } = loadSafetensors(bytes)
    for (const [k, t] of Object.entries(src)) {
      expect(tensors[k].dtype).toBe(t.dtype)
      expect(tensors[k].shape).toEqual(t.shape)
      expect([...tensors[k].dataSync()]).toEqual([...t.dataSync()])
    }
    for (const t of [...Object.values(src), ...Object.values(tensors)]) t.dispose()
    expect(memory().liveTensors).toBe(before)
  })

  it('rejects malformed files with a clear error', () => {
    const ok = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }
    expect(() => parseSafetensors(new Uint8Array(4))).toThrow(SafetensorsError)
    expect(() =>
      parseSafetensors(handBuilt({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, [0, 0, 0, 0])),
    ).toThrow(/needs 8 bytes/)
    expect(() =>
      parseSafetensors(
        handBuilt({ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0)),
      ),
    ).toThrow(/unsupported dtype/)
    expect(() => parseSafetensors(handBuilt(ok, [0, 0, 0, 0, 0]))).toThrow(/data section has 5/)
    expect(() =>
      parseSafetensors(
        handBuilt(
          {
            a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
            b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          new Array(8).fill(0),
        ),
      ),
    ).toThrow(/holes or overlaps/)
    const bad = handBuilt(ok, [0, 0, 0, 0])
    bad[8] = 0x7b + 1
    expect(() => parseSafetensors(bad)).toThrow(/not valid JSON/)
    const long = handBuilt(ok, [0, 0, 0, 0])
    long[0] = 0xff
    long[1] = 0xff
    expect(() => parseSafetensors(long)).toThrow(/exceeds the file/)
  })
})
