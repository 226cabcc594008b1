/**
 * Everything the H100 run does in one process: extra flash-attention checks, the whole
 * conformance suite against the CPU reference, the allocation-leak check, then the speed
 * benchmarks side by side with PyTorch. Bundled by device/bundle.mjs; started by device/run.sh.
 * Results go to stdout and, when OUT is set, to files under it.
 */
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as o from '@attnkit/core'
import { formatSummary, runCase, runConformance } from '@attnkit/core/testing'
import { benchAttention, benchMatmul, createCudaBackend, runTorchReference } from '../src/index.js'
import {
  BWD_ALTERNATIVES,
  BWD_WGMMA_ALTERNATIVES,
  FWD_ALTERNATIVES,
  FWD_WGMMA_ALTERNATIVES,
  tunableString,
} from '../src/kernels/attention.js'
import { flashCases } from './flash-cases.js'

const OUT = process.env.OUT ?? ''
const log = (line: string) => {
  console.log(line)
  if (OUT) appendFileSync(join(OUT, 'log.txt'), `${line}\n`)
}
const save = (file: string, text: string) => {
  if (OUT) writeFileSync(join(OUT, file), text)
}
// ATTNKIT_RUNNER_QUICK=1: a rehearsal (the GQA head-dim-128 flash case, a few conformance cases, no
// speed runs). ATTNKIT_RUNNER_SKIP_BWD_WGMMA=1: the backward stays on mma.sync throughout (after a
// rehearsal that crashed on the wgmma backward).
const QUICK = process.env.ATTNKIT_RUNNER_QUICK === '1'
const t0 = performance.now()
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`

async function main() {
  log(`attnkit cuda device run, node ${process.version}`)
  const backend = await createCudaBackend()
  await o.setBackend(backend)
  const info = backend.info()
  log(`backend: ${info.device}`)
  log(`details: ${JSON.stringify(info.details)}`)

  if (process.env.ATTNKIT_RUNNER_PROFILE === '1') {
    // Under ncu: a few forward + backward launches at the benchmark shape, nothing else.
    await benchAttention(backend, { batch: 4, heads: 16, seq: 4096, headDim: 128, iters: 1, reps: 1 })
    backend.dispose()
    return
  }
  const cpu = await o.backend('cpu')
  // The 48 flash cases and the conformance suite, under the tunables in the environment now.
  const flashChecks = async (): Promise<number> => {
    log(`\n== flash-attention checks (tensor-core path) [${elapsed()}]`)
    let fails = 0
    for (const c of QUICK ? flashCases().filter((x) => /gqa/.test(x.name)) : flashCases()) {
      for (const dtype of c.dtypes) {
        try {
          const rs = await runCase(c, dtype, backend, cpu)
          for (const r of rs) {
            if (!r.ok) fails++
            log(
              `${r.ok ? 'ok  ' : 'FAIL'} ${c.name} ${dtype} ${r.check}: ${r.error.toExponential(2)} / ${r.tolerance.toExponential(1)}${r.ok ? '' : ` ${r.detail ?? ''}`}`,
            )
          }
        } catch (e) {
          fails++
          log(`FAIL ${c.name} ${dtype}: ${(e as Error).stack}`)
        }
      }
    }
    return fails
  }
  const conformanceRun = async (file: string): Promise<string> => {
    log(`\n== conformance suite [${elapsed()}]`)
    // ATTNKIT_RUNNER_SKIP_CONFORMANCE=1: a tuning run (flash checks and speed only).
    if (process.env.ATTNKIT_RUNNER_SKIP_CONFORMANCE === '1') {
      log('skipped (ATTNKIT_RUNNER_SKIP_CONFORMANCE=1)')
      return ''
    }
    try {
      const summary = await runConformance(backend, {
        only: QUICK ? ['unary/exp', 'attention/headdim64'] : undefined,
        onResult: (rs) => {
          for (const r of rs) if (!r.ok) log(`  FAIL ${r.case} ${r.dtype} ${r.check}: ${r.detail ?? r.error}`)
        },
      })
      const text = formatSummary(summary)
      log(text)
      if (file) save(file, `${text}\n`)
      return text
    } catch (e) {
      log(`conformance crashed: ${(e as Error).stack}`)
      return ''
    }
  }
  const flashFails = await flashChecks()
  const conformance = await conformanceRun('conformance.txt')
  log(`compile stats: ${JSON.stringify(backend.compiler.stats)} [${elapsed()}]`)

  log('\n== device allocations after attention forward + backward')
  try {
    const rng = new o.Rng(5)
    const run = () => {
      const [q, k, v] = [0, 1, 2].map(() =>
        o.tensor(rng.normalArray(2 * 4 * 70 * 64), [2, 4, 70, 64], { dtype: 'bfloat16', backend }),
      )
      const f = o.valueAndGrad((p: { q: o.Tensor; k: o.Tensor; v: o.Tensor }) =>
        o.sum(o.attention(p.q, p.k, p.v, { causal: true })),
      )
      const { value, grads } = f({ q, k, v })
      o.dispose([q, k, v, value, grads])
    }
    run()
    await backend.synchronize()
    const before = { ...backend.allocator.stats(), tensors: o.memory('cuda').liveTensors }
    for (let i = 0; i < 3; i++) run()
    await backend.synchronize()
    const after = { ...backend.allocator.stats(), tensors: o.memory('cuda').liveTensors }
    const ok =
      after.liveBlocks === before.liveBlocks &&
      after.deviceAllocations === before.deviceAllocations &&
      after.tensors === before.tensors
    log(`${ok ? 'ok  ' : 'FAIL'} before ${JSON.stringify(before)} after ${JSON.stringify(after)}`)
  } catch (e) {
    log(`leak check crashed: ${(e as Error).stack}`)
  }

  if (QUICK) {
    backend.dispose()
    return
  }
  log(`\n== speed [${elapsed()}]`)
  const bench: Record<string, unknown> = {}
  try {
    const mm = await benchMatmul(backend, { m: 8192, n: 8192, k: 8192, dtype: 'bfloat16' })
    bench.matmul = mm
    log(`attnkit matmul 8192^3 bf16: ${mm.ms.toFixed(3)} ms, ${mm.tflops.toFixed(1)} TFLOP/s`)
  } catch (e) {
    log(`matmul bench crashed: ${(e as Error).stack}`)
  }
  const shape = { batch: 4, heads: 16, seq: 4096, headDim: 128, causal: true, dtype: 'bfloat16' as const }
  // Variants of the flash kernels: correctness on two multi-tile cases, then speed; the best wins.
  const cpuRef = await o.backend('cpu')
  const checkVariant = async (): Promise<string> => {
    const bad: string[] = []
    for (const c of flashCases().filter((x) => /gqa|window-sinks/.test(x.name)))
      for (const r of await runCase(c, 'bfloat16', backend, cpuRef))
        if (!r.ok) bad.push(`${c.name} ${r.check} ${r.error}`)
    return bad.join('; ')
  }
  // Forward variants: the wgmma kernel (sm_90a; default on Hopper) with its tunables, and the
  // mma.sync kernel (ATTNKIT_FLASH_WGMMA=0) with its own. Each sets the three variables.
  const fwdVariants: { name: string; env: Record<string, string> }[] = [
    { name: 'default', env: {} },
    ...FWD_WGMMA_ALTERNATIVES.map((t) => ({
      name: `wgmma ${tunableString(t)}`,
      env: { ATTNKIT_FLASH_FWD_SM90: tunableString(t) },
    })),
    { name: 'mma.sync default', env: { ATTNKIT_FLASH_WGMMA: '0' } },
    ...FWD_ALTERNATIVES.map((t) => ({
      name: `mma.sync ${tunableString(t)}`,
      env: { ATTNKIT_FLASH_WGMMA: '0', ATTNKIT_FLASH_FWD: tunableString(t) },
    })),
  ]
  const setFwdEnv = (env: Record<string, string>) => {
    for (const k of ['ATTNKIT_FLASH_WGMMA', 'ATTNKIT_FLASH_FWD', 'ATTNKIT_FLASH_FWD_SM90'])
      process.env[k] = env[k] ?? ''
  }
  let bestFwd = { name: 'default', tflops: 0, env: {} as Record<string, string> }
  for (const { name, env } of fwdVariants) {
    setFwdEnv(env)
    try {
      const bad = await checkVariant()
      const at = await benchAttention(backend, { ...shape, backward: false })
      bench[`fwd ${name}`] = { ...at, bad }
      log(
        `fwd ${name}: ${at.forwardMs.toFixed(3)} ms ${at.forwardTflops.toFixed(1)} TFLOP/s ${bad ? `WRONG: ${bad}` : 'ok'}`,
      )
      if (!bad && at.forwardTflops > bestFwd.tflops) bestFwd = { name, tflops: at.forwardTflops, env }
    } catch (e) {
      log(`fwd ${name} crashed: ${(e as Error).message}`)
    }
  }
  setFwdEnv(bestFwd.env)
  let bestBwd = {
    name: 'default',
    tflops: 0,
    at: undefined as undefined | Awaited<ReturnType<typeof benchAttention>>,
    env: {} as Record<string, string>,
  }
  // Backward variants: the wgmma kernel (default on Hopper at head dim 128), and the mma.sync
  // kernel (ATTNKIT_FLASH_BWD_WGMMA=0) with its tunables.
  const bwdVariants: { name: string; env: Record<string, string> }[] = [
    { name: 'default', env: {} },
    ...BWD_WGMMA_ALTERNATIVES.map((t) => ({
      name: `wgmma ${tunableString(t)}`,
      env: { ATTNKIT_FLASH_BWD_SM90: tunableString(t) },
    })),
    { name: 'mma.sync default', env: { ATTNKIT_FLASH_BWD_WGMMA: '0' } },
    ...BWD_ALTERNATIVES.map((t) => ({
      name: `mma.sync ${tunableString(t)}`,
      env: { ATTNKIT_FLASH_BWD_WGMMA: '0', ATTNKIT_FLASH_BWD: tunableString(t) },
    })),
  ]
  const setBwdEnv = (env: Record<string, string>) => {
    for (const k of ['ATTNKIT_FLASH_BWD', 'ATTNKIT_FLASH_BWD_WGMMA', 'ATTNKIT_FLASH_BWD_SM90'])
      process.env[k] = env[k] ?? ''
    if (process.env.ATTNKIT_RUNNER_SKIP_BWD_WGMMA === '1') process.env.ATTNKIT_FLASH_BWD_WGMMA = '0'
  }
  for (const { name, env } of bwdVariants) {
    setBwdEnv(env)
    try {
      const bad = await checkVariant()
      const at = await benchAttention(backend, shape)
      bench[`fwd+bwd ${name}`] = { ...at, bad }
      log(
        `fwd+bwd (fwd ${bestFwd.name}) bwd ${name}: ${at.forwardBackwardMs.toFixed(3)} ms ${at.forwardBackwardTflops.toFixed(1)} TFLOP/s ${bad ? `WRONG: ${bad}` : 'ok'}`,
      )
      if (!bad && at.forwardBackwardTflops > bestBwd.tflops)
        bestBwd = { name, tflops: at.forwardBackwardTflops, at, env }
    } catch (e) {
      log(`bwd ${name} crashed: ${(e as Error).message}`)
    }
  }
  setBwdEnv(bestBwd.env)
  log(`best: fwd ${bestFwd.name}, bwd ${bestBwd.name}`)
  // The timed variants were checked on two cases only: where the best is not the default, the
  // whole set of checks runs again under it.
  let bestChecks = ''
  if (bestFwd.name !== 'default' || bestBwd.name !== 'default') {
    log(`\n== checks again under the best variants (fwd ${bestFwd.name}; bwd ${bestBwd.name})`)
    const fails = await flashChecks()
    const conf = await conformanceRun('')
    bestChecks = `best variants: flash checks failed: ${fails}; ${conf.split('\n')[0]}`
    log(bestChecks)
  }
  bench.attention_best = {
    fwd: { name: bestFwd.name, tflops: bestFwd.tflops },
    bwd: { name: bestBwd.name, tflops: bestBwd.tflops },
    run: bestBwd.at,
  }
  for (const hd of [64]) {
    try {
      const at = await benchAttention(backend, { ...shape, headDim: hd, heads: 32 })
      bench[`attention_hd${hd}`] = at
      log(
        `attnkit attention (4,32,4096,${hd}) causal bf16: fwd ${at.forwardTflops.toFixed(1)} TFLOP/s; fwd+bwd ${at.forwardBackwardTflops.toFixed(1)} TFLOP/s`,
      )
    } catch (e) {
      log(`attention bench (hd ${hd}) crashed: ${(e as Error).stack}`)
    }
  }
  log(`[${elapsed()}] torch reference...`)
  const torch = runTorchReference({ script: process.env.ATTNKIT_TORCH_SCRIPT })
  bench.torch = torch
  save('bench.json', JSON.stringify(bench, null, 2))
  if (torch.error) log(`torch reference failed: ${torch.error}`)
  else {
    log(`torch ${torch.torch} on ${torch.device}`)
    const mm = bench.matmul as { tflops: number } | undefined
    const fwd = bestFwd.tflops
    const fb = bestBwd.tflops
    const rows = [
      ['matmul 8192^3 bf16', mm?.tflops ?? Number.NaN, torch.matmul?.tflops ?? Number.NaN, 0.85],
      ['attention fwd (4,16,4096,128) causal', fwd, torch.attention?.forwardTflops ?? Number.NaN, 0.5],
      ['attention fwd+bwd', fb, torch.attention?.forwardBackwardTflops ?? Number.NaN, 0.4],
    ] as const
    log('\n| case | attnkit TFLOP/s | PyTorch TFLOP/s | ratio | target |')
    log('| --- | --- | --- | --- | --- |')
    for (const [name, mine, ref, target] of rows) {
      const ratio = mine / ref
      log(
        `| ${name} | ${mine.toFixed(1)} | ${ref.toFixed(1)} | ${(ratio * 100).toFixed(0)}% | >= ${target * 100}% ${ratio >= target ? 'met' : 'NOT met'} |`,
      )
    }
  }
  try {
    const res = backend.kernelResources()
    for (const [k, r] of Object.entries(res))
      if (k.startsWith('flash')) log(`kernel ${k}: ${JSON.stringify(r)}`)
  } catch (e) {
    log(`kernel resources: ${(e as Error).message}`)
  }
  log(`\nflash checks failed: ${flashFails}; ${conformance.split('\n')[0]} [${elapsed()}]`)
  if (bestChecks) log(bestChecks)
  backend.dispose()
}

main().catch((e) => {
  log(`runner crashed: ${(e as Error).stack}`)
  process.exitCode = 1
})
