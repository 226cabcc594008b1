/**
 * The whole conformance suite of @attnkit/core on this machine's WebGPU adapter, against the
 * CPU reference: prints the summary (and failures), optionally writes every check as JSON.
 *
 *   node conformance.mjs [--json=<file>] [--dawn=<option>]...
 */
import { writeFileSync } from 'node:fs'
import { formatSummary, runConformance } from '@attnkit/core/testing'
import { createWebGPUBackend } from '../src/index.js'

const args = process.argv.slice(2)
const jsonOut = args.find((a) => a.startsWith('--json='))?.slice(7)
const dawnOptions = args.filter((a) => a.startsWith('--dawn=')).map((a) => a.slice(7))
// --specialised: compile as for GPUs (constant loop bounds) even on a CPU adapter.
const lean = args.includes('--specialised') ? false : undefined
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',')

async function main(): Promise<void> {
  const gpu = await createWebGPUBackend({ dawnOptions, lean })
  const t0 = performance.now()
  const summary = await runConformance(gpu, { only })
  const seconds = ((performance.now() - t0) / 1000).toFixed(1)
  console.log(formatSummary(summary))
  console.log(`(${summary.results.length} checks in ${seconds} s; ${JSON.stringify(gpu.info().details)})`)
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(summary, null, 2))
  gpu.dispose()
  if (summary.failed > 0) process.exitCode = 1
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
