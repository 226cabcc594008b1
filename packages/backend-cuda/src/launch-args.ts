/**
 * Kernel argument packing. cuLaunchKernel takes an array of pointers, one per parameter, each
 * pointing at that parameter's value. A kernel's layout (offsets, the pointer table) is built
 * once in native memory; a launch only writes the values.
 */

/** Parameter kinds: device pointer, 32-bit int/uint/float, 64-bit int, and the Geom struct. */
export type ArgKind = 'ptr' | 'i32' | 'u32' | 'f32' | 'i64' | 'geom'

/** Highest rank the kernels index (shapes are collapsed to at most this first). */
export const MAX_RANK = 8

/** Mirrors `struct Geom { int rank; int shape[8]; int stride[3][8]; }` in kernels/common.cuh. */
export interface Geom {
  rank: number
  shape: readonly number[]
  /** Up to three stride arrays (operands), each `rank` long. */
  strides: readonly (readonly number[])[]
}

export const GEOM_BYTES = 4 * (1 + MAX_RANK + 3 * MAX_RANK)

export type ArgValue = bigint | number | Geom

const SIZE: Record<ArgKind, number> = { ptr: 8, i64: 8, i32: 4, u32: 4, f32: 4, geom: GEOM_BYTES }
const ALIGN: Record<ArgKind, number> = { ptr: 8, i64: 8, i32: 4, u32: 4, f32: 4, geom: 4 }

/** Native memory for a packer: base address plus a view over it. */
export interface ArgMemory {
  ptr: bigint
  view: DataView
}

export interface ArgLayout {
  offsets: number[]
  /** Bytes of values; the pointer table follows at `tableOffset`. */
  tableOffset: number
  totalBytes: number
}

export function argLayout(kinds: readonly ArgKind[]): ArgLayout {
  const offsets: number[] = []
  let off = 0
  for (const k of kinds) {
    off = Math.ceil(off / ALIGN[k]) * ALIGN[k]
    offsets.push(off)
    off += SIZE[k]
  }
  const tableOffset = Math.ceil(off / 8) * 8
  return { offsets, tableOffset, totalBytes: tableOffset + 8 * kinds.length }
}

/** Packs a kernel's arguments into one native block; `pack` returns the pointer table's address. */
export class ArgPacker {
  readonly layout: ArgLayout
  private readonly mem: ArgMemory

  constructor(
    readonly kernel: string,
    readonly kinds: readonly ArgKind[],
    allocate: (bytes: number) => ArgMemory,
  ) {
    this.layout = argLayout(kinds)
    this.mem = allocate(this.layout.totalBytes)
    const { view } = this.mem
    for (let i = 0; i < kinds.length; i++) {
      view.setBigUint64(this.layout.tableOffset + 8 * i, this.mem.ptr + BigInt(this.layout.offsets[i]), true)
    }
  }

  get tablePointer(): bigint {
    return this.mem.ptr + BigInt(this.layout.tableOffset)
  }

  pack(values: readonly ArgValue[]): bigint {
    const { kinds } = this
    if (values.length !== kinds.length) {
      throw new Error(`${this.kernel}: ${values.length} arguments for ${kinds.length} parameters`)
    }
    const { view } = this.mem
    const { offsets } = this.layout
    for (let i = 0; i < kinds.length; i++) {
      const v = values[i]
      const o = offsets[i]
      switch (kinds[i]) {
        case 'ptr':
        case 'i64':
          view.setBigInt64(o, typeof v === 'bigint' ? v : BigInt(v as number), true)
          break
        case 'i32':
          view.setInt32(o, v as number, true)
          break
        case 'u32':
          view.setUint32(o, (v as number) >>> 0, true)
          break
        case 'f32':
          view.setFloat32(o, v as number, true)
          break
        case 'geom':
          writeGeom(view, o, v as Geom, this.kernel)
          break
      }
    }
    return this.tablePointer
  }
}

function writeGeom(view: DataView, o: number, g: Geom, kernel: string): void {
  if (g.rank > MAX_RANK) throw new Error(`${kernel}: rank ${g.rank} exceeds ${MAX_RANK} after collapsing`)
  view.setInt32(o, g.rank, true)
  for (let d = 0; d < MAX_RANK; d++) view.setInt32(o + 4 * (1 + d), d < g.rank ? g.shape[d] : 1, true)
  for (let s = 0; s < 3; s++) {
    const strides = g.strides[s]
    for (let d = 0; d < MAX_RANK; d++) {
      view.setInt32(o + 4 * (1 + MAX_RANK + s * MAX_RANK + d), strides && d < g.rank ? strides[d] : 0, true)
    }
  }
}
