import { memory, setBackend } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { loadBackends } from '../src/backends.js'
import { loadBrown } from '../src/train/data/brown.js'
import { modelConfig } from '../src/train/models.js'
import { createTask } from '../src/train/tasks.js'
import { OPTIM_DEFAULTS, type TrainConfig, Trainer } from '../src/train/trainer.js'

const [webgpu] = await loadBackends(['webgpu'])
const skipReason = webgpu.backend ? null : `WebGPU unavailable: ${webgpu.reason}`
if (skipReason) console.log(`skipping training on WebGPU: ${skipReason}`)

async function losses(backend: 'cpu' | 'webgpu', config: TrainConfig, steps: number): Promise<number[]> {
  await setBackend(backend)
  const live = memory(backend).liveTensors
  const corpus = loadBrown()
  const t = await Trainer.create(config, createTask(config.data, config, corpus, 1))
  const out: number[] = []
  for (let i = 0; i < steps; i++) out.push((await t.trainStep()).loss)
  out.push((await t.evaluate()).metrics.val_loss)
  t.dispose()
  expect(memory(backend).liveTensors).toBe(live)
  return out
}

describe.skipIf(skipReason !== null)('training on WebGPU (lavapipe here)', () => {
  it('gives the CPU reference losses step for step (dense and GDN)', async () => {
    for (const name of ['dense', 'gdn'] as const) {
      const config: TrainConfig = {
        model: await modelConfig(name, { dModel: 32, layers: 2, headDim: 16, seqLen: 32 }),
        data: { kind: 'brown' },
        batch: 4,
        seqLen: 32,
        steps: 3,
        optim: { ...OPTIM_DEFAULTS, warmup: 1 },
        seed: 0,
        precision: 'fp32',
        evalEvery: 0,
        evalBatches: 1,
      }
      try {
        const gpu = await losses('webgpu', config, 3)
        const cpu = await losses('cpu', config, 3)
        for (let i = 0; i < cpu.length; i++) expect(gpu[i], `${name} value ${i}`).toBeCloseTo(cpu[i], 4)
      } finally {
        await setBackend('cpu')
      }
    }
  })
})
