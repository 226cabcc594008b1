/**
 * MoSA on a GPU backend: fused vs portable correctness, then forward+backward time and peak
 * memory of the MoSA layer (fused and portable) against a dense layer of equal FLOPs, at
 * T = 1024 and 8192, head dim 64, sparsity 4, 8, 16. Writes mosa.json, cases.json (for
 * torch_baseline.py) and torch-check.safetensors to --out; `--report` merges mosa.json with
 * torch.json into the final table.
 *
 *   node h100.mjs --backend cuda --out $OUT          # attnkit part
 *   python3 torch_baseline.py --out $OUT            # PyTorch part, same GPU, same call
 *   node h100.mjs --report --out $OUT               # the table
 *
 * --quick runs tiny sizes (a smoke test on any backend, e.g. --backend cpu or webgpu);
 * --profile adds the per-kernel profile and A/B rows at T = 8192, --profile-only skips the layer table.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  attention,
  type Backend,
  dispose,
  mul,
  Rng,
  runKernel,
  serializeSafetensors,
  setBackend,
  sum,
  type Tensor,
  tensor,
  valueAndGrad,
} from '@attnkit/core'
import { resolveConfig } from '../src/config.js'
import { cudaGemms, cudaLibraryGemms } from '../src/fused/library-gemms.js'
import { CUDA_LIBRARY_KERNELS } from '../src/fused/names.js'
import { cudaAttendBackward, cudaAttendSplit, cudaKernelVariant } from '../src/fused/programs.js'
import { ensureFusedKernels } from '../src/fused/register.js'
import {
  computeMatchedHeads,
  cost,
  forwardWithRouting,
  fusedSupport,
  init,
  KERNELS,
  type MosaConfig,
  type MosaParams,
  type MosaPath,
  namedParams,
  routerLogits,
  selectedTokens,
  timeLayer,
} from '../src/index.js'
import { mosaCudaSharedBytes, mosaCudaSource } from '../src/kernels/mosa.cu.js'

const args = process.argv.slice(2)
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const flag = (name: string) => args.includes(`--${name}`)
const out = opt('out', process.env.OUT ?? 'bench-out')
mkdirSync(out, { recursive: true })

/** --dtype float32 (default) | bfloat16 | float16: the bench layers' dtype (the check stays float32). */
const benchDType = opt('dtype', 'float32') as 'float32' | 'bfloat16' | 'float16'

interface Case {
  name: string
  config: MosaConfig
  dense: MosaConfig
  seqLen: number
  batch: number
}

function cases(): Case[] {
  const quick = flag('quick')
  const dModel = Number(opt('dmodel', quick ? '64' : '512'))
  const heads = Number(opt('heads', quick ? '2' : '8'))
  const keep = Number(opt('dense', quick ? '1' : '2'))
  const batch = Number(opt('batch', '1'))
  const lengths = quick ? [64, 128] : [1024, 8192]
  const list: Case[] = []
  for (const seqLen of lengths) {
    for (const sparsity of [4, 8, 16]) {
      const headDim = quick ? 32 : 64
      const sparseHeads = computeMatchedHeads({
        dModel,
        headDim,
        heads,
        denseHeads: Math.min(keep, heads),
        sparsity,
        seqLen,
      })
      const dtype = benchDType
      const config: MosaConfig = {
        dModel,
        headDim,
        denseHeads: Math.min(keep, heads),
        sparseHeads,
        sparsity,
        dtype,
      }
      const dense: MosaConfig = { dModel, headDim, denseHeads: heads, sparseHeads: 0, sparsity, dtype }
      list.push({ name: `T${seqLen}-s${sparsity}`, config, dense, seqLen, batch })
    }
  }
  return list
}

/**
 * The T = 8192 layer the profile, --ncu and --layer-trace take apart: dModel 512, head dim 64,
 * 2 dense heads and the MoSA heads that match an 8-head dense layer's FLOPs at this sparsity.
 */
function longLayer(sparsity: number): MosaConfig {
  const shape = { dModel: 512, headDim: 64, denseHeads: 2 }
  const sparseHeads = computeMatchedHeads({ ...shape, heads: 8, sparsity, seqLen: 8192 })
  return { ...shape, sparseHeads, sparsity }
}

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return num / (den || 1)
}

async function host(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data())
}

/** Forward and gradients of sum(y * w) for one path; returns host copies. */
async function runPath(params: MosaParams, x: Tensor, w: Tensor, path: MosaPath) {
  const f = valueAndGrad((p: { params: MosaParams; x: Tensor }) =>
    sum(mul(forwardWithRouting(p.params, p.x, { path }).y, w)),
  )
  const { value, grads } = f({ params, x })
  const r = forwardWithRouting(params, x, { path })
  const res: Record<string, Float64Array> = { y: await host(r.y), indices: await host(r.indices!) }
  const named = namedParams(grads.params)
  for (const [n, g] of Object.entries(named)) res[`d ${n}`] = await host(g)
  res['d x'] = await host(grads.x)
  dispose([value, grads, r])
  return { res, path: r.path }
}

/**
 * Fused against portable (forward, selection, every gradient), then again with the long-row rules
 * forced (cudaAttendSplit.tiles = 1: split forward attention and the backward's dQ blocks, the
 * kernels the dense heads take at T = 8192, which the check's T = 1024 would not reach).
 */
async function check(be: Backend) {
  const main = await checkOnce(be)
  const saved = cudaAttendSplit.tiles
  cudaAttendSplit.tiles = 1
  try {
    const longRows = await checkOnce(be)
    return { ...main, longRows: { sameSelection: longRows.sameSelection, errors: longRows.errors } }
  } finally {
    cudaAttendSplit.tiles = saved
  }
}

async function checkOnce(be: Backend) {
  const quick = flag('quick')
  const config: MosaConfig = quick
    ? { dModel: 48, headDim: 32, denseHeads: 1, sparseHeads: 4, sparsity: 4 }
    : { dModel: 256, headDim: 64, denseHeads: 2, sparseHeads: 16, sparsity: 8 }
  const B = 2
  const T = quick ? 48 : 1024
  const rng = new Rng(1)
  const params = init(config, rng, { backend: be })
  const x = rng.normal([B, T, config.dModel], 0, 1, { backend: be })
  const w = rng.normal([B, T, config.dModel], 0, 1, { backend: be })
  const portable = await runPath(params, x, w, 'portable')
  const errors: Record<string, number> = {}
  let fusedPath: string
  try {
    const fused = await runPath(params, x, w, 'fused')
    for (const k of Object.keys(portable.res)) errors[k] = relError(fused.res[k], portable.res[k])
    fusedPath = fused.path
  } catch (e) {
    fusedPath = `unavailable: ${(e as Error).message.split('\n')[0]}`
  }
  const sameSelection = errors.indices === 0
  // For the PyTorch cross-check: weights, input and attnkit's output in one safetensors file.
  const yPortable = tensor(portable.res.y, [B, T, config.dModel], 'float32')
  const bytes = await serializeSafetensors(
    { ...namedParams(params), x, y: yPortable },
    { config: JSON.stringify(config) },
  )
  writeFileSync(join(out, 'torch-check.safetensors'), bytes)
  dispose([params, x, w, yPortable])
  return { config, batch: B, seqLen: T, sameSelection, errors, fusedPath }
}

async function bench(be: Backend) {
  const iters = Number(opt('iters', flag('quick') ? '2' : '10'))
  const rows = []
  {
    // Warm-up: the first case's fused layer, untimed, so the first row is not taken at idle
    // clocks (it read 1.5-2x high in earlier runs).
    const c = cases()[0]
    const rng = new Rng(1)
    const x = rng.normal([c.batch, c.seqLen, c.config.dModel], 0, 1, { backend: be, dtype: benchDType })
    const params = init(c.config, rng, { backend: be })
    await timeLayer(params, x, { path: 'fused', iters: 30, warmup: 2 })
    dispose([params, x])
  }
  for (const c of cases()) {
    const rng = new Rng(2)
    const x = rng.normal([c.batch, c.seqLen, c.config.dModel], 0, 1, { backend: be, dtype: benchDType })
    const row: Record<string, unknown> = {
      name: c.name,
      batch: c.batch,
      seqLen: c.seqLen,
      sparsity: c.config.sparsity,
      sparseHeads: c.config.sparseHeads,
      denseHeads: c.config.denseHeads,
      flops: cost(c.config, { seqLen: c.seqLen, batch: c.batch }).trainingFlops,
      denseFlops: cost(c.dense, { seqLen: c.seqLen, batch: c.batch }).trainingFlops,
    }
    const params = init(c.config, rng, { backend: be })
    const denseParams = init(c.dense, rng, { backend: be })
    for (const path of ['fused', 'portable'] as const) {
      try {
        const t = await timeLayer(params, x, { path, iters, warmup: 2 })
        row[path] = { ms: t.ms, peakBytes: t.peakBytes, source: t.source }
      } catch (e) {
        row[path] = { error: (e as Error).message.split('\n')[0] }
      }
    }
    {
      // The fused path with the other GEMM route than 'auto' takes here (cudaGemms): the A/B
      // behind its row threshold, at every size.
      const selectedRows = c.batch * c.config.sparseHeads * selectedTokens(c.seqLen, c.config.sparsity)
      const other = cudaLibraryGemms(selectedRows) ? 'fused' : 'library'
      const saved = cudaGemms.route
      cudaGemms.route = other
      try {
        const t = await timeLayer(params, x, { path: 'fused', iters, warmup: 2 })
        row.fusedOtherGemms = { route: other, ms: t.ms, peakBytes: t.peakBytes }
      } catch (e) {
        row.fusedOtherGemms = { route: other, error: (e as Error).message.split('\n')[0] }
      } finally {
        cudaGemms.route = saved
      }
    }
    // Forward agreement at the bench size (the full check above covers gradients).
    try {
      const a = forwardWithRouting(params, x, { path: 'fused' })
      const b = forwardWithRouting(params, x, { path: 'portable' })
      row.fusedVsPortable = relError(await host(a.y), await host(b.y))
      dispose([a, b])
    } catch (e) {
      row.fusedVsPortable = (e as Error).message.split('\n')[0]
    }
    // The dense layer at its best here ('auto': float32 on CUDA runs its attention through the
    // fused kernel; core's float32 attention is a SIMT kernel).
    const t = await timeLayer(denseParams, x, { path: 'auto', iters, warmup: 2 })
    row.dense = { ms: t.ms, peakBytes: t.peakBytes, source: t.source, path: t.path }
    rows.push(row)
    console.log(JSON.stringify(row))
    dispose([params, denseParams, x])
  }
  return rows
}

/** Median device ms of fn over `iters` runs after one warm-up (outputs disposed each time). */
async function timeIt(be: Backend, fn: () => Tensor[], iters = 5): Promise<number> {
  dispose(fn())
  await be.synchronize()
  const ms: number[] = []
  for (let i = 0; i < iters; i++) ms.push((await be.time(() => dispose(fn()))).deviceMs)
  ms.sort((a, b) => a - b)
  return ms[Math.floor(ms.length / 2)]
}

/**
 * --rb-ab: source variants of mosa_attend_backward_rb (string edits of the shipped source)
 * launched by hand as programs.ts does (delta computed once outside the timing), next to the
 * shipped source launched the same way.
 */
async function registerBackwardAb(
  be: Backend,
  print: (r: Record<string, unknown>) => void,
  name: string,
  label: string,
  t: { q: Tensor; k: Tensor; v: Tensor; o: Tensor; lse: Tensor; dout: Tensor },
  gflop: number,
) {
  const [B, Hs, K, D] = t.q.shape
  const shipped = mosaCudaSource(D)
  const edits: [string, string, string][] = [
    ['next tile prefetched', 'constexpr bool prefetch = false;', 'constexpr bool prefetch = D <= 64;'],
  ]
  const n = Math.ceil(K / 64)
  const S =
    n > cudaAttendSplit.tiles && n * B * Hs < cudaAttendSplit.maxBlocks
      ? Math.ceil(n / cudaAttendSplit.tiles)
      : 1
  const rows = B * Hs * K
  const program = (tag: string, source: string) => ({
    language: 'cuda' as const,
    name: `mosa-d${D}-rbab-${tag}`,
    source,
  })
  const [delta] = be.runProgram!({
    ...program('shipped', shipped),
    entryPoint: 'mosa_attend_delta',
    grid: [Math.ceil(rows / 8), 1, 1],
    block: [256, 1, 1],
    sharedBytes: 0,
    inputs: [t.o, t.dout],
    outputs: [{ shape: [B, Hs, K], dtype: 'float32' }],
    scalars: [{ type: 'i32', value: rows }],
  })
  const grad = { shape: [B, Hs, K, D], dtype: 'float32' as const, zeroInit: true }
  const launch = (tag: string, source: string) =>
    be.runProgram!({
      ...program(tag, source),
      entryPoint: 'mosa_attend_backward_rb',
      grid: [n * S, Hs, B],
      block: [128, 1, 1],
      sharedBytes: mosaCudaSharedBytes(D, 'mosa_attend_backward_rb'),
      inputs: [t.q, t.k, t.v, delta, t.lse, t.dout],
      outputs: [grad, grad, grad],
      scalars: [
        { type: 'i32', value: K },
        { type: 'i32', value: Hs },
        { type: 'f32', value: 1 / Math.sqrt(D) },
        { type: 'i32', value: S },
        { type: 'i32', value: cudaAttendSplit.tiles },
        { type: 'i32', value: 1 },
      ],
    })
  const time = (tag: string, source: string) =>
    timeIt(be, () => {
      for (const o of launch(tag, source)) be.release(o.dataId)
      return []
    })
  print({
    case: name,
    kernel: `${label}: rb kernel alone, shipped (A/B)`,
    ms: await time('shipped', shipped),
    gflop,
  })
  for (const [what, from, to] of edits) {
    const source = shipped.replace(from, to)
    if (source === shipped) throw new Error(`rb-ab: '${from}' not found in the source`)
    print({
      case: name,
      kernel: `${label}: rb kernel alone, ${what} (A/B)`,
      ms: await time(what, source),
      gflop,
    })
  }
  be.release(delta.dataId)
}

/**
 * The ceiling of the attention kernels' tensor-core instruction: mma.sync m16n8k8 TF32 with
 * float32 accumulation, operands in registers, 8 independent accumulators a warp, at 4 warps per
 * SM sub-partition (16 a SM) and at 1 (what one warp can issue on its own). GFLOP counts the TF32
 * products (a 3xTF32 float32 product is three of them).
 */
async function mmaCeiling(be: Backend, print: (r: Record<string, unknown>) => void) {
  const source = `
extern "C" __global__ void __launch_bounds__(128) mma_ceiling(float* out, int iters) {
  unsigned a[4], b[2];
  for (int i = 0; i < 4; ++i) a[i] = __float_as_uint(1.0f + 1e-3f * (threadIdx.x + i)) & 0xffffe000u;
  for (int i = 0; i < 2; ++i) b[i] = __float_as_uint(1e-3f * (threadIdx.x - i)) & 0xffffe000u;
  float c[8][4];
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) c[j][e] = 0.0f;
  for (int it = 0; it < iters; ++it)
#pragma unroll
    for (int j = 0; j < 8; ++j)
      asm volatile(
          "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
          : "+f"(c[j][0]), "+f"(c[j][1]), "+f"(c[j][2]), "+f"(c[j][3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  float s = 0.0f;
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) s += c[j][e];
  out[blockIdx.x * 128 + threadIdx.x] = s;
}
`
  const sms = 132
  const iters = 4096
  for (const [label, blocks] of [
    ['4 warps/SMSP', 4 * sms],
    ['1 warp/SMSP', sms],
  ] as [string, number][]) {
    const ms = await timeIt(be, () => {
      const outs = be.runProgram!({
        language: 'cuda',
        name: 'mma-ceiling',
        source,
        entryPoint: 'mma_ceiling',
        grid: [blocks, 1, 1],
        block: [128, 1, 1],
        inputs: [],
        outputs: [{ shape: [blocks * 128], dtype: 'float32' }],
        scalars: [{ type: 'i32', value: iters }],
      })
      for (const o of outs) be.release(o.dataId)
      return []
    })
    print({
      case: 'ceiling',
      kernel: `mma.sync tf32 m16n8k8, ${label}`,
      ms,
      gflop: (blocks * 4 * iters * 8 * 2048) / 1e9,
    })
  }
}

/**
 * Where the fused layer's time goes at T = 8192: each fused kernel launched on its own (device
 * time, median of 5), its FLOPs (attention causal, backward counted as 2.5x forward) and rate;
 * the dense heads' attention through the fused kernel and through core's attention.
 */
async function profile(be: Backend) {
  const rows: Record<string, unknown>[] = []
  const C = 512
  const D = 64
  const print = (r: Record<string, unknown>) => {
    rows.push(r)
    const gf = typeof r.gflop === 'number' ? (r.gflop as number) : 0
    console.log(
      `profile ${String(r.case).padEnd(10)} ${String(r.kernel).padEnd(34)} ${(r.ms as number).toFixed(3).padStart(8)} ms ${gf.toFixed(1).padStart(7)} GFLOP ${(gf / (r.ms as number)).toFixed(1).padStart(6)} TFLOP/s`,
    )
  }
  await mmaCeiling(be, print)
  for (const sparsity of [4, 16]) {
    const T = 8192
    const B = 1
    const config = longLayer(sparsity)
    const sparseHeads = config.sparseHeads
    const c = resolveConfig(config)
    const rng = new Rng(3)
    const p = init(config, rng, { backend: be })
    const x = rng.normal([B, T, C], 0, 1, { backend: be })
    const ok = fusedSupport(c, x)
    if (!ok.ok) throw new Error(`profile: fused kernels unavailable: ${ok.reason}`)
    const K = selectedTokens(T, sparsity)
    const Hs = sparseHeads
    const name = `T${T}-s${sparsity}`
    const logits = routerLogits(x, p.router!)
    const w = p.sparse!
    const [indices, scores] = runKernel(KERNELS.select, { logits }, { k: K, headDim: D })
    const [q, k, v] = runKernel(
      KERNELS.project,
      { x, indices, wq: w.q, wk: w.k, wv: w.v },
      { ropeBase: c.ropeBase },
    )
    const scale = 1 / Math.sqrt(D)
    const [o, lse] = runKernel(KERNELS.attend, { q, k, v }, { scale })
    const dy = rng.normal([B, T, C], 0, 1, { backend: be })
    const dout = rng.normal([B, Hs, K, D], 0, 1, { backend: be })
    const gemm = (2 * B * Hs * K * C * D) / 1e9
    const attn = (4 * B * Hs * ((K * (K + 1)) / 2) * D) / 1e9
    const launches: [string, number, () => Tensor[]][] = [
      ['router logits (core matmul)', (2 * B * T * C * Hs) / 1e9, () => [routerLogits(x, p.router!)]],
      ['select', 0, () => runKernel(KERNELS.select, { logits }, { k: K, headDim: D })],
      [
        'project (q,k,v)',
        3 * gemm,
        () => runKernel(KERNELS.project, { x, indices, wq: w.q, wk: w.k, wv: w.v }, { ropeBase: c.ropeBase }),
      ],
      ['attend', attn, () => runKernel(KERNELS.attend, { q, k, v }, { scale })],
      [
        'outScatter',
        gemm,
        () => runKernel(KERNELS.outScatter, { o, scores, indices, wo: w.o }, { seqLen: T }),
      ],
      ['outBackward', gemm, () => runKernel(KERNELS.outBackward, { dy, o, scores, indices, wo: w.o }, {})],
      ['outBackwardWeight', gemm, () => runKernel(KERNELS.outBackwardWeight, { o, scores, dy, indices }, {})],
      [
        'attendBackward (kv + q, one launch)',
        2.5 * attn,
        () => runKernel(KERNELS.attendBackward, { q, k, v, out: o, lse, dout }, { scale }),
      ],
      [
        'projectBackwardInput',
        3 * gemm,
        () =>
          runKernel(
            KERNELS.projectBackwardInput,
            { dq: dout, dk: dout, dv: dout, indices, wq: w.q, wk: w.k, wv: w.v },
            { seqLen: T },
          ),
      ],
      [
        'projectBackwardWeight',
        3 * gemm,
        () => runKernel(KERNELS.projectBackwardWeight, { dq: dout, dk: dout, dv: dout, x, indices }, {}),
      ],
      [
        // What the layer runs at batch 1 on the library route in place of the two above.
        'projectBackward (library: dx + dW, one kernel)',
        6 * gemm,
        () =>
          runKernel(
            CUDA_LIBRARY_KERNELS.projectBackward,
            { dq: dout, dk: dout, dv: dout, x, indices, wq: w.q, wk: w.k, wv: w.v },
            { ropeBase: c.ropeBase },
          ),
      ],
    ]
    for (const [kernel, gflop, fn] of launches) print({ case: name, kernel, ms: await timeIt(be, fn), gflop })
    {
      // The GEMM launches through the other route (cudaGemms: library by default at this size),
      // and whether both routes give the same q and dWo.
      const other = cudaLibraryGemms(B * Hs * K) ? 'fused' : 'library'
      const withGemms = async <R>(fn: () => Promise<R>) => {
        const saved = cudaGemms.route
        cudaGemms.route = other
        try {
          return await fn()
        } finally {
          cudaGemms.route = saved
        }
      }
      const routed = ['project (q,k,v)', 'outBackwardWeight', 'projectBackwardInput']
      for (const [kernel, gflop, fn] of launches.filter(([n]) => routed.includes(n)))
        print({
          case: name,
          kernel: `${kernel}, ${other} GEMMs (A/B)`,
          ms: await withGemms(() => timeIt(be, fn)),
          gflop,
        })
      const project = () =>
        runKernel(KERNELS.project, { x, indices, wq: w.q, wk: w.k, wv: w.v }, { ropeBase: c.ropeBase })
      const dWo = () => runKernel(KERNELS.outBackwardWeight, { o, scores, dy, indices }, {})
      const [qa] = project()
      const [qb] = await withGemms(async () => project())
      const [wa] = dWo()
      const [wb] = await withGemms(async () => dWo())
      const errs = `q ${relError(await host(qb), await host(qa)).toExponential(2)}, dWo ${relError(await host(wb), await host(wa)).toExponential(2)}`
      console.log(`profile ${name} ${other} GEMMs vs default route: ${errs}`)
      dispose([qa, qb, wa, wb])
      print({
        case: name,
        kernel: `layer fwd+bwd, ${other} GEMMs (A/B)`,
        ms: await withGemms(async () => (await timeLayer(p, x, { path: 'fused', iters: 5 })).ms),
        gflop: 0,
      })
    }
    // A/B of the attention settings against the defaults: cudaAttendBackward (dQ variant, delta)
    // and cudaKernelVariant (source variants: the tile loader, the fragment-loop unroll).
    type Setting = {
      backward?: Partial<typeof cudaAttendBackward>
      kernel?: Partial<typeof cudaKernelVariant>
      split?: Partial<typeof cudaAttendSplit>
    }
    const withSetting = async <R>(set: Setting, fn: () => Promise<R>) => {
      const saved = {
        backward: { ...cudaAttendBackward },
        kernel: { ...cudaKernelVariant },
        split: { ...cudaAttendSplit },
      }
      Object.assign(cudaAttendBackward, set.backward ?? {})
      Object.assign(cudaKernelVariant, set.kernel ?? {})
      Object.assign(cudaAttendSplit, set.split ?? {})
      try {
        return await fn()
      } finally {
        Object.assign(cudaAttendBackward, saved.backward)
        Object.assign(cudaKernelVariant, saved.kernel)
        Object.assign(cudaAttendSplit, saved.split)
      }
    }
    // The earlier backward kernels (mosa_attend_backward(_atomic)); their settings A/B below.
    const oldBackward: Setting = { kernel: { registerBackward: false } }
    const old = (set: Setting): Setting => ({ ...set, kernel: { ...set.kernel, registerBackward: false } })
    // The forward attention before the register kernel (scores and probabilities through shared
    // memory, 256 threads, 64 queries a block).
    const smemAttend: Setting = { kernel: { registerAttend: false } }
    // Tunings of the register forward: Q split at every key tile instead of once (the first H100
    // run's kernel; half the shared memory), 16- and 64-key tiles, 3 blocks per SM (168 registers).
    const attendTunings: [string, Setting][] = [
      ['Q split per tile', { kernel: { attendSplitQ: false } }],
      ['16-key tiles', { kernel: { attendKeyTile: 16 } }],
      [
        '16-key tiles, Q split per tile, 3 blocks/SM',
        { kernel: { attendKeyTile: 16, attendSplitQ: false, attendMinBlocks: 3 } },
      ],
      ['64-key tiles, Q split per tile', { kernel: { attendKeyTile: 64, attendSplitQ: false } }],
    ]
    // The forward's output and log-sum-exp, earlier kernel against the register kernel (max-normalised).
    const attendAgreement = async (fn: () => Tensor[]) => {
      const [oa, la] = fn()
      const [ob, lb] = await withSetting(smemAttend, async () => fn())
      const r = `out ${relError(await host(ob), await host(oa)).toExponential(2)}, lse ${relError(await host(lb), await host(la)).toExponential(2)}`
      dispose([oa, la, ob, lb])
      return r
    }
    const before: Setting = old({
      backward: { atomicDq: true, precomputedDelta: false },
      kernel: { batchedRowLoads: false, registerAttend: false },
    })
    const rowLoop: Setting = { kernel: { batchedRowLoads: false } }
    const mosaBackward = () => runKernel(KERNELS.attendBackward, { q, k, v, out: o, lse, dout }, { scale })
    const attendOnce = () => runKernel(KERNELS.attend, { q, k, v }, { scale })
    const backwardVariants: [string, Setting][] = [
      ['delta precomputed (mosa_attend_delta)', { backward: { precomputedDelta: true } }],
      ['old kernels (registerBackward off)', oldBackward],
      ['old, delta per block', old({ backward: { precomputedDelta: false } })],
      ['old, delta precomputed', old({ backward: { precomputedDelta: true } })],
      ['old, dQ blocks', old({ backward: { atomicDq: false } })],
      ['old, atomic dQ', old({ backward: { atomicDq: true } })],
      ['old, full unroll', old({ kernel: { fragmentUnroll: 0 } })],
      ['before (old, atomic dQ, delta per block, row loop)', before],
    ]
    print({
      case: name,
      kernel: 'attend, earlier kernel (A/B)',
      ms: await withSetting(smemAttend, () => timeIt(be, attendOnce)),
      gflop: attn,
    })
    print({
      case: name,
      kernel: 'attend, earlier kernel, row-loop loads (A/B)',
      ms: await withSetting({ kernel: { registerAttend: false, batchedRowLoads: false } }, () =>
        timeIt(be, attendOnce),
      ),
      gflop: attn,
    })
    for (const [label, set] of attendTunings)
      print({
        case: name,
        kernel: `attend, ${label} (A/B)`,
        ms: await withSetting(set, () => timeIt(be, attendOnce)),
        gflop: attn,
      })
    console.log(`profile ${name} attend, earlier vs register kernel: ${await attendAgreement(attendOnce)}`)
    for (const [label, set] of backwardVariants)
      print({
        case: name,
        kernel: `attendBackward, ${label} (A/B)`,
        ms: await withSetting(set, () => timeIt(be, mosaBackward)),
        gflop: 2.5 * attn,
      })
    {
      // Same numbers? Output and dQ of the earlier settings against the defaults (max-normalised).
      const [a] = mosaBackward()
      const [b] = await withSetting(before, async () => mosaBackward())
      const [oa] = attendOnce()
      const [ob] = await withSetting(before, async () => attendOnce())
      const errs = `out ${relError(await host(ob), await host(oa)).toExponential(2)}, dq ${relError(await host(b), await host(a)).toExponential(2)}`
      console.log(`profile ${name} before vs default settings: ${errs}`)
      dispose([a, b, oa, ob])
    }
    // Same gradients? dq, dk, dv of the earlier backward kernels against the register backward.
    const backwardAgreement = async (label: string, fn: () => Tensor[]) => {
      const fresh = fn()
      const earlier = await withSetting(oldBackward, async () => fn())
      const errs: Record<string, number> = {}
      for (const [i, g] of ['dq', 'dk', 'dv'].entries())
        errs[g] = relError(await host(earlier[i]), await host(fresh[i]))
      console.log(
        `profile ${name} ${label}: old backward kernels vs register backward, max rel error ${Object.entries(
          errs,
        )
          .map(([g, e]) => `${g} ${e.toExponential(2)}`)
          .join(', ')}`,
      )
      rows.push({ case: name, kernel: `${label}: old vs register backward`, ...errs })
      dispose([...fresh, ...earlier])
    }
    await backwardAgreement('MoSA heads', mosaBackward)
    if (flag('rb-ab'))
      await registerBackwardAb(be, print, name, 'MoSA heads', { q, k, v, o, lse, dout }, 2.5 * attn)
    // A/B of the GEMMs: operands split at every fragment load (the earlier
    // main loop) against split once when staged, kernel by kernel.
    const splitUse: Setting = { kernel: { splitStage: false } }
    const gemmNames = [
      'project (q,k,v)',
      'outScatter',
      'outBackward',
      'outBackwardWeight',
      'projectBackwardInput',
      'projectBackwardWeight',
    ]
    for (const [kernel, gflop, fn] of launches.filter(([n]) => gemmNames.includes(n)))
      print({
        case: name,
        kernel: `${kernel}, split per use (A/B)`,
        ms: await withSetting(splitUse, () => timeIt(be, fn)),
        gflop,
      })
    {
      // Same numbers? The GEMM outputs of both main loops (project: q; outBackwardWeight: dWo).
      const [qa] = runKernel(
        KERNELS.project,
        { x, indices, wq: w.q, wk: w.k, wv: w.v },
        { ropeBase: c.ropeBase },
      )
      const [qb] = await withSetting(splitUse, async () =>
        runKernel(KERNELS.project, { x, indices, wq: w.q, wk: w.k, wv: w.v }, { ropeBase: c.ropeBase }),
      )
      const [wa] = runKernel(KERNELS.outBackwardWeight, { o, scores, dy, indices }, {})
      const [wb] = await withSetting(splitUse, async () =>
        runKernel(KERNELS.outBackwardWeight, { o, scores, dy, indices }, {}),
      )
      const errs = `q ${relError(await host(qb), await host(qa)).toExponential(2)}, dWo ${relError(await host(wb), await host(wa)).toExponential(2)}`
      console.log(`profile ${name} GEMMs split per use vs split when staged: ${errs}`)
      dispose([qa, qb, wa, wb])
    }
    for (const [label, set] of [
      ['old backward kernels', oldBackward],
      ['earlier forward attention', smemAttend],
      ['row-loop loads', rowLoop],
      ['before (atomic dQ, delta per block, row loop)', before],
      ['GEMMs split per use', splitUse],
      [
        'this session before (GEMMs split per use, dQ blocks unrolled by 2)',
        { kernel: { splitStage: false, dqBlocksUnroll: 2 } },
      ],
    ] as [string, Setting][])
      print({
        case: name,
        kernel: `layer fwd+bwd, ${label} (A/B)`,
        ms: await withSetting(set, async () => (await timeLayer(p, x, { path: 'fused', iters: 5 })).ms),
        gflop: 0,
      })
    if (flag('gemm-ab')) {
      // A/B: the GEMM kernels capped at 128 registers for two blocks per SM (as shipped for D <= 64)
      // against one block per SM with no cap, same source otherwise.
      const source = mosaCudaSource(D)
      const oneBlock = source.replace('__launch_bounds__(256, D <= 64 ? 2 : 1)', '__launch_bounds__(256, 1)')
      if (oneBlock === source) throw new Error('profile: GEMM launch bounds not found in the source')
      const gk32 = source.replace('#define GK 16', '#define GK 32')
      if (gk32 === source) throw new Error('profile: GK not found in the source')
      const variant = (
        src: string,
        entryPoint: string,
        grid: [number, number, number],
        inputs: Tensor[],
        outputs: number[][],
        scalars: [string, number][],
      ) =>
        timeIt(be, () => {
          const outs = be.runProgram!({
            language: 'cuda',
            name: src === gk32 ? 'mosa-d64-gk32' : 'mosa-d64-oneblock',
            source: src,
            entryPoint,
            grid,
            block: [256, 1, 1],
            sharedBytes: mosaCudaSharedBytes(D, entryPoint),
            inputs,
            outputs: outputs.map((shape) => ({ shape, dtype: 'float32' as const })),
            scalars: scalars.map(([type, value]) => ({ type: type as 'i32' | 'f32', value })),
          })
          for (const o of outs) be.release(o.dataId)
          return []
        })
      const qkv = [B, Hs, K, D]
      // The two GEMM kernels of the projections, under one tuning: forward and weight gradient.
      const gemmPair = async (tuning: typeof oneBlock, label: [string, string]) => {
        print({
          case: name,
          kernel: `project, ${label[0]} (A/B)`,
          ms: await variant(
            tuning,
            'mosa_project',
            [Math.ceil(K / 128), 3 * Hs, B],
            [x, indices, w.q, w.k, w.v],
            [qkv, qkv, qkv],
            [
              ['i32', T],
              ['i32', C],
              ['i32', Hs],
              ['i32', K],
              ['f32', c.ropeBase],
            ],
          ),
          gflop: 3 * gemm,
        })
        print({
          case: name,
          kernel: `projectBackwardWeight, ${label[1]} (A/B)`,
          ms: await variant(
            tuning,
            'mosa_weight_grad_qkv',
            [Math.ceil(C / 128), 1, 3 * Hs],
            [dout, dout, dout, x, indices],
            [
              [Hs * D, C],
              [Hs * D, C],
              [Hs * D, C],
            ],
            [
              ['i32', T],
              ['i32', C],
              ['i32', Hs],
              ['i32', K],
              ['i32', B],
            ],
          ),
          gflop: 3 * gemm,
        })
      }
      await gemmPair(oneBlock, ['GEMM 1 block/SM', '1 block/SM'])
      await gemmPair(gk32, ['32-deep chunks', '32-deep'])
    }
    // The whole fused layer, fwd+bwd, and its MoSA heads alone (no dense heads): the difference is
    // the dense heads' part (projections, RoPE, fused attention, layout ops).
    const sparseOnly: MosaConfig = { ...config, denseHeads: 0 }
    const ps = init(sparseOnly, rng, { backend: be })
    print({
      case: name,
      kernel: 'layer fwd+bwd (fused path)',
      ms: (await timeLayer(p, x, { path: 'fused', iters: 5 })).ms,
      gflop: 0,
    })
    print({
      case: name,
      kernel: 'layer fwd+bwd, MoSA heads only',
      ms: (await timeLayer(ps, x, { path: 'fused', iters: 5 })).ms,
      gflop: 0,
    })
    print({
      case: name,
      kernel: 'layer fwd only (fused path)',
      ms: (await timeLayer(p, x, { path: 'fused', iters: 5, backward: false })).ms,
      gflop: 0,
    })
    print({
      case: name,
      kernel: 'layer fwd only, earlier forward attention (A/B)',
      ms: await withSetting(
        smemAttend,
        async () => (await timeLayer(p, x, { path: 'fused', iters: 5, backward: false })).ms,
      ),
      gflop: 0,
    })
    dispose(ps)
    // The two dense heads' attention: [B, 2, T, D], fused kernel vs core's attention.
    const [dq, dk, dv, ddo] = [0, 1, 2, 3].map(() => rng.normal([B, 2, T, D], 0, 1, { backend: be }))
    const dAttn = (4 * B * 2 * ((T * (T + 1)) / 2) * D) / 1e9
    const [dOut, dLse] = runKernel(KERNELS.attend, { q: dq, k: dk, v: dv }, { scale })
    print({
      case: name,
      kernel: 'dense heads: fused attend',
      ms: await timeIt(be, () => runKernel(KERNELS.attend, { q: dq, k: dk, v: dv }, { scale })),
      gflop: dAttn,
    })
    const denseBackward = () =>
      runKernel(KERNELS.attendBackward, { q: dq, k: dk, v: dv, out: dOut, lse: dLse, dout: ddo }, { scale })
    print({
      case: name,
      kernel: 'dense heads: fused attendBackward',
      ms: await timeIt(be, denseBackward),
      gflop: 2.5 * dAttn,
    })
    const denseAttend = () => runKernel(KERNELS.attend, { q: dq, k: dk, v: dv }, { scale })
    print({
      case: name,
      kernel: 'dense heads: attend, earlier kernel (A/B)',
      ms: await withSetting(smemAttend, () => timeIt(be, denseAttend)),
      gflop: dAttn,
    })
    print({
      case: name,
      kernel: 'dense heads: attend, earlier kernel, row-loop loads (A/B)',
      ms: await withSetting({ kernel: { registerAttend: false, batchedRowLoads: false } }, () =>
        timeIt(be, denseAttend),
      ),
      gflop: dAttn,
    })
    for (const [label, set] of [
      ...attendTunings,
      ['parts of 512 keys', { split: { tiles: 8 } }],
      ['parts of 2048 keys', { split: { tiles: 32 } }],
      ['not split', { split: { tiles: 1e9 } }],
    ] as [string, Setting][])
      print({
        case: name,
        kernel: `dense heads: attend, ${label} (A/B)`,
        ms: await withSetting(set, () => timeIt(be, denseAttend)),
        gflop: dAttn,
      })
    console.log(
      `profile ${name} dense heads: attend, earlier vs register kernel: ${await attendAgreement(denseAttend)}`,
    )
    for (const [label, set] of [
      ...backwardVariants,
      ['old, dQ blocks unrolled by 2 (before)', old({ kernel: { dqBlocksUnroll: 2 } })],
    ] as [string, Setting][])
      print({
        case: name,
        kernel: `dense heads: attendBackward, ${label} (A/B)`,
        ms: await withSetting(set, () => timeIt(be, denseBackward)),
        gflop: 2.5 * dAttn,
      })
    await backwardAgreement('dense heads', denseBackward)
    if (flag('rb-ab'))
      await registerBackwardAb(
        be,
        print,
        name,
        'dense heads',
        { q: dq, k: dk, v: dv, o: dOut, lse: dLse, dout: ddo },
        2.5 * dAttn,
      )
    // Agreement at this size: fused attention vs core's (forward output and dq), max-normalised.
    const coreOut = attention(dq, dk, dv, { causal: true })
    const coreDq = valueAndGrad((t: { q: Tensor }) =>
      sum(mul(attention(t.q, dk, dv, { causal: true }), ddo)),
    )({ q: dq })
    const [fusedDq] = runKernel(
      KERNELS.attendBackward,
      { q: dq, k: dk, v: dv, out: dOut, lse: dLse, dout: ddo },
      { scale },
    )
    const errOut = relError(await host(dOut), await host(coreOut))
    const errDq = relError(await host(fusedDq), await host(coreDq.grads.q))
    console.log(
      `profile ${name} dense heads T=${T}: fused vs core attention, max rel error out ${errOut.toExponential(2)}, dq ${errDq.toExponential(2)}`,
    )
    rows.push({ case: name, kernel: 'dense heads: fused vs core attention', errOut, errDq })
    dispose([coreOut, coreDq.value, coreDq.grads.q, fusedDq])
    print({
      case: name,
      kernel: 'dense heads: core attention fwd',
      ms: await timeIt(be, () => [attention(dq, dk, dv, { causal: true })]),
      gflop: dAttn,
    })
    print({
      case: name,
      kernel: 'dense heads: core attention fwd+bwd',
      ms: await timeIt(be, () => {
        const r = valueAndGrad((t: { q: Tensor }) => sum(mul(attention(t.q, dk, dv, { causal: true }), ddo)))(
          { q: dq },
        )
        return [r.value, r.grads.q]
      }),
      gflop: 3.5 * dAttn,
    })
    dispose([p, x, logits, indices, scores, q, k, v, o, lse, dy, dout, dq, dk, dv, ddo, dOut, dLse])
  }
  writeFileSync(join(out, 'profile.json'), JSON.stringify(rows, null, 1))
}

function report() {
  const mosa = JSON.parse(readFileSync(join(out, 'mosa.json'), 'utf8'))
  let torch: Record<string, { ms: number; peakBytes: number; checkError?: number }> = {}
  try {
    torch = JSON.parse(readFileSync(join(out, 'torch.json'), 'utf8')).cases
  } catch {
    console.log('(no torch.json: PyTorch columns empty)')
  }
  // torch-first.json: an earlier PyTorch run of the same call (before the attnkit part), if any.
  let torchFirst: Record<string, { ms: number }> = {}
  try {
    torchFirst = JSON.parse(readFileSync(join(out, 'torch-first.json'), 'utf8')).cases
  } catch {}
  const f = (v: unknown) => (typeof v === 'number' ? v.toFixed(2) : '-')
  const mb = (v: unknown) => (typeof v === 'number' ? (v / 2 ** 20).toFixed(0) : '-')
  console.log(`device: ${mosa.device}; dtype ${mosa.dtype ?? 'float32'}, batch ${mosa.rows[0]?.batch ?? '?'}`)
  console.log(`check (fused vs portable, fwd+bwd, ${JSON.stringify(mosa.check.config)}):`)
  console.log(
    `  same selection: ${mosa.check.sameSelection}; max errors ${JSON.stringify(mosa.check.errors)}`,
  )
  if (mosa.check.longRows)
    console.log(
      `  long-row kernels forced (split forward, dQ blocks): same selection: ${mosa.check.longRows.sameSelection}; max errors ${JSON.stringify(mosa.check.longRows.errors)}`,
    )
  console.log(
    'case        Hs  fused ms  portable ms  dense ms  torch ms  fused/portable  fused/torch  fused MiB  portable MiB  dense MiB  torch MiB  fwd err',
  )
  for (const r of mosa.rows) {
    const t = torch[r.name]
    const fused = r.fused?.ms
    console.log(
      [
        r.name.padEnd(11),
        String(r.sparseHeads).padStart(3),
        f(fused).padStart(9),
        f(r.portable?.ms).padStart(12),
        f(r.dense?.ms).padStart(9),
        f(t?.ms).padStart(9),
        (typeof fused === 'number' && r.portable?.ms
          ? `${(r.portable.ms / fused).toFixed(2)}x`
          : '-'
        ).padStart(15),
        (typeof fused === 'number' && t?.ms ? `${(t.ms / fused).toFixed(2)}x` : '-').padStart(12),
        mb(r.fused?.peakBytes).padStart(10),
        mb(r.portable?.peakBytes).padStart(13),
        mb(r.dense?.peakBytes).padStart(10),
        mb(t?.peakBytes).padStart(10),
        (typeof r.fusedVsPortable === 'number'
          ? r.fusedVsPortable.toExponential(1)
          : String(r.fusedVsPortable)
        ).padStart(8),
      ].join(' '),
    )
  }
  if (mosa.rows.some((r: { fusedOtherGemms?: unknown }) => r.fusedOtherGemms)) {
    console.log("Fused path with the other GEMM route than 'auto' takes (cudaGemms), ms and MiB:")
    for (const r of mosa.rows) {
      const o = r.fusedOtherGemms
      if (!o) continue
      console.log(
        `  ${r.name.padEnd(10)} ${String(o.route).padEnd(8)} ${o.error ?? `${f(o.ms).padStart(7)} ${mb(o.peakBytes).padStart(6)}`}`,
      )
    }
  }
  if (Object.keys(torchFirst).length) {
    console.log('PyTorch run before the attnkit part (same call), ms and fused/torch:')
    for (const r of mosa.rows) {
      const t = torchFirst[r.name]?.ms
      const fused = r.fused?.ms
      console.log(
        `  ${r.name.padEnd(10)} ${f(t).padStart(7)} ${typeof t === 'number' && typeof fused === 'number' ? `${(t / fused).toFixed(2)}x` : '-'}`,
      )
    }
  }
  if (torch['check'])
    console.log(`PyTorch on attnkit's weights: max rel error of y vs attnkit ${torch['check'].checkError}`)
}

/**
 * --layer-trace [--sparsity 4,16]: three fused forward+backward steps of the T = 8192 layers, nothing
 * else, so that a kernel tracer (`ncu --metrics gpu__time_duration.sum --csv`) sums each kernel's
 * device time over exactly three steps: where the layer's time goes, launches included.
 */
async function layerTrace(be: Backend) {
  for (const sparsity of opt('sparsity', '4,16').split(',').map(Number)) {
    const T = 8192
    const config = longLayer(sparsity)
    const rng = new Rng(5)
    const p = init(config, rng, { backend: be })
    const x = rng.normal([1, T, 512], 0, 1, { backend: be })
    console.log(`layer-trace T${T}-s${sparsity}: begin`)
    const t = await timeLayer(p, x, { path: 'fused', warmup: 1, iters: 1 })
    console.log(`layer-trace T${T}-s${sparsity}: end (3 steps; last ${t.ms.toFixed(2)} ms)`)
    dispose([p, x])
  }
}

/**
 * --ncu: only the attention kernels of the T = 8192, s4 layer, once each (MoSA heads' attend and
 * attendBackward, the dense heads' split attend and attendBackward), for Nsight Compute
 * (`ncu -k regex:mosa_attend ... node h100.mjs --ncu`).
 */
async function ncuLaunches(be: Backend) {
  ensureFusedKernels()
  const T = 8192
  const { headDim: D, sparseHeads } = longLayer(4)
  const K = selectedTokens(T, 4)
  const rng = new Rng(4)
  const scale = 1 / Math.sqrt(D)
  for (const [H, L] of [
    [sparseHeads, K],
    [2, T],
  ]) {
    const [q, k, v, dout] = [0, 1, 2, 3].map(() => rng.normal([1, H, L, D], 0, 1, { backend: be }))
    const [o, lse] = runKernel(KERNELS.attend, { q, k, v }, { scale })
    const grads = runKernel(KERNELS.attendBackward, { q, k, v, out: o, lse, dout }, { scale })
    await be.synchronize()
    dispose([q, k, v, dout, o, lse, ...grads])
  }
}

async function main() {
  if (flag('report')) return report()
  if (flag('cases-only')) {
    // cases.json alone, so torch_baseline.py can also run before the attnkit part (run-to-run spread).
    writeFileSync(join(out, 'cases.json'), JSON.stringify(cases(), null, 1))
    return
  }
  if (flag('ncu')) {
    await import('@attnkit/backend-cuda')
    return ncuLaunches(await setBackend('cuda'))
  }
  if (flag('layer-trace')) {
    await import('@attnkit/backend-cuda')
    return layerTrace(await setBackend('cuda'))
  }
  const name = opt('backend', 'cuda')
  if (name === 'cuda') await import('@attnkit/backend-cuda')
  if (name === 'webgpu') await import('@attnkit/backend-webgpu')
  const be = await setBackend(name)
  console.log(`backend ${be.name}: ${be.info().device}`)
  const checked = await check(be)
  console.log(`check: ${JSON.stringify(checked)}`)
  writeFileSync(join(out, 'cases.json'), JSON.stringify(cases(), null, 1))
  // --profile-only: the check and the profile, without the layer table (a shorter device call).
  const rows = flag('profile-only') ? [] : await bench(be)
  writeFileSync(
    join(out, 'mosa.json'),
    JSON.stringify({ device: be.info().device, dtype: benchDType, check: checked, rows }, null, 1),
  )
  if (flag('profile') || flag('profile-only')) {
    try {
      await profile(be)
    } catch (e) {
      console.log(`profile failed: ${(e as Error).stack}`)
    }
  }
}

await main()
