// The README's example, run as written (smaller sizes), so it cannot rot.
import { AdamW, dispose, memory, Rng, slice, tensor, valueAndGrad } from '@attnkit/core'
import { expect, it } from 'vitest'
import { disposeCache, laLTE } from '../src/index.js'

it('README example: one training step and one decode step', async () => {
  const live = memory().liveTensors
  const model = laLTE({ vocabSize: 64, dModel: 32, numLayers: 4, headDim: 16, window: 8 }) // gdn, lte, gdn, lte
  let params = model.init(new Rng(0))
  const opt = new AdamW<typeof params>({ lr: 1e-3 })
  const batch = new Rng(1).randint([2, 33], 0, 64)
  const [x, y] = [slice(batch, [0, 0], [2, 32]), slice(batch, [0, 1], [2, 32])]
  const { value, grads } = valueAndGrad((p: typeof params) => model.loss(p, x, y))(params) // CE + L1, STE
  params = opt.update(params, grads)
  const cache = model.createCache({ batch: 1 }) // constant size
  const token = tensor([42], [1], 'int32')
  const logits = model.decode(params, cache, token) // [1, 64]
  expect(logits.shape).toEqual([1, 64])
  expect(Number.isFinite(await value.item())).toBe(true)
  dispose([params, batch, x, y, value, grads, token, logits])
  disposeCache(cache)
  opt.dispose()
  expect(memory().liveTensors).toBe(live)
})
