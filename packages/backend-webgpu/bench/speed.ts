/**
 * WebGPU speed figures on the machine at hand: float32 matmul 4096^3 and causal flash
 * attention (batch 1, 16 heads, seq 4096, head dim 64), device-timed with timestamp queries,
 * after checking both kernels against the CPU reference at a smaller size in the same run.
 *
 *   node speed.mjs [--sweep] [--small] [--specialised] [--dawn=<option>]... [--json=<file>]
 */
import { writeFileSync } from 'node:fs'
import { attention, backend, dispose, matmul, Rng, type Tensor, tensor } from '@attnkit/core'
import { compareArrays } from '@attnkit/core/testing'
import {
  attentionTuning,
  createWebGPUBackend,
  FAST_TILE,
  type MatmulTile,
  matmulKernel,
  timeKernel,
  type WebGPUBackend,
} from '../src/index.js'

const args = process.argv.slice(2)
const sweep = args.includes('--sweep')
const dawnOptions = args.filter((a) => a.startsWith('--dawn=')).map((a) => a.slice(7))
const jsonOut = args.find((a) => a.startsWith('--json='))?.slice(7)
// --small: a quick smoke run of the same code at 512 (CPU adapters), not the speed figures.
const small = args.includes('--small')
// --specialised: compile as for GPUs (constant loop bounds) even on a CPU adapter (as conformance.ts).
const lean = args.includes('--specialised') ? false : undefined

function randn(
  b: WebGPUBackend | Awaited<ReturnType<typeof backend>>,
  shape: number[],
  seed: number,
  dtype: 'float32' | 'float64' = 'float32',
): Tensor {
  const n = shape.reduce((x, y) => x * y, 1)
  return tensor(Float32Array.from(new Rng(seed).normalArray(n)), shape, { backend: b, dtype })
}

async function agreement(gpu: WebGPUBackend): Promise<{ matmul: number; attention: number }> {
  const cpu = await backend('cpu')
  const [M, K, N] = [512, 256, 384]
  const a = [randn(gpu, [M, K], 1), randn(cpu, [M, K], 1, 'float64')]
  const b = [randn(gpu, [K, N], 2), randn(cpu, [K, N], 2, 'float64')]
  const c = [matmul(a[0], b[0]), matmul(a[1], b[1])]
  const mm = compareArrays(await c[0].data(), await c[1].data()).error
  const shape = [1, 4, 512, 64]
  const q = [randn(gpu, shape, 3), randn(cpu, shape, 3, 'float64')]
  const k = [randn(gpu, shape, 4), randn(cpu, shape, 4, 'float64')]
  const v = [randn(gpu, shape, 5), randn(cpu, shape, 5, 'float64')]
  const o = [attention(q[0], k[0], v[0], { causal: true }), attention(q[1], k[1], v[1], { causal: true })]
  const at = compareArrays(await o[0].data(), await o[1].data()).error
  dispose([a, b, c, q, k, v, o])
  return { matmul: mm, attention: at }
}

/**
 * Keeps the GPU busy for `seconds` before the first timing: an idle GPU starts at a low clock,
 * and without this the first row of a pass read 8.6-11.4 TFLOP/s of matmul on the H100, not 36.
 */
async function warmClocks(gpu: WebGPUBackend, A: Tensor, B: Tensor, seconds: number): Promise<void> {
  const start = performance.now()
  while (performance.now() - start < seconds * 1e3) {
    const r = matmulKernel(gpu, A, B, false, false, FAST_TILE)
    await gpu.synchronize()
    gpu.release(r.dataId)
  }
}

interface Row {
  what: string
  config: string
  ms: number
  tflops: number
  source: string
}

async function main(): Promise<void> {
  const gpu = await createWebGPUBackend({ dawnOptions, lean })
  const info = gpu.info()
  console.log(
    `device: ${info.device}; features: ${info.features.join(', ')}; ${JSON.stringify(info.details)}`,
  )
  if (dawnOptions.length) console.log(`dawn options: ${dawnOptions.join(' ')}`)
  const check = await agreement(gpu)
  console.log(
    `agreement with the CPU reference (max-normalised error): matmul 512x256x384 ${check.matmul.toExponential(2)}, causal attention [1,4,512,64] ${check.attention.toExponential(2)}`,
  )
  const rows: Row[] = []
  const n = small ? 512 : 4096
  const A = randn(gpu, [n, n], 10)
  const B = randn(gpu, [n, n], 11)
  await warmClocks(gpu, A, B, small ? 0.2 : 2)
  const tiles: MatmulTile[] = sweep
    ? [
        FAST_TILE,
        { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
        { BM: 128, BN: 64, BK: 8, TM: 8, TN: 4 },
        { BM: 64, BN: 128, BK: 8, TM: 4, TN: 8 },
        { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
      ]
    : [FAST_TILE]
  for (const tile of tiles) {
    const t = await timeKernel(
      gpu,
      () => {
        const r = matmulKernel(gpu, A, B, false, false, tile)
        return { dispose: () => gpu.release(r.dataId) }
      },
      { warmup: 2, repetitions: 5, inner: 5 },
    )
    rows.push({
      what: `matmul f32 ${n}^3`,
      config: `${tile.BM}x${tile.BN}x${tile.BK} reg ${tile.TM}x${tile.TN}`,
      ms: t.medianMs,
      tflops: (2 * n ** 3) / (t.medianMs * 1e-3) / 1e12,
      source: t.source,
    })
  }
  dispose([A, B])
  const [H, T, D] = [16, small ? 512 : 4096, 64]
  const q = randn(gpu, [1, H, T, D], 20)
  const k = randn(gpu, [1, H, T, D], 21)
  const v = randn(gpu, [1, H, T, D], 22)
  const attentionConfigs: { keyTile?: number; queryRows?: number }[] = sweep
    ? [16, 32].flatMap((keyTile) => [32, 64, 128].map((queryRows) => ({ keyTile, queryRows })))
    : [{}]
  for (const config of attentionConfigs) {
    Object.assign(attentionTuning, config)
    const t = await timeKernel(gpu, () => attention(q, k, v, { causal: true }), {
      warmup: 2,
      repetitions: 5,
      inner: 3,
    })
    rows.push({
      what: `flash attention f32 causal [1,${H},${T},${D}]`,
      config: sweep ? `key tile ${config.keyTile}, ${config.queryRows} queries per workgroup` : 'default',
      ms: t.medianMs,
      tflops: (2 * 2 * T * T * D * H) / 2 / (t.medianMs * 1e-3) / 1e12,
      source: t.source,
    })
    attentionTuning.keyTile = undefined
    attentionTuning.queryRows = undefined
  }
  dispose([q, k, v])
  console.log('\n| kernel | config | ms (median) | TFLOP/s | timer |\n| --- | --- | --- | --- | --- |')
  for (const r of rows)
    console.log(`| ${r.what} | ${r.config} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(2)} | ${r.source} |`)
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ device: info, dawnOptions, check, rows }, null, 2))
  gpu.dispose()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
