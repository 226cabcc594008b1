import { describe, expect, it } from 'vitest'
import { ArgPacker, argLayout, GEOM_BYTES, MAX_RANK } from '../src/launch-args.js'

function hostMemory(base: bigint) {
  let buf: ArrayBuffer | undefined
  return {
    allocate: (bytes: number) => {
      buf = new ArrayBuffer(bytes)
      return { ptr: base, view: new DataView(buf) }
    },
    view: () => new DataView(buf!),
  }
}

describe('kernel argument packing', () => {
  it('aligns each parameter to its size and puts the pointer table after the values', () => {
    const l = argLayout(['ptr', 'i32', 'ptr', 'f32', 'i64', 'geom', 'u32'])
    expect(l.offsets).toEqual([0, 8, 16, 24, 32, 40, 40 + GEOM_BYTES])
    expect(l.tableOffset).toBe(Math.ceil((44 + GEOM_BYTES) / 8) * 8)
    expect(l.totalBytes).toBe(l.tableOffset + 7 * 8)
  })

  it('prepares the pointer table once and writes only values per launch', () => {
    const mem = hostMemory(0x7000_0000n)
    const p = new ArgPacker('k', ['ptr', 'i32', 'f32', 'i64', 'u32'], mem.allocate)
    const dv = mem.view()
    const table = p.layout.tableOffset
    expect([0, 1, 2, 3, 4].map((i) => dv.getBigUint64(table + 8 * i, true))).toEqual(
      p.layout.offsets.map((o) => 0x7000_0000n + BigInt(o)),
    )
    const t = p.pack([0xdead_beef_00n, -7, 1.5, 2 ** 40, 0xffff_fffe])
    expect(t).toBe(0x7000_0000n + BigInt(table))
    expect(dv.getBigUint64(0, true)).toBe(0xdead_beef_00n)
    expect(dv.getInt32(8, true)).toBe(-7)
    expect(dv.getFloat32(12, true)).toBe(1.5)
    expect(dv.getBigInt64(16, true)).toBe(2n ** 40n)
    expect(dv.getUint32(24, true)).toBe(0xffff_fffe)
    p.pack([1n, 2, 3, 4, 5])
    expect(dv.getInt32(8, true)).toBe(2)
  })

  it('lays out Geom as int rank, shape[8], stride[3][8]', () => {
    const mem = hostMemory(0n)
    const p = new ArgPacker('k', ['geom'], mem.allocate)
    p.pack([
      {
        rank: 2,
        shape: [3, 5],
        strides: [
          [5, 1],
          [0, 1],
        ],
      },
    ])
    const dv = mem.view()
    const ints = Array.from({ length: GEOM_BYTES / 4 }, (_, i) => dv.getInt32(4 * i, true))
    expect(ints[0]).toBe(2)
    expect(ints.slice(1, 1 + MAX_RANK)).toEqual([3, 5, 1, 1, 1, 1, 1, 1])
    expect(ints.slice(1 + MAX_RANK, 1 + 2 * MAX_RANK)).toEqual([5, 1, 0, 0, 0, 0, 0, 0])
    expect(ints.slice(1 + 2 * MAX_RANK, 1 + 3 * MAX_RANK)).toEqual([0, 1, 0, 0, 0, 0, 0, 0])
    expect(ints.slice(1 + 3 * MAX_RANK)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
  })

  it('rejects a wrong argument count, naming the kernel', () => {
    const p = new ArgPacker('softmax_k', ['ptr', 'ptr'], hostMemory(0n).allocate)
    expect(() => p.pack([1n])).toThrow(/softmax_k: 1 arguments for 2 parameters/)
  })
})
