import { describe, expect, it } from 'vitest'
import { validateResults } from '../src/schema.js'
import { builtCli, readResults, runBuiltCli, tempDir } from './helpers.js'

/** The CLI's dense cells at T=64 on the CPU, in worker processes, with extra options. */
async function runDense(out: string, extra: string[], env: Record<string, string>) {
  const common = ['--backend', 'cpu', '--mechanism', 'dense', '--seq', '64', '--repeats', '1']
  return runBuiltCli(await builtCli(), ['run', ...common, ...extra, '--out', out, '--quiet'], env)
}

describe('a native crash in one cell', () => {
  it('becomes that cell error; the cells after it run in a new process', async () => {
    const out = tempDir()
    const r = await runDense(
      out,
      [],
      // The worker kills itself with SIGSEGV when it starts the cell with this label.
      { ATTNKIT_BENCH_TEST_CRASH: 'cpu dense/causal forward+backward' },
    )
    expect(r.status).toBe(1)
    const results = readResults(out)
    expect(validateResults(results)).toEqual([])
    expect(results.cells.map((c) => [c.mode, c.status])).toEqual([
      ['forward', 'ok'],
      ['forward+backward', 'error'],
      ['decode', 'ok'],
    ])
    expect(results.cells[1].reason).toBe(
      'the cpu worker process died (signal SIGSEGV) during this cell; the run went on in a new process',
    )
    expect(r.stdout).toContain('1 errors')
  })

  it('a cell that hangs is stopped after --cell-timeout; the run goes on', async () => {
    const out = tempDir()
    const r = await runDense(out, ['--cell-timeout', '2'], {
      ATTNKIT_BENCH_TEST_HANG: 'cpu dense/causal forward B1',
    })
    const results = readResults(out)
    expect(results.cells.map((c) => [c.mode, c.status])).toEqual([
      ['forward', 'error'],
      ['forward+backward', 'ok'],
      ['decode', 'ok'],
    ])
    expect(results.cells[0].reason).toBe(
      'the cpu worker process was stopped after 2 s on one cell (--cell-timeout) during this cell; the run went on in a new process',
    )
    expect(r.status).toBe(1)
  })

  it('a CPU cell slower than --cpu-cell-timeout is stopped and reported skipped (too slow for cpu)', async () => {
    const out = tempDir()
    const r = await runDense(out, ['--cpu-cell-timeout', '2'], {
      ATTNKIT_BENCH_TEST_HANG: 'cpu dense/causal forward B1',
    })
    const results = readResults(out)
    expect(results.cells.map((c) => [c.mode, c.status])).toEqual([
      ['forward', 'skipped'],
      ['forward+backward', 'ok'],
      ['decode', 'ok'],
    ])
    expect(results.cells[0].reason).toBe(
      'too slow for cpu: the cpu worker process was stopped after 2 s on one cell (--cpu-cell-timeout); the run went on in a new process',
    )
    // Each cell that ran says how long it took, and how much of that was its correctness check.
    for (const c of results.cells.slice(1)) {
      expect(c.wallS?.total, c.key).toBeGreaterThan(0)
      expect(c.wallS?.check, c.key).toBeGreaterThan(0)
      expect(c.wallS!.check).toBeLessThanOrEqual(c.wallS!.total)
      expect(c.wallS?.setup, c.key).toBeGreaterThan(0)
      expect(c.wallS!.setup! + c.wallS!.check).toBeLessThanOrEqual(c.wallS!.total)
    }
    expect(r.status).toBe(0)
  })
})
