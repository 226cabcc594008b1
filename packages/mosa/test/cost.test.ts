import { describe, expect, it } from 'vitest'
import { computeMatchedHeads, cost, type MosaConfig } from '../src/index.js'

const config: MosaConfig = { dModel: 512, headDim: 64, denseHeads: 2, sparseHeads: 16, sparsity: 8 }

describe('cost', () => {
  it('counts the MoSA heads: O(k^2) attention, k-row projections, T-row routing', () => {
    const T = 1024
    const B = 2
    const c = cost(config, { seqLen: T, batch: B })
    const k = 128
    const D = 64
    const C = 512
    expect(c.k).toBe(k)
    // attention among k tokens, causal: k(k+1)/2 pairs, QK and PV each 2*D flops per pair
    expect(c.breakdown.sparseAttention.flops).toBe(16 * B * ((k * (k + 1)) / 2) * 2 * 2 * D)
    // Q, K, V of the k selected rows only
    expect(c.breakdown.sparseProjections.flops).toBe(16 * B * 2 * k * 3 * D * C + 16 * B * 2 * k * D * 6)
    // router logits over all T tokens
    expect(c.breakdown.routing.flops).toBeGreaterThanOrEqual(16 * B * 2 * T * C)
    expect(c.flops).toBeCloseTo(Object.values(c.breakdown).reduce((n, x) => n + x.flops, 0) + B * T * C, 0)
    expect(c.trainingFlops).toBeGreaterThan(2.5 * c.flops)
    // per head: doubling T at fixed k adds only the O(T) routing
    const a = cost({ ...config, sparsity: 8 }, { seqLen: 1024 }).perSparseHead.flops
    const b = cost({ ...config, sparsity: 16 }, { seqLen: 2048 }).perSparseHead.flops
    expect(b - a).toBeCloseTo(2 * 1024 * C + 1024, -3)
  })

  it('KV-cache bytes: dense heads keep every token, MoSA heads about T / sparsity', () => {
    const c = cost(config, { seqLen: 4096 })
    const dense = 2 * 2 * 64 * 4096 * 4
    const sparse = 16 * 512 * (2 * 64 * 4 + 8)
    expect(c.kvCacheBytes).toBe(dense + sparse)
    expect(c.kvCacheBytesPerToken).toBe((dense + sparse) / 4096)
  })

  it('computeMatchedHeads gives the most MoSA heads within the dense layer FLOPs', () => {
    for (const [T, sparsity] of [
      [1024, 4],
      [8192, 16],
    ]) {
      const opts = { dModel: 512, headDim: 64, heads: 8, denseHeads: 2, sparsity, seqLen: T }
      const n = computeMatchedHeads(opts)
      const dense = cost(
        { dModel: 512, headDim: 64, denseHeads: 8, sparseHeads: 0, sparsity },
        { seqLen: T },
      ).flops
      const at = (h: number) =>
        cost({ dModel: 512, headDim: 64, denseHeads: 2, sparseHeads: h, sparsity }, { seqLen: T }).flops -
        T * 512
      expect(n).toBeGreaterThan(6) // more heads than the dense ones they replace
      expect(at(n)).toBeLessThanOrEqual(dense)
      expect(at(n + 1)).toBeGreaterThan(dense)
    }
    expect(() =>
      computeMatchedHeads({ dModel: 8, headDim: 4, heads: 2, denseHeads: 3, sparsity: 2, seqLen: 8 }),
    ).toThrow(/'denseHeads' expected an integer in \[0, 2\], got 3/)
  })
})
