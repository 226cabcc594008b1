import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type AttentionAttrs,
  type DType,
  dispose as disposeAll,
  Rng,
  runKernel,
  type Tensor,
  tensor,
} from '@attnkit/core'
import type { CudaBackend } from './backend.js'

/** FLOPs of an M x N x K matmul. */
export function matmulFlops(m: number, n: number, k: number): number {
  return 2 * m * n * k
}

/**
 * FLOPs of attention forward (4 B H Tq Tk D, halved when causal, the usual flash-attention
 * convention); the backward pass counts 2.5 times the forward.
 */
export function attentionFlops(
  b: number,
  h: number,
  tq: number,
  tk: number,
  d: number,
  causal: boolean,
): number {
  return (4 * b * h * tq * tk * d) / (causal ? 2 : 1)
}

export interface MatmulBenchResult {
  m: number
  n: number
  k: number
  dtype: DType
  ms: number
  tflops: number
}

export interface AttentionBenchResult {
  batch: number
  heads: number
  seq: number
  headDim: number
  causal: boolean
  dtype: DType
  forwardMs: number
  forwardTflops: number
  forwardBackwardMs: number
  forwardBackwardTflops: number
}

function upload(backend: CudaBackend, values: ArrayLike<number>, shape: number[], dtype: DType): Tensor {
  return tensor(values, shape, { dtype, backend })
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Times `iters` launches of fn with CUDA events, `reps` times after `warmup` runs; median per launch. */
async function timeDevice(backend: CudaBackend, fn: () => void, warmup: number, iters: number, reps: number) {
  for (let i = 0; i < warmup; i++) fn()
  await backend.synchronize()
  const times: number[] = []
  for (let r = 0; r < reps; r++) {
    const t = await backend.time(() => {
      for (let i = 0; i < iters; i++) fn()
    })
    times.push(t.deviceMs / iters)
  }
  return median(times)
}

/** bf16/f16/f32 matmul throughput on random data (cuBLASLt). */
export async function benchMatmul(
  backend: CudaBackend,
  opts: { m: number; n: number; k: number; dtype?: DType; iters?: number; reps?: number } = {
    m: 8192,
    n: 8192,
    k: 8192,
  },
): Promise<MatmulBenchResult> {
  const dtype = opts.dtype ?? 'bfloat16'
  const rng = new Rng(1)
  const a = upload(backend, rng.normalArray(opts.m * opts.k), [opts.m, opts.k], dtype)
  const b = upload(backend, rng.normalArray(opts.k * opts.n), [opts.k, opts.n], dtype)
  try {
    const ms = await timeDevice(
      backend,
      () => disposeAll(runKernel('matmul', { a, b }, { transposeA: false, transposeB: false })),
      3,
      opts.iters ?? 10,
      opts.reps ?? 5,
    )
    return {
      m: opts.m,
      n: opts.n,
      k: opts.k,
      dtype,
      ms,
      tflops: matmulFlops(opts.m, opts.n, opts.k) / ms / 1e9,
    }
  } finally {
    a.dispose()
    b.dispose()
  }
}

/** Fused attention forward, and forward + backward, on random data. */
export async function benchAttention(
  backend: CudaBackend,
  opts: {
    batch: number
    heads: number
    seq: number
    headDim: number
    causal?: boolean
    dtype?: DType
    iters?: number
    reps?: number
    /** Time forward + backward too (default true). */
    backward?: boolean
  },
): Promise<AttentionBenchResult> {
  const dtype = opts.dtype ?? 'bfloat16'
  const causal = opts.causal ?? true
  const { batch: B, heads: H, seq: T, headDim: D } = opts
  const rng = new Rng(2)
  const shape = [B, H, T, D]
  const n = B * H * T * D
  const q = upload(backend, rng.normalArray(n), shape, dtype)
  const k = upload(backend, rng.normalArray(n), shape, dtype)
  const v = upload(backend, rng.normalArray(n), shape, dtype)
  const dout = upload(backend, rng.normalArray(n), shape, dtype)
  const pos = new Int32Array(B * H * T)
  for (let i = 0; i < pos.length; i++) pos[i] = i % T
  const qPos = upload(backend, pos, [B, H, T], 'int32')
  const kPos = upload(backend, pos, [B, H, T], 'int32')
  const attrs: AttentionAttrs = { scale: 1 / Math.sqrt(D), causal, window: 0, sinks: 0 }
  const owned: Tensor[] = [q, k, v, dout, qPos, kPos]
  try {
    const iters = opts.iters ?? 10
    const reps = opts.reps ?? 5
    const fwd = () => runKernel('attention', { q, k, v, qPos, kPos }, attrs)
    const forwardMs = await timeDevice(backend, () => disposeAll(fwd()), 3, iters, reps)
    const forwardBackwardMs =
      opts.backward === false
        ? Number.NaN
        : await timeDevice(
            backend,
            () => {
              const [out, lse] = fwd()
              const grads = runKernel('attentionBackward', { q, k, v, out, lse, dout, qPos, kPos }, attrs)
              for (const t of [out, lse, ...grads]) t.dispose()
            },
            2,
            iters,
            reps,
          )
    const f = attentionFlops(B, H, T, T, D, causal)
    return {
      batch: B,
      heads: H,
      seq: T,
      headDim: D,
      causal,
      dtype,
      forwardMs,
      forwardTflops: f / forwardMs / 1e9,
      forwardBackwardMs,
      forwardBackwardTflops: (3.5 * f) / forwardBackwardMs / 1e9,
    }
  } finally {
    for (const t of owned) t.dispose()
  }
}

/** The PyTorch script that times the same cases (dist/bench/ when installed, bench/ in the repo). */
export const TORCH_REFERENCE_SCRIPT = ((here: string) =>
  [join(here, 'bench', 'torch_reference.py'), join(here, '..', 'bench', 'torch_reference.py')].find((p) =>
    existsSync(p),
  ) ?? join(here, 'bench', 'torch_reference.py'))(dirname(fileURLToPath(import.meta.url)))

export interface TorchReference {
  torch: string
  device: string
  matmul?: { ms: number; tflops: number }
  attention?: {
    forwardMs: number
    forwardTflops: number
    forwardBackwardMs: number
    forwardBackwardTflops: number
  }
  error?: string
}

/**
 * Runs bench/torch_reference.py with `python` (default python3) for a side-by-side table; returns
 * { error } when Python, torch or a CUDA device is missing.
 */
export function runTorchReference(
  opts: {
    python?: string
    script?: string
    matmul?: number
    batch?: number
    heads?: number
    seq?: number
    headDim?: number
  } = {},
): TorchReference {
  const script = opts.script ?? TORCH_REFERENCE_SCRIPT
  if (!existsSync(script)) return { torch: '', device: '', error: `missing ${script}` }
  const args = [
    script,
    '--json',
    `--matmul=${opts.matmul ?? 8192}`,
    `--batch=${opts.batch ?? 4}`,
    `--heads=${opts.heads ?? 16}`,
    `--seq=${opts.seq ?? 4096}`,
    `--head-dim=${opts.headDim ?? 128}`,
  ]
  const r = spawnSync(opts.python ?? 'python3', args, { encoding: 'utf8', timeout: 600_000 })
  if (r.error || r.status !== 0) {
    return {
      torch: '',
      device: '',
      error: (r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-3).join(' '),
    }
  }
  const line = r.stdout.trim().split('\n').at(-1) ?? '{}'
  return JSON.parse(line) as TorchReference
}
