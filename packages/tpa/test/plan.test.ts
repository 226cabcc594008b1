import { describe, expect, it } from 'vitest'
import { type DecodeTuning, decodeTuning, planSplits, setDecodeTuning } from '../src/kernels/plan.js'

const H100_SMS = 132

describe('planSplits', () => {
  const smTuned: DecodeTuning = {
    targetBlocks: 1024,
    blocksPerSm: 4,
    minTokensPerSplit: 128,
    tensorCores: true,
    programmaticLaunch: true,
  }

  it('with the SM count: one wave of at most SMs x blocksPerSm blocks (4 here), whole tiles covering the context', () => {
    for (const total of [100, 4096, 4097, 32768, 32800, 131072])
      for (const batch of [1, 3, 16, 300])
        for (const tile of [8, 16, 32]) {
          const { splits, tokensPerSplit } = planSplits(total, batch, tile, smTuned, H100_SMS)
          expect(tokensPerSplit % tile).toBe(0)
          expect(splits * tokensPerSplit).toBeGreaterThanOrEqual(total)
          // No split is empty: the last one starts inside the context.
          expect((splits - 1) * tokensPerSplit).toBeLessThan(total)
          if (batch <= 4 * H100_SMS) expect(batch * splits).toBeLessThanOrEqual(4 * H100_SMS)
          else expect(splits).toBe(1)
          if (splits > 1) expect(tokensPerSplit).toBeGreaterThanOrEqual(smTuned.minTokensPerSplit)
        }
  })

  it('spreads batch 1 over the SMs and batch 16 into whole rows of splits, one wave of 528 blocks', () => {
    // 32K tokens at batch 1: 528 blocks wanted, capped at 256 splits of 128 tokens (minTokensPerSplit).
    expect(planSplits(32768, 1, 32, smTuned, H100_SMS)).toEqual({ splits: 256, tokensPerSplit: 128 })
    // 128K at batch 1: 528 splits wanted, 249 tokens each rounded up to 256: 512 splits.
    expect(planSplits(131072, 1, 32, smTuned, H100_SMS)).toEqual({ splits: 512, tokensPerSplit: 256 })
    // 32K at batch 16: 33 splits wanted per row, 993 tokens rounded up to 1024: 32 splits, 512 blocks.
    expect(planSplits(32768, 16, 32, smTuned, H100_SMS)).toEqual({ splits: 32, tokensPerSplit: 1024 })
  })

  it('without an SM count (or with blocksPerSm null) aims at targetBlocks', () => {
    expect(planSplits(32768, 16, 32, smTuned)).toEqual({ splits: 64, tokensPerSplit: 512 })
    expect(planSplits(32768, 16, 32, { ...smTuned, blocksPerSm: null }, H100_SMS)).toEqual({
      splits: 64,
      tokensPerSplit: 512,
    })
  })
})

describe('setDecodeTuning', () => {
  it('an explicit targetBlocks alone clears blocksPerSm; both together keep both', () => {
    const name = 'plan-test-backend'
    setDecodeTuning(name, { targetBlocks: 1024, blocksPerSm: 2 })
    expect(decodeTuning(name).blocksPerSm).toBe(2)
    expect(setDecodeTuning(name, { targetBlocks: 16 }).blocksPerSm).toBeNull()
    expect(setDecodeTuning(name, { targetBlocks: 16, blocksPerSm: 3 }).blocksPerSm).toBe(3)
    expect(setDecodeTuning(name, { minTokensPerSplit: 8 }).blocksPerSm).toBe(3)
    expect(() => setDecodeTuning(name, { blocksPerSm: 0 })).toThrow(/blocksPerSm/)
  })

  it('programmatic dependent launch: on for CUDA by default, a boolean', () => {
    expect(decodeTuning('cuda').programmaticLaunch).toBe(true)
    expect(decodeTuning('webgpu').programmaticLaunch).toBe(false)
    const name = 'plan-test-backend-pdl'
    expect(setDecodeTuning(name, { programmaticLaunch: false }).programmaticLaunch).toBe(false)
    expect(() => setDecodeTuning(name, { programmaticLaunch: 1 as unknown as boolean })).toThrow(
      /programmaticLaunch/,
    )
  })
})
