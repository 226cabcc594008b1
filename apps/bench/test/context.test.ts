import { Rng } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { BlockRepeatingRng, RANDOM_BLOCK_ELEMENTS } from '../src/mechanisms/context.js'

describe('BlockRepeatingRng (parameters and inputs of bench cells)', () => {
  it('draws what the plain generator draws up to the block size', () => {
    const a = new BlockRepeatingRng(7)
    const b = new Rng(7)
    expect(a.normalArray(1000)).toEqual(b.normalArray(1000))
    expect(a.uniformArray(RANDOM_BLOCK_ELEMENTS)).toEqual(b.uniformArray(RANDOM_BLOCK_ELEMENTS))
  })

  it('repeats one fresh block beyond it, and goes on with fresh values after', () => {
    const n = 2 * RANDOM_BLOCK_ELEMENTS + 12345
    const a = new BlockRepeatingRng(3)
    const b = new Rng(3)
    const big = a.uniformArray(n)
    const block = b.uniformArray(RANDOM_BLOCK_ELEMENTS)
    expect(big.length).toBe(n)
    expect(big.subarray(0, RANDOM_BLOCK_ELEMENTS)).toEqual(block)
    expect(big.subarray(RANDOM_BLOCK_ELEMENTS, 2 * RANDOM_BLOCK_ELEMENTS)).toEqual(block)
    expect(big.subarray(2 * RANDOM_BLOCK_ELEMENTS)).toEqual(block.subarray(0, 12345))
    // The stream advanced by one block only: the next draw is the plain generator's next one.
    expect(a.normalArray(64)).toEqual(b.normalArray(64))
    expect(new Set(block.subarray(0, 4096)).size).toBeGreaterThan(4000)
  })

  it('forks (per-layer streams, as @attnkit/lte draws its layers) repeat blocks too', () => {
    const fork = new BlockRepeatingRng(3).fork(2)
    expect(fork).toBeInstanceOf(BlockRepeatingRng)
    const plain = new Rng(3).fork(2)
    const big = fork.normalArray(RANDOM_BLOCK_ELEMENTS + 10)
    const block = plain.normalArray(RANDOM_BLOCK_ELEMENTS)
    expect(big.subarray(0, RANDOM_BLOCK_ELEMENTS)).toEqual(block)
    expect(big.subarray(RANDOM_BLOCK_ELEMENTS)).toEqual(block.subarray(0, 10))
  })
})
