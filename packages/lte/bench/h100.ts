/**
 * The @attnkit/lte H100 benchmark (bundle with bench/bundle.mjs, run with Node on the device):
 *   1. correctness: the fused CUDA kernels against the CPU float64 reference;
 *   2. Gated DeltaNet chunkwise forward+backward throughput at T = 4K and 16K, head dim 128
 *      (this package's fused kernels, and core's kernels on the CUDA backend when it has them);
 *   3. laLTE against a full-attention transformer of the same width and depth: decode latency
 *      and memory at contexts 4K, 32K and 128K.
 *
 *   node h100.mjs [--out DIR] [--quick] [--backend NAME] [--smoke]
 *
 * --quick: fewer sizes and runs. --smoke: tiny shapes on any backend (e.g. --backend cpu), to
 * check the script itself where there is no GPU.
 *
 * Writes DIR/lte-h100.json and DIR/lte-h100.md and prints the table last.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Backend, dispose, memory, Rng, setBackend } from '@attnkit/core'
import {
  benchDecode,
  benchGdnForwardBackward,
  checkFusedDecodeAttention,
  checkFusedGdn,
  disposeCache,
  fullAttentionModel,
  type LteModel,
  laLTE,
  type ModelOptions,
  syntheticDecodeCache,
} from '../src/index.js'

const args = process.argv.slice(2)
const outDir = args.includes('--out') ? args[args.indexOf('--out') + 1] : (process.env.OUT ?? '.')
const quick = args.includes('--quick')
const smoke = args.includes('--smoke')
const backendName = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'cuda'
const rows: string[][] = []
const results: Record<string, unknown> = { startedAt: new Date().toISOString(), quick }
const size = (bytes: number) =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(3)} GiB` : `${(bytes / 2 ** 20).toFixed(3)} MiB`

function row(...cells: (string | number)[]) {
  rows.push(cells.map(String))
  console.log(cells.join(' | '))
}

const message = (e: unknown) => ((e as Error).message ?? String(e)).split('\n')[0].slice(0, 200)

async function startBackend(): Promise<Backend> {
  if (backendName === 'cuda') await import('@attnkit/backend-cuda')
  const b = await setBackend(backendName)
  const info = b.info()
  results.device = { device: info.device, details: info.details, features: info.features }
  console.log(`device: ${info.device}`)
  return b
}

async function correctness(gpu: Backend) {
  const out: Record<string, unknown> = {}
  const shapes = smoke
    ? [{ batch: 1, heads: 1, seqLen: 70, headDim: 16, chunkSize: 64 }]
    : [
        { batch: 1, heads: 2, seqLen: 200, headDim: 64, chunkSize: 64 },
        { batch: 1, heads: 1, seqLen: 130, headDim: 128, chunkSize: 64 },
      ]
  for (const s of shapes) {
    const key = `gdn T=${s.seqLen} D=${s.headDim}`
    try {
      const errors = await checkFusedGdn(gpu, s)
      const worst = Math.max(...Object.values(errors))
      out[key] = errors
      row('check', key, 'fused vs CPU float64', worst.toExponential(2), worst < 1e-4 ? 'ok' : 'FAILED')
    } catch (e) {
      out[key] = { error: message(e) }
      row('check', key, 'fused vs CPU float64', 'error', message(e))
    }
  }
  for (const slots of smoke ? [40] : [324, 1100]) {
    const headDim = smoke ? 16 : 128
    const key = `decode attention N=${slots} D=${headDim}`
    try {
      const err = await checkFusedDecodeAttention(gpu, { batch: 2, heads: 8, kvHeads: 4, slots, headDim })
      out[key] = err
      row('check', key, 'fused vs CPU float64', err.toExponential(2), err < 1e-4 ? 'ok' : 'FAILED')
    } catch (e) {
      out[key] = { error: message(e) }
      row('check', key, 'fused vs CPU float64', 'error', message(e))
    }
  }
  results.correctness = out
}

async function gdnThroughput(gpu: Backend) {
  const out: unknown[] = []
  for (const seqLen of smoke ? [256] : quick ? [4096] : [4096, 16384]) {
    for (const kernel of ['fused', 'portable'] as const) {
      const shape = { batch: 1, heads: smoke ? 2 : 16, seqLen, headDim: smoke ? 16 : 128, chunkSize: 64 }
      try {
        const r = await benchGdnForwardBackward(gpu, shape, kernel, new Rng(seqLen), {
          warmup: 2,
          iters: quick ? 3 : 7,
        })
        out.push(r)
        row(
          'gdn fwd+bwd',
          `B1 H${shape.heads} T${seqLen} D${shape.headDim}`,
          kernel,
          `${r.timing.medianMs.toFixed(2)} ms`,
          `${(r.tokensPerSecond / 1e6).toFixed(3)} M tok/s`,
          `${r.tflops.toFixed(2)} TFLOP/s`,
        )
      } catch (e) {
        out.push({ shape, kernel, error: message(e) })
        row('gdn fwd+bwd', `B1 H${shape.heads} T${seqLen} D${shape.headDim}`, kernel, 'error', message(e))
      }
    }
  }
  results.gdnForwardBackward = out
}

/**
 * Width 1024, 8 layers, head dim 128: laLTE and a transformer of the same shape. The layout stays
 * 3 GDN : 1 LTE (attentionEvery 4), as in the recorded H100 results (bench/results), made before
 * the package default became the paper's 1 : 1.
 */
const MODEL: ModelOptions = smoke
  ? { vocabSize: 256, dModel: 64, numLayers: 4, headDim: 16, window: 16, poolSize: 32, attentionEvery: 4 }
  : { vocabSize: 32000, dModel: 1024, numLayers: 8, headDim: 128, attentionEvery: 4 }

async function decode(gpu: Backend) {
  const out: unknown[] = []
  const contexts = smoke ? [256, 1024] : quick ? [4096, 32768] : [4096, 32768, 131072]
  for (const build of [laLTE, fullAttentionModel]) {
    const model: LteModel = build(MODEL)
    let params: ReturnType<LteModel['init']> | undefined
    try {
      params = model.init(new Rng(7))
      const paramBytes = memory(gpu.name).liveBytes
      for (const L of contexts) {
        let cache: ReturnType<typeof syntheticDecodeCache> | undefined
        try {
          cache = syntheticDecodeCache(model, {
            batch: 1,
            contextLen: L,
            rng: new Rng(L),
            values: 'constant',
          })
          const r = await benchDecode(gpu, model, params, cache, { warmup: 3, iters: quick ? 5 : 20 })
          const predicted = model.cost({ batch: 1, seqLen: 1 }).cacheBytes(cache.position)
          out.push({ model: model.config.name, ...r, paramBytes, predictedCacheBytes: predicted })
          row(
            'decode',
            `${model.config.name} ctx ${L}`,
            `${r.timing.medianMs.toFixed(3)} ms/token`,
            `cache ${size(r.cacheBytes)}`,
            `live ${size(r.liveBytes)}`,
            `peak ${size(r.peakBytes)}`,
          )
        } catch (e) {
          out.push({ model: model.config.name, contextLen: L, error: message(e) })
          row('decode', `${model.config.name} ctx ${L}`, 'error', message(e))
        } finally {
          if (cache) disposeCache(cache)
        }
      }
    } catch (e) {
      row('decode', model.config.name, 'error', message(e))
    } finally {
      if (params) dispose(params)
    }
  }
  results.decode = out
  results.decodeModel = {
    ...MODEL,
    layouts: [laLTE(MODEL).config.layers, fullAttentionModel(MODEL).config.layers],
  }
}

async function main() {
  let gpu: Backend
  try {
    gpu = await startBackend()
  } catch (e) {
    console.error(`the ${backendName} backend did not start: ${message(e)}`)
    process.exitCode = 1
    return
  }
  for (const [name, step] of [
    ['correctness', correctness],
    ['gdn', gdnThroughput],
    ['decode', decode],
  ] as const) {
    const t0 = performance.now()
    try {
      await step(gpu)
    } catch (e) {
      row(name, 'error', message(e))
    }
    console.log(`# ${name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
  results.finishedAt = new Date().toISOString()
  const md = [
    '| what | case | | | | |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
  writeFileSync(join(outDir, 'lte-h100.json'), JSON.stringify(results, null, 2))
  writeFileSync(join(outDir, 'lte-h100.md'), `${md.join('\n')}\n`)
  console.log('\n== @attnkit/lte on the H100 ==')
  console.log(md.join('\n'))
}

await main()
