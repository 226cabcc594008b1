import { attention, dispose, memory, Rng, sum, tensor, valueAndGrad } from '@attnkit/core'
import { formatSummary, runConformance } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { type CudaBackend, createCudaBackend } from '../src/index.js'

let backend: CudaBackend | undefined
let reason = ''
try {
  backend = await createCudaBackend()
} catch (e) {
  reason = (e as Error).message.split('. Tried')[0].slice(0, 150)
}

describe('on a CUDA GPU', () => {
  if (!backend) {
    it.skip(`no usable CUDA GPU here (${reason}); GPU tests skip`, () => {})
    return
  }
  const b = backend

  it('passes the conformance suite against the CPU reference', async () => {
    const summary = await runConformance(b)
    console.log(formatSummary(summary))
    expect(summary.failed).toBe(0)
  }, 600_000)

  it('leaves no device allocation behind after attention forward + backward', async () => {
    const rng = new Rng(5)
    const run = () => {
      const [q, k, v] = [0, 1, 2].map(() =>
        tensor(rng.normalArray(2 * 4 * 70 * 64), [2, 4, 70, 64], { dtype: 'bfloat16', backend: b }),
      )
      const f = valueAndGrad((p: { q: typeof q; k: typeof k; v: typeof v }) =>
        sum(attention(p.q, p.k, p.v, { causal: true })),
      )
      const { value, grads } = f({ q, k, v })
      dispose([q, k, v, value, grads])
    }
    run()
    await b.synchronize()
    const before = b.allocator.stats()
    const tensorsBefore = memory('cuda').liveTensors
    run()
    await b.synchronize()
    const after = b.allocator.stats()
    expect(memory('cuda').liveTensors).toBe(tensorsBefore)
    expect(after.liveBlocks).toBe(before.liveBlocks)
    expect(after.deviceAllocations).toBe(before.deviceAllocations)
  })
})
