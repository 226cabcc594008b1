/**
 * The browser test page's script: starts the WebGPU backend on navigator.gpu, runs the core
 * subset of the conformance suite (matmul, softmax, attention, with their gradients) against
 * the CPU reference, and publishes the outcome on window.__attnkit for the test driver.
 */
import { backend } from '@attnkit/core'
import { allCases, type CheckResult, runCase } from '@attnkit/core/testing'
import { createWebGPUBackend } from '../src/browser.js'

export const BROWSER_CASES = [
  'matmul/odd',
  'matmul/tB',
  'softmax/last',
  'attention/causal',
  'attention/gqa-causal',
]

interface PageResult {
  done: true
  ok: boolean
  adapter: string
  features: string[]
  checks: number
  failures: string[]
  error?: string
}

function show(r: PageResult): void {
  ;(globalThis as { __attnkit?: PageResult }).__attnkit = r
  const pre = document.createElement('pre')
  pre.id = 'result'
  pre.textContent = JSON.stringify(r, null, 2)
  document.body.append(pre)
}

async function main(): Promise<void> {
  let adapter = ''
  let features: string[] = []
  try {
    const gpu = await createWebGPUBackend()
    adapter = gpu.info().device
    features = gpu.info().features
    const cpu = await backend('cpu')
    const results: CheckResult[] = []
    for (const c of allCases().filter((x) => BROWSER_CASES.includes(x.name))) {
      for (const dtype of c.dtypes.filter((d) => d === 'float32' || d === 'float16')) {
        results.push(...(await runCase(c, dtype, gpu, cpu)))
      }
    }
    const failures = results
      .filter((r) => !r.ok)
      .map((r) => `${r.case} ${r.dtype} ${r.check}: error ${r.error} (tol ${r.tolerance}) ${r.detail ?? ''}`)
    show({
      done: true,
      ok: failures.length === 0 && results.length > 0,
      adapter,
      features,
      checks: results.length,
      failures,
    })
  } catch (e) {
    show({ done: true, ok: false, adapter, features, checks: 0, failures: [], error: (e as Error).message })
  }
}

void main()
