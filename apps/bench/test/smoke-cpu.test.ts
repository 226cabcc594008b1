import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { memory } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { validateResults } from '../src/schema.js'
import { readResults, runCli, tempDir } from './helpers.js'

describe('run --preset smoke on the CPU', () => {
  it('writes valid JSON, Markdown and charts; the headline cells run and pass correctness', async () => {
    const out = tempDir()
    const live = memory('cpu').liveTensors
    const r = await runCli(['run', '--preset', 'smoke', '--backend', 'cpu', '--out', out])
    const results = readResults(out)
    expect(validateResults(results)).toEqual([])
    expect(r.code, r.out).toBe(0)
    expect(results.preset).toBe('smoke')
    expect(results.backends.map((b) => [b.name, b.status])).toEqual([['cpu', 'ok']])

    const ran = results.cells.filter((c) => c.status !== 'unavailable')
    expect(ran.length).toBeGreaterThanOrEqual(4)
    for (const c of ran) {
      expect(c.status, `${c.key}: ${c.reason}`).toBe('ok')
      expect(c.correctness?.passed, c.key).toBe(true)
      expect(c.correctness?.maxRelError).toBeGreaterThanOrEqual(0)
      expect(c.timing!.repeats).toBeGreaterThanOrEqual(3)
      expect(c.timing!.p10Ms).toBeLessThanOrEqual(c.timing!.medianMs)
      expect(c.timing!.medianMs).toBeLessThanOrEqual(c.timing!.p90Ms)
      expect(c.throughput!.flopsPerSecond).toBeGreaterThan(0)
      expect(c.peakBytes).toBeGreaterThan(0)
    }
    // The two numbers the foundation issue asks the smoke run to print.
    const mm = results.cells.find((c) => c.mechanism === 'matmul' && c.backend === 'cpu')!
    expect(mm.dims).toEqual({ m: 1024, n: 1024, k: 1024 })
    expect(mm.dtype).toBe('float32')
    expect(mm.headline).toBeTruthy()
    const dense = results.cells.find((c) => c.mechanism === 'dense' && c.headline)!
    expect([dense.mode, dense.dims]).toEqual(['forward', { batch: 1, heads: 8, seqLen: 512, headDim: 64 }])
    expect(r.out).toMatch(/Headline:\n {2}matmul 1024\^3 float32 on cpu: [\d.]+ GFLOP\/s/)
    expect(r.out).toMatch(
      /dense causal attention forward, batch 1, heads 8, seq 512, head dim 64, float32 on cpu: [\d.]+ ms/,
    )
    // KV cache of dense decode: 2 (K and V) x heads x headDim x 4 bytes per token.
    const decode = results.cells.find((c) => c.mechanism === 'dense' && c.mode === 'decode')!
    expect(decode.kvCacheBytes).toBe(2 * decode.dims.heads * decode.dims.headDim * 4 * decode.dims.seqLen)

    const md = readFileSync(path.join(out, 'results.md'), 'utf8')
    expect(md).toContain('## Headline')
    expect(md).toContain('| cpu | matmul/nn | forward | 1024x1024x1024 | float32 | ok |')
    for (const f of ['time-forward-float32.svg', 'kv-cache.svg'])
      expect(existsSync(path.join(out, f)), f).toBe(true)
    expect(memory('cpu').liveTensors).toBe(live)
  })
})
