import { add, matmulCost, memory, scalar, backend as startBackend, type Tensor, tidy } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { backendDeadline } from '../src/isolate.js'
import type { MechanismAdapter } from '../src/mechanisms/adapter.js'
import { denseAdapter } from '../src/mechanisms/dense.js'
import type { PlannedCell } from '../src/plan.js'
import { Progress } from '../src/progress.js'
import { cpuSeconds, type RunSettings, runMatrix } from '../src/runner.js'

const settings: RunSettings = {
  seed: 7,
  warmup: 0,
  repeats: 3,
  minRepeats: 3,
  cellBudgetMs: 100,
  fitMs: Number.POSITIVE_INFINITY,
  check: true,
  cpuMaxSeconds: 2.5,
  cellTimeoutS: 300,
  cpuCellTimeoutS: 60,
  cpuAlongside: false,
}

/** An adapter whose set-up throws, and one whose output is off by a constant on the backend under test. */
/** A dense causal forward cell in float32 (the runner's tests vary only its dims). */
const denseCell = (dims: PlannedCell['dims'], extra: Partial<PlannedCell> = {}): PlannedCell => ({
  mechanism: 'dense',
  variant: 'causal',
  mode: 'forward',
  dtype: 'float32',
  dims,
  ...extra,
})

function brokenAdapters(): MechanismAdapter[] {
  const base = {
    variants: [{ name: 'v', description: '' }],
    modes: ['forward'] as const,
    requiredDims: ['n'],
    label: (d: Record<string, number>) => `n${d.n}`,
    checkDims: (d: Record<string, number>) => d,
    cost: (d: Record<string, number>) => matmulCost(d.n, d.n, d.n, 'float32'),
    kvCacheBytes: () => null,
  }
  return [
    {
      ...base,
      name: 'throws',
      description: 'set-up throws',
      setup: () => {
        throw new Error('deliberate failure in set-up')
      },
    },
    {
      ...base,
      name: 'wrong',
      description: 'adds 1 except on the float64 reference',
      setup: (ctx, d) => {
        const x = ctx.normal([d.n])
        const off = ctx.dtype === 'float64' ? 0 : 1
        return {
          run: () =>
            tidy(() => ({ out: add(x, scalar(off, { dtype: x.dtype, backend: ctx.backend })) as Tensor })),
          dispose: () => x.dispose(),
        }
      },
    },
  ]
}

describe('runMatrix', () => {
  it('reports a cell that throws and one that fails correctness, and runs the cells after them', async () => {
    const cpu = await startBackend('cpu')
    const adapters = new Map<string, MechanismAdapter>([['dense', denseAdapter]])
    for (const a of brokenAdapters()) adapters.set(a.name, a)
    const plan: PlannedCell[] = [
      { mechanism: 'throws', variant: 'v', mode: 'forward', dtype: 'float32', dims: { n: 8 } },
      { mechanism: 'wrong', variant: 'v', mode: 'forward', dtype: 'float32', dims: { n: 8 } },
      { mechanism: 'missing', variant: 'default', mode: 'forward', dtype: 'float32', dims: { n: 8 } },
      denseCell({ batch: 1, heads: 2, seqLen: 32, headDim: 16 }),
      denseCell({ batch: 1, heads: 2, seqLen: 32 }),
    ]
    const live = memory('cpu').liveTensors
    const cells = await runMatrix(
      plan,
      [{ name: 'cpu', backend: cpu }],
      adapters,
      new Map([['missing', 'its package is not built']]),
      settings,
      new Progress({ write: () => true }, true),
    )
    expect(cells.map((c) => c.status)).toEqual(['error', 'failed', 'unavailable', 'ok', 'error'])
    expect(cells[0].reason).toBe('timing: deliberate failure in set-up')
    expect(cells[1].reason).toMatch(/^correctness: max rel\. error [\d.e+-]+ > tolerance/)
    expect(cells[1].correctness?.passed).toBe(false)
    expect(cells[1].timing?.repeats).toBe(3)
    expect(cells[2].reason).toBe('mechanism missing: its package is not built')
    expect(cells[3].correctness?.passed).toBe(true)
    expect(cells[4].reason).toMatch(/dimension 'headDim' must be a positive integer, got nothing/)
    expect(memory('cpu').liveTensors).toBe(live)
  })

  it("keeps a backend's late error report with the failed cell, not the next one", async () => {
    const cpu = await startBackend('cpu')
    // As WebGPU does: the failed cell's work is reported as an error at the next synchronize.
    let pending: string | null = null
    const { synchronize, time } = cpu
    cpu.synchronize = async () => {
      const e = pending
      pending = null
      if (e) throw new Error(e)
    }
    cpu.time = async (fn) => {
      await cpu.synchronize()
      return time.call(cpu, fn)
    }
    const [, wrong] = brokenAdapters()
    const failing: MechanismAdapter = {
      ...wrong,
      name: 'late',
      setup: () => {
        pending = 'webgpu: the GPU reported: binding too large'
        throw new Error('deliberate failure in set-up')
      },
    }
    const adapters = new Map<string, MechanismAdapter>([
      ['late', failing],
      ['dense', denseAdapter],
    ])
    const plan: PlannedCell[] = [
      { mechanism: 'late', variant: 'v', mode: 'forward', dtype: 'float32', dims: { n: 8 } },
      denseCell({ batch: 1, heads: 2, seqLen: 32, headDim: 16 }),
    ]
    const cells = await runMatrix(
      plan,
      [{ name: 'cpu', backend: cpu }],
      adapters,
      new Map(),
      settings,
      new Progress({ write: () => true }, true),
    ).finally(() => {
      cpu.synchronize = synchronize
      cpu.time = time
    })
    expect(cells.map((c) => [c.status, c.reason])).toEqual([
      ['error', expect.any(String)],
      ['ok', undefined],
    ])
    expect(cells[0].reason).toBe(
      'timing: deliberate failure in set-up; the backend then reported: webgpu: the GPU reported: binding too large',
    )
  })

  it('skips cells too large for the CPU and stops a sweep at the first size that does not fit', async () => {
    const cpu = await startBackend('cpu')
    const adapters = new Map<string, MechanismAdapter>([['dense', denseAdapter]])
    const dims = (seqLen: number) => ({ batch: 1, heads: 1, seqLen, headDim: 16 })
    const sweep = [64, 128, 256, 512].map((t) => denseCell(dims(t), { series: 's' }))
    // 128 fits under the limit, 256 does not: the sweep keeps 64, 128 and the skipped 256, and drops 512.
    const limit = cpuSeconds(denseAdapter.cost(dims(200), 'causal', 'forward', 'float32'))
    const cells = await runMatrix(
      sweep,
      [{ name: 'cpu', backend: cpu }],
      adapters,
      new Map(),
      { ...settings, check: false, cpuMaxSeconds: limit },
      new Progress({ write: () => true }, true),
    )
    expect(cells.map((c) => [c.dims.seqLen, c.status])).toEqual([
      [64, 'ok'],
      [128, 'ok'],
      [256, 'skipped'],
    ])
    expect(cells[2].reason).toMatch(/^too large for cpu: /)
    expect(cells[2].warnings.join()).toMatch(/the sweep stops here/)
    expect(cells[0].correctness).toBeNull()
  })

  it("an adapter's measured CPU slowdown scales the estimate the limit is checked against", async () => {
    const cpu = await startBackend('cpu')
    const slow: MechanismAdapter = { ...denseAdapter, cpuSlowdown: (mode) => (mode === 'forward' ? 10 : 1) }
    const dims = { batch: 1, heads: 1, seqLen: 64, headDim: 16 }
    const cell = denseCell(dims)
    // The limit lies between the plain estimate and 10x it.
    const limit = 3 * cpuSeconds(denseAdapter.cost(dims, 'causal', 'forward', 'float32'))
    const run = (adapter: MechanismAdapter) =>
      runMatrix(
        [cell],
        [{ name: 'cpu', backend: cpu }],
        new Map([['dense', adapter]]),
        new Map(),
        { ...settings, check: false, cpuMaxSeconds: limit },
        new Progress({ write: () => true }, true),
      )
    expect((await run(denseAdapter))[0].status).toBe('ok')
    const [skipped] = await run(slow)
    expect(skipped.status).toBe('skipped')
    expect(skipped.reason).toMatch(/^too large for cpu: .*10x its rates as measured for this mechanism\) > /)
  })

  it('warns about tensors a cell leaves alive', async () => {
    const cpu = await startBackend('cpu')
    const leaky: MechanismAdapter = {
      ...denseAdapter,
      name: 'leaky',
      setup: (ctx, d, v, m) => {
        ctx.normal([3]) // never disposed
        return denseAdapter.setup(ctx, d, v, m)
      },
    }
    const [cell] = await runMatrix(
      [
        {
          mechanism: 'leaky',
          variant: 'causal',
          mode: 'forward',
          dtype: 'float32',
          dims: { batch: 1, heads: 1, seqLen: 8, headDim: 8 },
        },
      ],
      [{ name: 'cpu', backend: cpu }],
      new Map([['leaky', leaky]]),
      new Map(),
      settings,
      new Progress({ write: () => true }, true),
    )
    expect(cell.status).toBe('ok')
    // One per set-up: the timed run's, the correctness check's and the CPU reference's.
    expect(cell.warnings).toEqual(['3 tensor(s) left alive on cpu after the cell (a leak)'])
  })

  it('skips every cell once the time limit has passed, and says why', async () => {
    const cpu = await startBackend('cpu')
    const cells = await runMatrix(
      [denseCell({ batch: 1, heads: 1, seqLen: 8, headDim: 8 })],
      [{ name: 'cpu', backend: cpu }],
      new Map([['dense', denseAdapter]]),
      new Map(),
      { ...settings, deadline: Date.now() - 1 },
      new Progress({ write: () => true }, true),
    )
    expect(cells.map((c) => [c.status, c.reason, c.timing])).toEqual([
      [
        'skipped',
        "not run: the backend's share of the run's time limit (--max-minutes) was used up (--resume runs it)",
        null,
      ],
    ])
  })

  it('marks every cell of an unavailable backend with its reason', async () => {
    const cells = await runMatrix(
      [denseCell({ batch: 1, heads: 1, seqLen: 8, headDim: 8 })],
      [{ name: 'cuda', reason: 'no CUDA driver (libcuda.so.1 not found)' }],
      new Map([['dense', denseAdapter]]),
      new Map(),
      settings,
      new Progress({ write: () => true }, true),
    )
    expect(cells.map((c) => [c.status, c.reason])).toEqual([
      ['unavailable', 'backend cuda: no CUDA driver (libcuda.so.1 not found)'],
    ])
  })
})

describe('backendDeadline (--max-minutes shared by backends run one after another)', () => {
  it('gives each backend an equal part of what is left; the last gets all of it', () => {
    expect(backendDeadline(undefined, 1000, 2)).toBeUndefined()
    // 600 s left for two GPU backends: the first may start cells for 300 s.
    expect(backendDeadline(601_000, 1_000, 2)).toBe(301_000)
    // The first used only 100 s: the second gets the remaining 500 s.
    expect(backendDeadline(601_000, 101_000, 1)).toBe(601_000)
    // Past the deadline: no time at all.
    expect(backendDeadline(500, 1_000, 2)).toBe(1_000)
  })
})
