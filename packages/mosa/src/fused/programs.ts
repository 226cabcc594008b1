import type { Backend, KernelConfig, ProgramSpec, TensorInfo } from '@attnkit/core'
import type { Tiles } from '../kernels/tiles.js'
import { KERNELS } from './names.js'

/** What a language brings: its source for a head dim, tiles, and how it launches 256 (or 64) threads. */
export interface Language {
  language: 'cuda' | 'wgsl'
  backendName: string
  /** Source holding `entry` for head dim D (CUDA: one module with every kernel). */
  source(D: number, entry: string): string
  /** Largest head dim the kernels take. */
  maxHeadDim: number
  tiles(D: number): Tiles
  /** Dynamic shared memory of an entry point for head dim D (CUDA; WGSL declares its own). */
  sharedBytes?(D: number, entry: string): number
  /** CUDA block (ignored by WGSL, whose source declares its workgroup size). */
  block?: readonly [number, number, number]
  /** Entry point names differ in style only. */
  entry(name: string): string
}

const cdiv = (a: number, b: number) => Math.ceil(a / b)
const i32 = (value: number) => ({ type: 'i32' as const, value })
const f32 = (value: number) => ({ type: 'f32' as const, value })

type Inputs = Record<string, TensorInfo>

/**
 * When the CUDA forward attention splits each query tile's keys over several blocks: only for
 * few, long rows (fewer than `maxBlocks` query tiles in all, each of more than `tiles` key tiles:
 * the dense heads at long T), where one block per query tile leaves the longest rows as the tail.
 * Mutable for tests (small `tiles` exercises the split on small inputs).
 */
export const cudaAttendSplit = { tiles: 16, maxBlocks: 1024 }

/**
 * CUDA attention backward: atomicDq adds dQ from the key-tile blocks with atomic reductions
 * (five tile products per tile pair, sums in varying order); otherwise dQ has its own blocks in
 * the same launch (seven products, S and dP recomputed; deterministic). Mutable for the bench's
 * comparison and tests.
 */
export const cudaAttendBackward = { atomicDq: true }

function attendSplit(lang: Language, n: number, heads: number): { S: number; L: number } | null {
  if (lang.language !== 'cuda') return null
  const L = cudaAttendSplit.tiles
  if (n <= L || n * heads >= cudaAttendSplit.maxBlocks) return null
  return { S: cdiv(n, L), L }
}

function runner(lang: Language, backend: Backend, D: number) {
  const tiles = lang.tiles(D)
  const run = (
    entry: string,
    grid: [number, number, number],
    inputs: TensorInfo[],
    outputs: ProgramSpec['outputs'],
    scalars: ProgramSpec['scalars'],
  ) =>
    backend.runProgram!({
      language: lang.language,
      name: `mosa-d${D}`,
      source: lang.source(D, entry),
      entryPoint: lang.entry(entry),
      grid,
      block: lang.block,
      sharedBytes: lang.sharedBytes?.(D, entry),
      inputs,
      outputs,
      scalars,
    })
  return { tiles, run }
}

/** Kernel configs of every fused MoSA kernel for one language (registered per backend name). */
export function kernelConfigs(lang: Language): KernelConfig[] {
  const kernel = (
    kernelName: string,
    fn: (inputs: Inputs, attrs: never, backend: Backend) => TensorInfo[],
  ) => ({
    kernelName,
    backendName: lang.backendName,
    kernelFunc: ({ inputs, attrs, backend }: { inputs: unknown; attrs: unknown; backend: Backend }) =>
      fn(inputs as Inputs, attrs as never, backend),
  })
  return [
    kernel(KERNELS.select, ({ logits }, attrs: { k: number; headDim: number }, backend) => {
      const [B, Hs, T] = logits.shape
      // headDim only picks the compiled module the other kernels of the layer use.
      const { run } = runner(lang, backend, attrs.headDim)
      const shape = [B, Hs, attrs.k]
      return run(
        'mosa_select',
        [B * Hs, 1, 1],
        [logits],
        [
          { shape, dtype: 'int32' },
          { shape, dtype: 'float32' },
        ],
        [i32(T), i32(attrs.k)],
      )
    }),
    kernel(KERNELS.project, ({ x, indices, wq, wk, wv }, attrs: { ropeBase: number }, backend) => {
      const [B, T, C] = x.shape
      const [, Hs, K] = indices.shape
      const D = wq.shape[0] / Hs
      const { tiles, run } = runner(lang, backend, D)
      const out = { shape: [B, Hs, K, D], dtype: 'float32' as const }
      return run(
        'mosa_project',
        [cdiv(K, tiles.BM), 3 * Hs, B],
        [x, indices, wq, wk, wv],
        [out, out, out],
        [i32(T), i32(C), i32(Hs), i32(K), f32(attrs.ropeBase)],
      )
    }),
    kernel(KERNELS.attend, ({ q, k, v }, attrs: { scale: number }, backend) => {
      const [B, Hs, K, D] = q.shape
      const { tiles, run } = runner(lang, backend, D)
      const n = cdiv(K, tiles.BQ)
      const split = attendSplit(lang, n, B * Hs)
      if (split) {
        // Few long rows (the dense heads): key ranges of split.L tiles in parallel, then merged.
        const { S, L } = split
        const rows = B * Hs * K
        const parts = run(
          'mosa_attend_part',
          [n * S, Hs, B],
          [q, k, v],
          [
            { shape: [S, rows, D], dtype: 'float32' },
            { shape: [S, rows], dtype: 'float32' },
            { shape: [S, rows], dtype: 'float32' },
          ],
          [i32(K), i32(Hs), f32(attrs.scale), i32(S), i32(L)],
        )
        const outs = run(
          'mosa_attend_combine',
          [cdiv(rows, 8), 1, 1],
          parts,
          [
            { shape: [B, Hs, K, D], dtype: 'float32' },
            { shape: [B, Hs, K], dtype: 'float32' },
          ],
          [i32(K), i32(rows), i32(S), i32(L)],
        )
        for (const p of parts) backend.release(p.dataId)
        return outs
      }
      return run(
        'mosa_attend',
        [cdiv(K, tiles.BQ), Hs, B],
        [q, k, v],
        [
          { shape: [B, Hs, K, D], dtype: 'float32' },
          { shape: [B, Hs, K], dtype: 'float32' },
        ],
        [i32(K), i32(Hs), f32(attrs.scale)],
      )
    }),
    kernel(KERNELS.outScatter, ({ o, scores, indices, wo }, attrs: { seqLen: number }, backend) => {
      const [B, Hs, K, D] = o.shape
      const C = wo.shape[0]
      const T = attrs.seqLen
      const { tiles, run } = runner(lang, backend, D)
      return run(
        'mosa_out_scatter',
        [cdiv(K, tiles.BM), cdiv(C, tiles.BN), B * Hs],
        [o, scores, indices, wo],
        [{ shape: [B, T, C], dtype: 'float32', zeroInit: true }],
        [i32(T), i32(C), i32(Hs), i32(K)],
      )
    }),
    kernel(KERNELS.outBackward, ({ dy, o, scores, indices, wo }, _attrs, backend) => {
      const [B, Hs, K, D] = o.shape
      const [, T, C] = dy.shape
      const { tiles, run } = runner(lang, backend, D)
      return run(
        'mosa_out_backward',
        [cdiv(K, tiles.BM), Hs, B],
        [dy, o, scores, indices, wo],
        [
          { shape: [B, Hs, K, D], dtype: 'float32' },
          { shape: [B, Hs, K], dtype: 'float32' },
        ],
        [i32(T), i32(C), i32(Hs), i32(K)],
      )
    }),
    kernel(KERNELS.outBackwardWeight, ({ o, scores, dy, indices }, _attrs, backend) => {
      const [B, Hs, K, D] = o.shape
      const [, T, C] = dy.shape
      const { tiles, run } = runner(lang, backend, D)
      return run(
        'mosa_weight_grad_out',
        [cdiv(C, tiles.BW), cdiv(D, tiles.BW), Hs],
        [o, scores, dy, indices],
        [{ shape: [C, Hs * D], dtype: 'float32' }],
        [i32(T), i32(C), i32(Hs), i32(K), i32(B)],
      )
    }),
    kernel(KERNELS.attendBackward, ({ q, k, v, out, lse, dout }, attrs: { scale: number }, backend) => {
      const [B, Hs, K, D] = q.shape
      const { tiles, run } = runner(lang, backend, D)
      const grad = { shape: [B, Hs, K, D], dtype: 'float32' as const }
      const scalars = [i32(K), i32(Hs), f32(attrs.scale)]
      if (lang.language === 'cuda') {
        if (cudaAttendBackward.atomicDq) {
          // dK/dV blocks that also add their share of dQ (atomics): no recomputation of S and dP.
          const grid: [number, number, number] = [cdiv(K, tiles.BB), Hs, B]
          const zeroed = { ...grad, zeroInit: true }
          return run(
            'mosa_attend_backward_atomic',
            grid,
            [q, k, v, out, lse, dout],
            [zeroed, grad, grad],
            scalars,
          )
        }
        // One launch: dK/dV blocks and dQ blocks side by side.
        const grid: [number, number, number] = [2 * cdiv(K, tiles.BB), Hs, B]
        return run('mosa_attend_backward', grid, [q, k, v, out, lse, dout], [grad, grad, grad], scalars)
      }
      const grid: [number, number, number] = [cdiv(K, tiles.BB), Hs, B]
      const [dk, dv] = run('mosa_attend_backward_kv', grid, [q, k, v, out, lse, dout], [grad, grad], scalars)
      const [dq] = run('mosa_attend_backward_q', grid, [q, k, v, out, lse, dout], [grad], scalars)
      return [dq, dk, dv]
    }),
    kernel(
      KERNELS.projectBackwardInput,
      ({ dq, dk, dv, indices, wq, wk, wv }, attrs: { seqLen: number }, backend) => {
        const [B, Hs, K, D] = dq.shape
        const C = wq.shape[1]
        const T = attrs.seqLen
        const { tiles, run } = runner(lang, backend, D)
        return run(
          'mosa_project_backward_input',
          [cdiv(K, tiles.BM), cdiv(C, tiles.BN), B * Hs],
          [dq, dk, dv, indices, wq, wk, wv],
          [{ shape: [B, T, C], dtype: 'float32', zeroInit: true }],
          [i32(T), i32(C), i32(Hs), i32(K)],
        )
      },
    ),
    kernel(KERNELS.projectBackwardWeight, ({ dq, dk, dv, x, indices }, _attrs, backend) => {
      const [B, Hs, K, D] = dq.shape
      const [, T, C] = x.shape
      const { tiles, run } = runner(lang, backend, D)
      const w = { shape: [Hs * D, C], dtype: 'float32' as const }
      return run(
        'mosa_weight_grad_qkv',
        [cdiv(C, tiles.BW), cdiv(D, tiles.BW), 3 * Hs],
        [dq, dk, dv, x, indices],
        [w, w, w],
        [i32(T), i32(C), i32(Hs), i32(K), i32(B)],
      )
    }),
  ]
}
