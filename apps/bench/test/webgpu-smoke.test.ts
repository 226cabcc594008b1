import { hasKernel } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { loadBackends } from '../src/backends.js'
import { validateResults } from '../src/schema.js'
import { builtCli, readResults, runBuiltCli, tempDir } from './helpers.js'

// The core ops the smoke preset's dense and matmul cells need from a backend.
const NEEDED_KERNELS = ['matmul', 'attention', 'attentionBackward']

const [webgpu] = await loadBackends(['webgpu'])
const missing = webgpu.backend ? NEEDED_KERNELS.filter((k) => !hasKernel(k, 'webgpu')) : []
const skipReason = !webgpu.backend
  ? `WebGPU unavailable: ${webgpu.reason}`
  : missing.length > 0
    ? `@attnkit/backend-webgpu has no ${missing.join(', ')} kernel yet`
    : null
if (skipReason) console.log(`skipping the WebGPU smoke run: ${skipReason}`)

describe.skipIf(skipReason !== null)('run --preset smoke on WebGPU (lavapipe here)', () => {
  it('runs every available cell, each passing correctness against the CPU reference; the CPU runs alongside', async () => {
    const out = tempDir()
    // A child process per backend, as the CLI runs: a native crash is reported as that cell's error.
    // One timed run per cell keeps this to a minute or two on lavapipe; correctness is the point.
    const r = await runBuiltCli(await builtCli(), [
      'run',
      '--preset',
      'smoke',
      '--backend',
      'cpu,webgpu',
      // The CPU backend's worker runs at the same time as WebGPU's, both sharing one reference store.
      '--cpu-alongside',
      'on',
      '--out',
      out,
      '--quiet',
      '--warmup',
      '0',
      '--repeats',
      '1',
    ])
    const results = readResults(out)
    expect(validateResults(results)).toEqual([])
    expect(results.backends.map((b) => [b.name, b.status])).toEqual([
      ['cpu', 'ok'],
      ['webgpu', 'ok'],
    ])
    const ran = results.cells.filter((c) => c.status !== 'unavailable')
    expect(new Set(ran.map((c) => c.backend))).toEqual(new Set(['cpu', 'webgpu']))
    expect(ran.map((c) => c.mechanism)).toEqual(expect.arrayContaining(['matmul', 'dense']))
    for (const c of ran) {
      expect(c.status, `${c.key}: ${c.reason}`).toBe('ok')
      expect(c.correctness?.passed, c.key).toBe(true)
      // WebGPU times on the device (timestamp queries); the CPU reference by the host clock.
      expect(c.timing?.source, c.key).toBe(c.backend === 'webgpu' ? 'device' : 'host')
    }
    expect(r.status, r.stdout).toBe(0)
  })
})
