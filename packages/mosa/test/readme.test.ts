import { dispose, Rng, ready, sum, valueAndGrad } from '@attnkit/core'
import { expect, it } from 'vitest'
import * as mosa from '../src/index.js'

it('the README example runs (smaller sizes)', async () => {
  await ready()
  const config = { dModel: 32, headDim: 8, denseHeads: 1, sparseHeads: 4, sparsity: 4 }
  const params = mosa.init(config, new Rng(0))
  const x = new Rng(1).normal([2, 16, 32])
  const y = mosa.forward(params, x)
  const { value, grads } = valueAndGrad((p: mosa.MosaParams) => sum(mosa.forward(p, x)))(params)
  expect(y.shape).toEqual([2, 16, 32])
  expect(grads.router!.shape).toEqual([4, 32])
  expect(mosa.cost(config, { seqLen: 16 }).flops).toBeGreaterThan(0)
  dispose([params, x, y, value, grads])
})

it('matched heads for the bench configs', () => {
  const rows = []
  for (const seqLen of [1024, 8192])
    for (const sparsity of [4, 8, 16])
      rows.push(
        mosa.computeMatchedHeads({ dModel: 512, headDim: 64, heads: 8, denseHeads: 2, sparsity, seqLen }),
      )
  // The bench's MoSA layers: 2 dense + these MoSA heads cost no more than 8 dense heads.
  expect(rows).toEqual([31, 65, 131, 59, 156, 364])
})
