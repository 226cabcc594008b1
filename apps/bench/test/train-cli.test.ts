import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { memory } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { loadBrown } from '../src/train/data/brown.js'
import type { DecodeMemory } from '../src/train/decode-memory.js'
import { readResults } from '../src/train/results.js'
import { planExperiment, runSession } from '../src/train/run-experiment.js'
import { runCli, tempDir } from './helpers.js'

describe('attnkit-bench train', () => {
  it('trains --model runs with checkpoints, resumes one, and charts them', async () => {
    const out = tempDir()
    const live = memory('cpu').liveTensors
    const size = ['--d-model', '32', '--layers', '2', '--head-dim', '16', '--seq-len', '32', '--batch', '4']
    const r = await runCli([
      'train',
      '--model',
      'dense,gqa',
      '--steps',
      '4',
      ...size,
      '--eval-batches',
      '1',
      '--out',
      out,
    ])
    expect(r.code, r.err).toBe(0)
    expect(r.err).toMatch(/step 4\/4 loss \d\.\d{4} \| [\d.]+k? tok\/s/)
    const results = readResults(path.join(out, 'results.json'))
    expect(results.runs.map((x) => [x.id, x.summary?.stepsDone, x.error])).toEqual([
      ['dense', 4, undefined],
      ['gqa', 4, undefined],
    ])
    expect(existsSync(path.join(out, 'dense.safetensors'))).toBe(true)

    const resumed = path.join(out, 'resumed')
    const r2 = await runCli([
      'train',
      '--resume',
      path.join(out, 'dense.safetensors'),
      '--steps',
      '6',
      '--out',
      resumed,
    ])
    expect(r2.code, r2.err).toBe(0)
    expect(r2.err).toMatch(/resumed from .* at step 4/)
    const again = readResults(path.join(resumed, 'results.json')).runs[0].summary!
    expect(again.stepsDone).toBe(6)
    expect(again.tokens).toBe(6 * 4 * 32)

    const svg = path.join(out, 'both.svg')
    const r3 = await runCli([
      'train',
      '--chart',
      path.join(out, 'dense.safetensors'),
      path.join(out, 'gqa.safetensors'),
      '--to',
      svg,
    ])
    expect(r3.code, r3.err).toBe(0)
    const text = readFileSync(svg, 'utf8')
    expect(text).toMatch(/^<svg/)
    expect(text.match(/<polyline/g)?.length).toBe(2)
    expect(memory('cpu').liveTensors).toBe(live)
  })

  it('rejects bad options naming them', async () => {
    const r = await runCli(['train', '--model', 'nope'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/--model: expected one of dense, .*, got 'nope'/)
    const r2 = await runCli(['train', '--experiment', 'mosa-vs-dense', '--scale', 'huge'])
    expect(r2.code).toBe(2)
    expect(r2.err).toMatch(/--scale: expected one of full, tiny, got 'huge'/)
  })

  it('runs the three experiment presets at tiny scale and assembles RESULTS.md', async () => {
    const root = tempDir()
    const files: string[] = []
    for (const e of ['mosa-vs-dense', 'tpa-vs-mha', 'lalte-niah']) {
      const out = path.join(root, e)
      const r = await runCli([
        'train',
        '--experiment',
        e,
        '--scale',
        'tiny',
        '--steps',
        '3',
        '--quiet',
        '--out',
        out,
      ])
      expect(r.code, r.err).toBe(0)
      files.push(path.join(out, 'results.json'))
      const res = readResults(files.at(-1)!)
      expect(res.scale).toBe('tiny')
      for (const run of res.runs) {
        expect(run.error, run.id).toBeUndefined()
        expect(run.summary!.stepsDone).toBe(3)
        expect(run.measurements.leakedTensors).toBeUndefined()
      }
      if (e === 'mosa-vs-dense') {
        const [dense, mosa] = res.runs
        expect(dense.measurements.sparseHeads).toBe(0)
        expect(mosa.measurements.sparseHeads).toBeGreaterThan(0)
        // FLOP-matched: MoSA's attention costs no more than the dense layer's.
        expect(mosa.measurements.attentionTrainingGflopsPerSeq as number).toBeLessThanOrEqual(
          dense.measurements.attentionTrainingGflopsPerSeq as number,
        )
        expect(dense.summary!.final.val_ppl).toBeGreaterThan(1)
      }
      if (e === 'tpa-vs-mha') {
        const params = res.runs.map((x) => x.summary!.params)
        const [mha, gqa, tpa] = res.runs.map((x) => x.measurements.kvCacheBytesPerToken as number)
        for (const p of params) expect(Math.abs(p - params[0]) / params[0]).toBeLessThan(0.01)
        expect(gqa).toBeLessThan(mha)
        expect(tpa).toBeLessThan(mha)
        for (const run of res.runs)
          expect(run.measurements.kvCacheBytesPerToken).toBe(run.measurements.kvCacheBytesPerTokenModelled)
      }
      if (e === 'lalte-niah') {
        const decode = Object.fromEntries(res.runs.map((x) => [x.id, x.measurements.decode as DecodeMemory]))
        const bytes = (id: string) => decode[id].points.map((p) => p.bytesPerSequence)
        // Constant-size states for the GDN models; full attention grows with the context.
        for (const id of ['lalte', 'gdn', 'gdn-swa']) expect(new Set(bytes(id)).size, id).toBe(1)
        expect(bytes('full')[1]).toBe(2 * bytes('full')[0])
        for (const run of res.runs) expect(run.summary!.final['niah_acc@256']).toBeGreaterThanOrEqual(0)
      }
      const md = readFileSync(path.join(out, 'results.md'), 'utf8')
      expect(md).toMatch(/CPU smoke run/)
      expect(md).toMatch(/\| run \| mixer \| params/)
    }
    const doc = path.join(root, 'RESULTS.md')
    const r = await runCli(['train', '--assemble', ...files, '--to', doc])
    expect(r.code, r.err).toBe(0)
    const text = readFileSync(doc, 'utf8')
    expect(text.match(/Not yet run at full scale/g)?.length).toBe(3)
    expect(text).toMatch(/train --experiment lalte-niah --backend cuda/)
    const chart = path.join(root, 'results', 'lalte-niah-tiny-cpu-loss.svg')
    expect(existsSync(chart)).toBe(true)
    // One <title> names the chart (for screen readers), besides the per-point tooltips.
    expect(readFileSync(chart, 'utf8').match(/^<title>/gm)?.length).toBe(1)
  })

  it('sizes a calibrated session to its time budget, with equal steps for every run', async () => {
    const plan = await planExperiment('tpa-vs-mha', 'tiny', {})
    plan.calibrate = { trainSeconds: 0.5, minSteps: 3, maxSteps: 40 }
    const out = tempDir()
    const err = {
      text: '',
      write(s: string) {
        this.text += s
        return true
      },
    }
    const r = await runSession(plan, {
      corpus: loadBrown(),
      outDir: out,
      backend: { name: 'cpu' },
      precision: 'fp32',
      command: 'test',
      log: err as unknown as NodeJS.WriteStream,
    })
    const cal = r.calibration!
    expect(Object.keys(cal.secondsPerStep)).toEqual(['mha', 'gqa', 'tpa'])
    const perStep = Object.values(cal.secondsPerStep).reduce((a, b) => a + b, 0)
    expect(cal.steps).toBe(Math.max(3, Math.min(40, Math.floor(0.5 / perStep))))
    for (const run of r.runs) expect(run.summary!.stepsDone).toBe(cal.steps)
    expect(err.text).toMatch(/calibration mha: \d+ ms\/step/)
    expect(readFileSync(path.join(out, 'results.md'), 'utf8')).toMatch(/Steps sized to 0.5 s of training/)
  })
})
