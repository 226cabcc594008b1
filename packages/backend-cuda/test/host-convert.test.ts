import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  Rng,
} from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { fillPattern, fromDeviceLayout, toDeviceLayout } from '../src/host-convert.js'

describe('host <-> device layouts', () => {
  const values = Float32Array.from([
    ...new Rng(3).normalArray(1000).map((x) => x * 100),
    0,
    -0,
    65504,
    1e-8,
    Infinity,
    -Infinity,
    Number.NaN,
  ])

  it('bfloat16 matches core rounding (round to nearest even) both ways', () => {
    const dev = toDeviceLayout(values, 'bfloat16') as Uint16Array
    for (let i = 0; i < values.length; i++) expect(dev[i]).toBe(float32ToBfloat16Bits(values[i]))
    const back = fromDeviceLayout(dev, 'bfloat16', values.length) as Float32Array
    for (let i = 0; i < values.length; i++)
      expect(Object.is(back[i], bfloat16BitsToFloat32(dev[i])) || Number.isNaN(back[i])).toBe(true)
  })

  it('float16 matches core rounding both ways', () => {
    const dev = toDeviceLayout(values, 'float16') as Uint16Array
    for (let i = 0; i < values.length; i++) expect(dev[i]).toBe(float32ToFloat16Bits(values[i]))
    const back = fromDeviceLayout(dev, 'float16', values.length)
    for (let i = 0; i < 20; i++) expect(back[i]).toBe(float16BitsToFloat32(dev[i]))
  })

  it('bool becomes bytes 0/1, ints pass through', () => {
    expect([...(toDeviceLayout(Float32Array.from([0, 2, -1]), 'bool') as Uint8Array)]).toEqual([0, 1, 1])
    const i = Int32Array.from([1, -2])
    expect(toDeviceLayout(i, 'int32')).toBe(i)
  })

  it('fill patterns are the element bit patterns', () => {
    expect(fillPattern('float32', 1.25)).toEqual({ bits: 0x3fa00000, width: 4 })
    expect(fillPattern('bfloat16', 1.25)).toEqual({ bits: 0x3fa0, width: 2 })
    expect(fillPattern('float16', 1.25)).toEqual({ bits: 0x3d00, width: 2 })
    expect(fillPattern('int32', -1.5)).toEqual({ bits: 0xffffffff, width: 4 })
    expect(fillPattern('bool', 3)).toEqual({ bits: 1, width: 1 })
  })
})
