import type { Backend, KernelConfig, ProgramSpec, TensorInfo } from '@attnkit/core'
import type { Tiles } from '../kernels/tiles.js'
import { cdiv, f32, i32, type Run } from './launch.js'
import {
  cudaLibraryGemms,
  outBackwardWeightLibrary,
  projectBackwardInputLibrary,
  projectBackwardLibrary,
  projectLibrary,
} from './library-gemms.js'
import { CUDA_LIBRARY_KERNELS, KERNELS } from './names.js'

/** What a language brings: its source for a head dim, tiles, and how it launches 256 (or 64) threads. */
export interface Language {
  language: 'cuda' | 'wgsl'
  backendName: string
  /** Source holding `entry` for head dim D (CUDA: one module with every kernel). */
  source(D: number, entry: string): string
  /** Suffix of the module name naming a source variant (CUDA: cudaKernelVariant), if any. */
  moduleTag?(): string
  /** Largest head dim the kernels take. */
  maxHeadDim: number
  tiles(D: number): Tiles
  /** Dynamic shared memory of an entry point for head dim D (CUDA; WGSL declares its own). */
  sharedBytes?(D: number, entry: string): number
  /** CUDA block (ignored by WGSL, whose source declares its workgroup size). */
  block?: readonly [number, number, number]
  /** CUDA block of one entry point, where it differs from `block`. */
  entryBlock?(D: number, entry: string): readonly [number, number, number] | undefined
  /** Queries per block of the forward attention (default tiles(D).BQ). */
  attendQueries?(D: number): number
  /** Entry point names differ in style only. */
  entry(name: string): string
}

type Inputs = Record<string, TensorInfo>

/**
 * When the CUDA forward attention splits each query tile's keys over several blocks: only for
 * few, long rows (fewer than `maxBlocks` query tiles in all, each of more than `tiles` key tiles:
 * the dense heads at long T), where one block per query tile leaves the longest rows as the tail.
 * Tiles here are of 64 (tiles(D).BQ); each part takes `tiles` x 64 keys, rounded to whole query
 * tiles of the kernel's own size (Language.attendQueries) and at least one. Mutable for tests
 * (small `tiles` exercises the split on small inputs).
 */
export const cudaAttendSplit = { tiles: 16, maxBlocks: 1024 }

/**
 * CUDA attention backward. atomicDq: true adds dQ from the key-tile blocks with atomic
 * reductions (five tile products per tile pair, sums in varying order); false gives dQ its own
 * blocks in the same launch (seven products, S and dP recomputed; deterministic); 'auto' (the
 * default) takes dQ blocks for few long rows (the shape rule of cudaAttendSplit: the dense heads
 * at long T, where the atomic variant's 1-block-per-key-tile grid leaves key tile 0 walking every
 * query tile: H100, T = 8192, 2 heads: 2.57 ms against 2.89) and atomics elsewhere.
 * precomputedDelta: true computes the row term dout . out once per row (mosa_attend_delta) instead
 * of in every block visiting the query tile; 'auto' (the default) does so only for the atomic
 * variant over rows of more than cudaAttendSplit.tiles tiles (H100, T = 8192, MoSA heads' backward:
 * k = 2048 3.12 ms against 3.24; k = 512 1.69 against 1.51; the dense heads' dQ-block backward
 * 2.69 against 2.65). The register backward (cudaKernelVariant.registerBackward) reads atomicDq
 * not at all and takes the precomputed delta only for precomputedDelta: true: its blocks compute
 * delta while staging each query tile (one launch; each launch costs ~0.4 ms of host time in
 * backend-cuda, which the bench's per-launch rows count). Mutable for the bench's comparison and tests.
 */
export const cudaAttendBackward: { atomicDq: boolean | 'auto'; precomputedDelta: boolean | 'auto' } = {
  atomicDq: 'auto',
  precomputedDelta: 'auto',
}

/**
 * Source variant of the CUDA kernels (mosaCudaSource's options; each variant compiles to its own
 * module). Mutable for the bench's A/B and tests.
 */
export const cudaKernelVariant: {
  fragmentUnroll: number
  dqBlocksUnroll: number
  batchedRowLoads: boolean
  splitStage: boolean
  registerBackward: boolean
  registerAttend: boolean
  attendKeyTile: number
  attendMinBlocks: number
  attendSplitQ: boolean
} = {
  fragmentUnroll: 2,
  dqBlocksUnroll: 0,
  batchedRowLoads: true,
  splitStage: true,
  registerBackward: true,
  registerAttend: true,
  attendKeyTile: 32,
  attendMinBlocks: 0,
  attendSplitQ: true,
}

/** Few long rows: more than cudaAttendSplit.tiles tiles per row, fewer than maxBlocks tiles in all. */
function fewLongRows(n: number, heads: number): boolean {
  return n > cudaAttendSplit.tiles && n * heads < cudaAttendSplit.maxBlocks
}

/** Whether the CUDA attention backward adds dQ atomically for n tiles per row and `heads` rows. */
export function attendBackwardAtomic(n: number, heads: number): boolean {
  const a = cudaAttendBackward.atomicDq
  return a === 'auto' ? !fewLongRows(n, heads) : a
}

/** Whether the CUDA attention backward reads delta from mosa_attend_delta (see cudaAttendBackward). */
export function attendBackwardDelta(n: number, heads: number): boolean {
  const p = cudaAttendBackward.precomputedDelta
  return p === 'auto' ? attendBackwardAtomic(n, heads) && n > cudaAttendSplit.tiles : p
}

/**
 * The split of the forward attention's keys for n tiles of 64 per row and `heads` rows, or null:
 * S parts of L query tiles of `queries` each (nq of them per row).
 */
function attendSplit(
  lang: Language,
  n: number,
  heads: number,
  nq: number,
  queries: number,
): { S: number; L: number } | null {
  if (lang.language !== 'cuda') return null
  if (!fewLongRows(n, heads)) return null
  const L = Math.max(1, Math.round((cudaAttendSplit.tiles * 64) / queries))
  return { S: cdiv(nq, L), L }
}

function runner(lang: Language, backend: Backend, D: number) {
  const tiles = lang.tiles(D)
  const run: Run = (
    entry: string,
    grid: [number, number, number],
    inputs: TensorInfo[],
    outputs: ProgramSpec['outputs'],
    scalars: ProgramSpec['scalars'],
    // Per entry point where the language says (the register attention kernels' 128 threads).
    block: ProgramSpec['block'] = lang.entryBlock?.(D, entry) ?? lang.block,
  ) =>
    backend.runProgram!({
      language: lang.language,
      name: `mosa-d${D}${lang.moduleTag?.() ?? ''}`,
      source: lang.source(D, entry),
      entryPoint: lang.entry(entry),
      grid,
      block,
      sharedBytes: lang.sharedBytes?.(D, entry),
      inputs,
      outputs,
      scalars,
    })
  return { tiles, run }
}

/** delta = dout . out per row of [B, Hs, K, D] (mosa_attend_delta), the attention backward's row term. */
function rowDelta(run: Run, out: TensorInfo, dout: TensorInfo): TensorInfo {
  const [B, Hs, K] = out.shape
  const rows = B * Hs * K
  return run(
    'mosa_attend_delta',
    [cdiv(rows, 8), 1, 1],
    [out, dout],
    [{ shape: [B, Hs, K], dtype: 'float32' }],
    [i32(rows)],
  )[0]
}

/** The CUDA-only kernels of the library-GEMM route (CUDA_LIBRARY_KERNELS). */
export function cudaLibraryKernelConfigs(lang: Language): KernelConfig[] {
  return [
    {
      kernelName: CUDA_LIBRARY_KERNELS.projectBackward,
      backendName: lang.backendName,
      kernelFunc: ({ inputs, attrs, backend }) => {
        const i = inputs as Inputs
        const { run } = runner(lang, backend, i.dq.shape[3])
        const { ropeBase } = attrs as { ropeBase: number }
        return projectBackwardLibrary(
          run,
          backend,
          { dq: i.dq, dk: i.dk, dv: i.dv, x: i.x, indices: i.indices, wq: i.wq, wk: i.wk, wv: i.wv },
          ropeBase,
        )
      },
    },
  ]
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
      if (lang.language === 'cuda' && cudaLibraryGemms(B * Hs * K))
        return projectLibrary(run, backend, { x, indices, wq, wk, wv }, attrs.ropeBase)
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
      const queries = lang.attendQueries?.(D) ?? tiles.BQ
      const nq = cdiv(K, queries)
      const split = attendSplit(lang, cdiv(K, tiles.BQ), B * Hs, nq, queries)
      if (split) {
        // Few long rows (the dense heads): key ranges of split.L tiles in parallel, then merged.
        const { S, L } = split
        const rows = B * Hs * K
        const parts = run(
          'mosa_attend_part',
          [nq * S, Hs, B],
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
        [nq, Hs, B],
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
      if (lang.language === 'cuda' && B === 1 && cudaLibraryGemms(B * Hs * K))
        return outBackwardWeightLibrary(run, backend, { o, scores, dy, indices })
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
      if (lang.language === 'cuda' && cudaKernelVariant.registerBackward) {
        // mosa_attend_backward_rb: 128 threads per 64-key tile; few long rows split each key
        // tile's queries into chunks of cudaAttendSplit.tiles query tiles (dK, dV then atomic).
        const n = cdiv(K, tiles.BB)
        const S = fewLongRows(n, B * Hs) ? cdiv(n, cudaAttendSplit.tiles) : 1
        // delta per block unless precomputedDelta is true (see cudaAttendBackward).
        const pre = cudaAttendBackward.precomputedDelta === true
        const delta = pre ? rowDelta(run, out, dout) : out
        const zeroed = { ...grad, zeroInit: true }
        const kv = S > 1 ? zeroed : grad
        const grads = run(
          'mosa_attend_backward_rb',
          [n * S, Hs, B],
          [q, k, v, delta, lse, dout],
          [zeroed, kv, kv],
          [i32(K), i32(Hs), f32(attrs.scale), i32(S), i32(cudaAttendSplit.tiles), i32(pre ? 1 : 0)],
          [128, 1, 1],
        )
        if (pre) backend.release(delta.dataId)
        return grads
      }
      if (lang.language === 'cuda') {
        const pre = attendBackwardDelta(cdiv(K, tiles.BB), B * Hs)
        // delta = dout . out per row, once (otherwise each block recomputes it from out).
        const delta = pre ? rowDelta(run, out, dout) : out
        const scalars = [i32(K), i32(Hs), f32(attrs.scale), i32(pre ? 1 : 0)]
        let grads: TensorInfo[]
        if (attendBackwardAtomic(cdiv(K, tiles.BB), B * Hs)) {
          // dK/dV blocks that also add their share of dQ (atomics): no recomputation of S and dP.
          const grid: [number, number, number] = [cdiv(K, tiles.BB), Hs, B]
          const zeroed = { ...grad, zeroInit: true }
          grads = run(
            'mosa_attend_backward_atomic',
            grid,
            [q, k, v, delta, lse, dout],
            [zeroed, grad, grad],
            scalars,
          )
        } else {
          // One launch: dK/dV blocks and dQ blocks side by side.
          const grid: [number, number, number] = [2 * cdiv(K, tiles.BB), Hs, B]
          grads = run('mosa_attend_backward', grid, [q, k, v, delta, lse, dout], [grad, grad, grad], scalars)
        }
        if (pre) backend.release(delta.dataId)
        return grads
      }
      const scalars = [i32(K), i32(Hs), f32(attrs.scale)]
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
        if (lang.language === 'cuda' && cudaLibraryGemms(B * Hs * K))
          return projectBackwardInputLibrary(run, backend, { dq, dk, dv, indices, wq, wk, wv }, T)
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
