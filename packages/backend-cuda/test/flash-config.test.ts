// The Hopper flash kernels' launch configurations: which GPUs and head dims take them, and that
// every tunable variant's shared memory fits an H100 (per block, and per SM for two-CTA variants).
import { afterEach, describe, expect, it } from 'vitest'
import {
  BWD_WGMMA_ALTERNATIVES,
  FWD_WGMMA_ALTERNATIVES,
  flashBwdWgmmaConfig,
  flashFwdWgmmaConfig,
  tunableString,
  usesWgmmaBackward,
  usesWgmmaForward,
} from '../src/kernels/attention.js'

const PER_BLOCK = 227 * 1024 // H100: shared memory per block (opt-in), static included
const PER_SM = 228 * 1024 // per SM, with 1 KiB reserved per resident block
const STATIC = 128 // the kernels' static shared memory (query position bounds)

const saved = { ...process.env }
afterEach(() => {
  for (const k of [
    'ATTNKIT_FLASH_WGMMA',
    'ATTNKIT_FLASH_BWD_WGMMA',
    'ATTNKIT_FLASH_FWD_SM90',
    'ATTNKIT_FLASH_BWD_SM90',
  ])
    if (saved[k] === undefined) delete process.env[k]
    else process.env[k] = saved[k]
})

describe('Hopper flash-attention kernels', () => {
  it('run on sm_90a only, backward at head dim 128 only, and can be turned off', () => {
    expect(usesWgmmaForward('sm_90a')).toBe(true)
    expect(usesWgmmaForward('sm_80')).toBe(false)
    expect(usesWgmmaForward('sm_100')).toBe(false)
    expect(usesWgmmaBackward('sm_90a', 128)).toBe(true)
    expect(usesWgmmaBackward('sm_90a', 64)).toBe(false)
    process.env.ATTNKIT_FLASH_BWD_WGMMA = '0'
    expect(usesWgmmaForward('sm_90a')).toBe(true)
    expect(usesWgmmaBackward('sm_90a', 128)).toBe(false)
    process.env.ATTNKIT_FLASH_WGMMA = '0'
    expect(usesWgmmaForward('sm_90a')).toBe(false)
  })

  for (const t of [undefined, ...FWD_WGMMA_ALTERNATIVES])
    for (const hd of [64, 128])
      it(`forward ${t ? tunableString(t) : 'default'}, head dim ${hd}: shared memory fits`, () => {
        if (t) process.env.ATTNKIT_FLASH_FWD_SM90 = tunableString(t)
        const c = flashFwdWgmmaConfig(hd)
        const ctas = c.defines.MIN_CTAS ?? 1
        expect(c.sharedBytes + STATIC).toBeLessThanOrEqual(PER_BLOCK)
        expect(ctas * (c.sharedBytes + STATIC + 1024)).toBeLessThanOrEqual(PER_SM)
        if (c.defines.OVERLAP) expect(c.defines.STAGES).toBe(3)
        expect(c.rows).toBe(128)
        expect(c.threads).toBe(256)
      })

  for (const t of [undefined, ...BWD_WGMMA_ALTERNATIVES])
    it(`backward ${t ? tunableString(t) : 'default'}: shared memory fits`, () => {
      if (t) process.env.ATTNKIT_FLASH_BWD_SM90 = tunableString(t)
      const c = flashBwdWgmmaConfig(128)
      expect(c.sharedBytes).toBeLessThanOrEqual(PER_BLOCK)
      expect(c.keys).toBe(128)
    })
})
