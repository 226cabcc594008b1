import { dispose, memory } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  forward,
  forwardWithRouting,
  type MosaConfig,
  portableFor16Bit,
  portableLargestBytes,
  resolveConfig,
} from '../src/index.js'
import { problem, relError } from './helpers.js'
import { hostParams, referenceForward } from './reference.js'

const base: MosaConfig = {
  dModel: 12,
  headDim: 4,
  denseHeads: 1,
  sparseHeads: 3,
  sparsity: 3,
  dtype: 'float64',
}

function checkAgainstReference(
  config: MosaConfig,
  B: number,
  T: number,
  seed = 1,
  makeX?: Parameters<typeof problem>[4],
) {
  const p = problem(config, B, T, seed, makeX)
  const r = forwardWithRouting(p.params, p.x, { path: 'portable' })
  const ref = referenceForward(config, hostParams(p.params), p.xHost, B, T)
  const err = relError(r.y.dataSync(), ref.y)
  const idx = r.indices ? Array.from(r.indices.dataSync()) : []
  dispose([r, p.params, p.x])
  return { err, idx, selected: ref.selected.flat(2) }
}

describe('portable forward against the per-head loop (CPU, float64)', () => {
  it('dense + MoSA heads, RoPE on, batch 2', () => {
    const { err, idx, selected } = checkAgainstReference(base, 2, 13)
    expect(idx).toEqual(selected)
    expect(err).toBeLessThan(1e-12)
  })

  it('RoPE off, MoSA heads only, odd sizes', () => {
    const { err, idx, selected } = checkAgainstReference(
      { ...base, dModel: 7, headDim: 6, denseHeads: 0, sparseHeads: 2, sparsity: 2.5, rope: false },
      3,
      11,
      5,
    )
    expect(idx).toEqual(selected)
    expect(err).toBeLessThan(1e-12)
  })

  it('k = T (sparsity 1): every head keeps every token', () => {
    const { err, idx } = checkAgainstReference({ ...base, sparsity: 1 }, 2, 9, 2)
    expect(idx).toEqual(Array.from({ length: 2 * 3 }, () => Array.from({ length: 9 }, (_, t) => t)).flat())
    expect(err).toBeLessThan(1e-12)
  })

  it('k = 1 (sparsity >= T): one token per head, attending only to itself', () => {
    const { err, idx } = checkAgainstReference({ ...base, sparsity: 50 }, 2, 9, 3)
    expect(idx.length).toBe(2 * 3)
    expect(err).toBeLessThan(1e-12)
  })

  it('ties: equal router scores keep the lower position (all tokens equal; duplicated pairs)', () => {
    const C = base.dModel
    const T = 10
    const { err, idx, selected } = checkAgainstReference(base, 2, T, 4, (rng) => {
      const row = rng.normalArray(C)
      const pairs = rng.normalArray((T / 2) * C)
      const x = new Float64Array(2 * T * C)
      for (let t = 0; t < T; t++) {
        x.set(row, t * C) // batch 0: every token identical
        x.set(pairs.subarray(Math.floor(t / 2) * C, Math.floor(t / 2 + 1) * C), (T + t) * C) // batch 1: t, t+1 equal
      }
      return x
    })
    // k = 3: batch 0 keeps positions 0, 1, 2 in every head
    expect(idx.slice(0, 9)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2])
    expect(idx).toEqual(selected)
    expect(err).toBeLessThan(1e-12)
  })
})

describe('forward', () => {
  it('frees every intermediate tensor', () => {
    const p = problem(base, 2, 10)
    const before = memory().liveTensors
    const y = forward(p.params, p.x, { path: 'portable' })
    expect(memory().liveTensors).toBe(before + 1)
    dispose([y, p.params, p.x])
  })
})

describe("'auto' path for 16-bit layers", () => {
  // The paper's FLOP-matched s4 layer at T = 8192: 94 MoSA heads of k = 2048 over dModel 1024.
  const paper = resolveConfig({ dModel: 1024, headDim: 64, denseHeads: 4, sparseHeads: 94, sparsity: 4 })

  it('sizes the portable path by its [B·Hs·k, dModel] int32 scatter indices', () => {
    expect(portableLargestBytes(paper, 4, 8192)).toBe(4 * 94 * 2048 * 1024 * 4)
  })

  it('keeps the portable path where it fits, the fused kernels where it does not', () => {
    const webgpuLimit = 2 ** 31 - 4
    expect(portableFor16Bit(paper, 4, 1024, webgpuLimit)).toMatch(/fits this backend's 2147483644-byte limit/)
    expect(portableFor16Bit(paper, 4, 8192, webgpuLimit)).toBeNull()
    expect(portableFor16Bit(paper, 4, 8192, undefined)).toMatch(/fits this backend/)
  })

  it('on CUDA keeps the portable path only for short sequences (bench layers, bfloat16 on the H100)', () => {
    // dModel 512, 2 dense + 59 MoSA heads, s4: T = 1024 (portable faster) and 8192 (fused faster).
    const bench = resolveConfig({ dModel: 512, headDim: 64, denseHeads: 2, sparseHeads: 59, sparsity: 4 })
    expect(portableFor16Bit(bench, 1, 1024, undefined, 'cuda')).toMatch(/at most 67108864 bytes/)
    expect(portableFor16Bit(bench, 1, 8192, undefined, 'cuda')).toBeNull()
    expect(portableFor16Bit(bench, 1, 8192, undefined, 'webgpu')).toMatch(/fits this backend/)
  })
})
