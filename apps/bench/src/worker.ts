import type { DType } from '@attnkit/core'
import { backendReport, loadBackends } from './backends.js'
import { ReferenceCache } from './correctness.js'
import type { ReferenceJob, WorkerJob, WorkerMessage } from './isolate.js'
import type { MechanismAdapter } from './mechanisms/adapter.js'
import { loadMechanisms } from './mechanisms/registry.js'
import { runBackendCells } from './runner.js'

/**
 * The child side of isolate.ts: runs one backend's cells and reports each over IPC, waiting for
 * every message to be handed to the parent before going on, so that a crash mid-cell still
 * leaves the parent knowing which cell it was.
 */
export async function workerMain(): Promise<void> {
  if (!process.send) throw new Error('__worker is started by `run`, with an IPC channel')
  // If the parent goes away (killed, interrupted), so does this worker.
  process.on('disconnect', () => process.exit(1))
  const job = await new Promise<WorkerJob>((resolve) =>
    process.once('message', (m) => resolve(m as WorkerJob)),
  )
  const send = (m: WorkerMessage) =>
    new Promise<void>((resolve, reject) =>
      process.send!(m, undefined, {}, (e) => (e ? reject(e) : resolve())),
    )

  const [loaded] = await loadBackends([job.backend])
  await send({ type: 'backend', report: backendReport(loaded) })
  const cells = job.todo.map((i) => job.plan[i])
  const adapters = new Map<string, MechanismAdapter>()
  const unavailable = new Map<string, string>()
  for (const m of await loadMechanisms([...new Set(cells.map((c) => c.mechanism))])) {
    if ('adapter' in m) adapters.set(m.name, m.adapter)
    else unavailable.set(m.name, m.reason)
  }
  // Test hooks: crash (as a native fault would), or hang (as a stuck kernel would), when starting
  // the cell whose progress label contains the variable's value.
  const crashAt = process.env.ATTNKIT_BENCH_TEST_CRASH
  const hangAt = process.env.ATTNKIT_BENCH_TEST_HANG
  await runBackendCells(
    cells,
    loaded,
    adapters,
    unavailable,
    job.settings,
    {
      begin: async (k, label) => {
        await send({ type: 'begin', index: job.todo[k], label })
        if (crashAt && label.includes(crashAt)) process.kill(process.pid, 'SIGSEGV')
        if (hangAt && label.includes(hangAt))
          for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
      },
      end: (k, result) => send({ type: 'end', index: job.todo[k], result }),
    },
    new Set(job.stoppedSeries),
    new ReferenceCache(job.settings.referenceDir),
  )
  await send({ type: 'done' })
}

/**
 * A reference helper: walks the plan computing the CPU float64 references the GPU workers will
 * check against, into the run's shared store, skipping those another process has or is computing.
 */
export async function referenceHelperMain(): Promise<void> {
  if (!process.send) throw new Error('__references is started by `run`, with an IPC channel')
  process.on('disconnect', () => process.exit(0))
  const job = await new Promise<ReferenceJob>((resolve) =>
    process.once('message', (m) => resolve(m as ReferenceJob)),
  )
  const refs = new ReferenceCache(job.settings.referenceDir)
  const mechanisms = await loadMechanisms([...new Set(job.plan.map((c) => c.mechanism))])
  for (const cell of job.plan) {
    const m = mechanisms.find((x) => x.name === cell.mechanism)
    if (!m || !('adapter' in m)) continue
    try {
      const dims = m.adapter.checkDims(cell.dims, cell.mode)
      await refs.prefetch({
        adapter: m.adapter,
        variant: cell.variant,
        mode: cell.mode,
        dims,
        dtype: cell.dtype as DType,
        seed: job.settings.seed,
      })
    } catch {
      // The worker computing this cell's reference itself reports the error in its cell.
    }
  }
}
