import { existsSync } from 'node:fs'
import path from 'node:path'
import { flattenTree, memory } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { loadCheckpoint, readCheckpointMeta, saveCheckpoint } from '../src/train/checkpoint.js'
import { type BrownCorpus, loadBrown } from '../src/train/data/brown.js'
import { measureDecodeMemory } from '../src/train/decode-memory.js'
import { type ModelName, modelConfig } from '../src/train/models.js'
import { createTask, type DataConfig } from '../src/train/tasks.js'
import { OPTIM_DEFAULTS, type Precision, type TrainConfig, Trainer } from '../src/train/trainer.js'
import { tempDir } from './helpers.js'

let corpus: BrownCorpus | undefined
const brown = () => (corpus ??= loadBrown())

async function tinyConfig(
  name: ModelName,
  o: { steps: number; precision?: Precision; data?: DataConfig; seqLen?: number; lr?: number },
): Promise<TrainConfig> {
  const seqLen = o.seqLen ?? 32
  return {
    model: await modelConfig(name, {
      dModel: 32,
      layers: 2,
      headDim: 16,
      seqLen,
      window: 8,
      sinks: 2,
      poolSize: 8,
    }),
    data: o.data ?? { kind: 'brown' },
    batch: 8,
    seqLen,
    steps: o.steps,
    optim: { ...OPTIM_DEFAULTS, lr: o.lr ?? 1e-2, minLr: 1e-3, warmup: 3 },
    seed: 0,
    precision: o.precision ?? 'fp32',
    evalEvery: 0,
    evalBatches: 2,
  }
}

function tinyTrainer(c: TrainConfig): Promise<Trainer> {
  return Trainer.create(c, createTask(c.data, c, brown(), 2))
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length

describe('training on the CPU', () => {
  const cases: [ModelName, Precision, number][] = [
    ['dense', 'fp32', 30],
    ['gdn', 'fp32', 25],
    ['tpa', 'bf16', 25],
    ['mosa', 'fp32', 25],
  ]
  for (const [name, precision, steps] of cases) {
    it(`a tiny ${name} model's loss falls (${precision})`, async () => {
      const live = memory().liveTensors
      const t = await tinyTrainer(await tinyConfig(name, { steps, precision }))
      const losses: number[] = []
      for (let i = 0; i < steps; i++) losses.push((await t.trainStep()).loss)
      // Byte-level loss starts near ln 256 = 5.55 and must drop well below it.
      expect(losses[0]).toBeGreaterThan(5)
      expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) - 0.8)
      expect(losses.every(Number.isFinite)).toBe(true)
      const e = await t.evaluate()
      expect(e.metrics.val_loss).toBeLessThan(losses[0] - 0.8)
      expect(e.metrics.val_ppl).toBeCloseTo(Math.exp(e.metrics.val_loss), 6)
      expect(flattenTree(t.params).every((p) => p.dtype === 'float32')).toBe(true)
      t.dispose()
      expect(memory().liveTensors).toBe(live)
    })
  }

  it('save -> load -> resume gives the identical next step', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'run.safetensors')
    const live = memory().liveTensors
    const a = await tinyTrainer(await tinyConfig('lalte', { steps: 6, data: undefined }))
    for (let i = 0; i < 3; i++) await a.trainStep()
    await saveCheckpoint(file, a)
    expect(existsSync(file)).toBe(true)
    const meta = readCheckpointMeta(file)
    expect(meta.step).toBe(3)
    expect(meta.history.map((h) => h.loss)).toEqual(a.history.map((h) => h.loss))
    const next = await a.trainStep()
    const after = await a.trainStep()

    const b = await loadCheckpoint(file, (c) => createTask(c.data, c, brown(), 2))
    expect(b.step).toBe(3)
    expect(b.tokens).toBe(3 * 8 * 32)
    const resumed = await b.trainStep()
    expect(resumed.loss).toBe(next.loss)
    expect(resumed.gradNorm).toBe(next.gradNorm)
    expect((await b.trainStep()).loss).toBe(after.loss)
    const pa = flattenTree(a.params).map((p) => Array.from(p.dataSync()))
    const pb = flattenTree(b.params).map((p) => Array.from(p.dataSync()))
    expect(pb).toEqual(pa)
    a.dispose()
    b.dispose()
    expect(memory().liveTensors).toBe(live)
  })

  it('rejects a checkpoint whose tensors do not fit the model', async () => {
    const file = path.join(tempDir(), 'dense.safetensors')
    const t = await tinyTrainer(await tinyConfig('dense', { steps: 2 }))
    await t.trainStep()
    const wider = { ...t.config, model: { ...t.config.model, mlpHidden: t.config.model.mlpHidden + 8 } }
    const { params, optimizer, tokens, history, evals } = t
    await saveCheckpoint(file, { params, optimizer, tokens, history, evals, config: wider })
    t.dispose()
    const live = memory().liveTensors
    await expect(loadCheckpoint(file, (c) => createTask(c.data, c, brown(), 2))).rejects.toThrow(
      /tensor 'params.blocks.0.mlp.gate' expected float32 \[136, 32\], got float32 \[128, 32\]/,
    )
    expect(memory().liveTensors).toBe(live)
  })

  it('trains on S-NIAH with loss on the answer only, and measures decode memory', async () => {
    const data: DataConfig = {
      kind: 'niah',
      lengths: [128, 256],
      evalLengths: [128],
      evalSamples: 4,
      keyLength: 5,
      valueDigits: 6,
      trainNeedles: 1,
      fillerWeight: 0.5,
    }
    const live = memory().liveTensors
    const t = await tinyTrainer(await tinyConfig('full', { steps: 4, data, seqLen: 128 }))
    for (let i = 0; i < 4; i++) await t.trainStep()
    // Rows scale with the drawn length, so every step has batch x seqLen tokens.
    expect(t.history.every((h) => h.stepTokens === 8 * 128)).toBe(true)
    const e = await t.evaluate()
    expect(e.metrics['niah_acc@128']).toBeGreaterThanOrEqual(0)
    expect(e.metrics['niah_acc@128']).toBeLessThanOrEqual(1)
    expect(e.metrics['answer_loss@128']).toBeGreaterThan(0)
    const tokens = new Int32Array(2 * 64).map((_, i) => (i * 7) % 256)
    const mem = await measureDecodeMemory(t.model, t.params, {
      tokens,
      batch: 2,
      length: 64,
      snapshots: [16, 64],
      dtype: 'float32',
    })
    // Full attention keeps K and V of every token: 2 layers x 2 (K, V) x 32 features x 4 bytes.
    expect(mem.path).toBe('step')
    expect(mem.points.map((p) => p.bytesPerSequence)).toEqual([16 * 512, 64 * 512])
    t.dispose()
    expect(memory().liveTensors).toBe(live)
  })
})
