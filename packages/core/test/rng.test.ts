import { describe, expect, it } from 'vitest'
import { memory, philox4x32, Rng } from '../src/index.js'

const hex = (a: Uint32Array) => [...a].map((x) => x.toString(16).padStart(8, '0'))

describe('Philox4x32-10', () => {
  // Known-answer vectors from Random123's kat_vectors (philox4x32 with 10 rounds).
  it('matches the Random123 known-answer vectors', () => {
    const out = new Uint32Array(4)
    philox4x32(0, 0, 0, 0, 0, 0, out)
    expect(hex(out)).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8'])
    philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out)
    expect(hex(out)).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd'])
    philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out)
    expect(hex(out)).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1'])
  })

  it('is reproducible per seed and differs across seeds and draws', () => {
    const a = new Rng(42).uniformArray(64)
    const b = new Rng(42).uniformArray(64)
    const c = new Rng(43).uniformArray(64)
    expect([...a]).toEqual([...b])
    expect([...a]).not.toEqual([...c])
    const r = new Rng(42)
    expect([...r.uniformArray(8)]).not.toEqual([...r.uniformArray(8)])
    expect([...new Rng(1).fork(1).uniformArray(8)]).not.toEqual([...new Rng(1).fork(2).uniformArray(8)])
  })

  it('draws sensible distributions', () => {
    const z = new Rng(7).normalArray(20000)
    const mean = z.reduce((s, v) => s + v, 0) / z.length
    const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length
    expect(Math.abs(mean)).toBeLessThan(0.03)
    expect(Math.abs(variance - 1)).toBeLessThan(0.05)
    const u = new Rng(8).uniformArray(20000)
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...u)).toBeLessThan(1)
    const t = new Rng(9).randint([1000], 3, 7)
    const v = t.dataSync()
    expect(Math.min(...v)).toBe(3)
    expect(Math.max(...v)).toBe(6)
    t.dispose()
    expect(new Rng(3).permutation(10).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('gives tensors of the requested dtype and shape, rounded', () => {
    const before = memory().liveTensors
    const t = new Rng(1).normal([3, 4], 0, 1, { dtype: 'bfloat16' })
    expect(t.shape).toEqual([3, 4])
    expect(t.dtype).toBe('bfloat16')
    for (const v of t.dataSync()) expect(new Float32Array([v])[0]).toBe(v)
    t.dispose()
    expect(memory().liveTensors).toBe(before)
  })

  it('rejects a bad seed', () => {
    expect(() => new Rng(-1)).toThrow(/seed/)
    expect(() => new Rng(1.5)).toThrow(/non-negative safe integer/)
  })
})
