import { describe, expect, it } from 'vitest'
import { float16BitsToFloat32, float32ToFloat16Bits, Rng, roundInPlace } from '../src/index.js'

/** IEEE 754 binary16, decoded from its fields (independently of the library's table). */
function half(bits: number): number {
  const sign = bits >> 15 ? -1 : 1
  const e = (bits >> 10) & 31
  const m = bits & 1023
  if (e === 31) return m === 0 ? sign * Infinity : Number.NaN
  return e === 0 ? sign * m * 2 ** -24 : sign * 2 ** (e - 15) * (1 + m / 1024)
}

describe('float16 conversions', () => {
  it('decode every one of the 65536 bit patterns as IEEE binary16 does', () => {
    for (let b = 0; b < 0x10000; b++)
      expect(Object.is(float16BitsToFloat32(b), half(b)), `bits ${b}`).toBe(true)
  })

  it('encode every non-NaN half value back to its own bits', () => {
    for (let b = 0; b < 0x10000; b++) {
      if (((b >> 10) & 31) === 31 && (b & 1023) !== 0) continue
      expect(float32ToFloat16Bits(float16BitsToFloat32(b))).toBe(b)
    }
  })

  it('roundInPlace gives the nearest half (ties to even) of fresh random values', () => {
    const z = new Rng(5).normalArray(20000).map((v, i) => v * 2 ** ((i % 40) - 20))
    const values = Float32Array.from(z)
    roundInPlace('float16', values)
    for (let i = 0; i < values.length; i++) {
      const x = Math.fround(z[i])
      const r = values[i]
      // r is a half value, and no half value lies nearer to x.
      const bits = float32ToFloat16Bits(r)
      expect(half(bits)).toBe(r)
      if (!Number.isFinite(r)) {
        expect(Math.abs(x)).toBeGreaterThanOrEqual(65520) // beyond the largest half, 65504
        continue
      }
      // The neighbouring half values on either side (bit patterns are ordered by magnitude).
      for (const n of [bits - 1, bits + 1].map(half).filter(Number.isFinite))
        expect(Math.abs(x - r)).toBeLessThanOrEqual(Math.abs(x - n))
    }
  })
})
