import { byteSize, type DType } from '@attnkit/core'
import type { RecordLayout } from '../config.js'
import { fusedLanguage } from './languages.js'

/** Everything the decode kernels are specialised on or launched with. */
export interface DecodeShape {
  batch: number
  heads: number
  headDim: number
  kRank: number
  vRank: number
  /** Record layout; a null A means a fixed factor (constant A passed as its own input). */
  layout: RecordLayout
  storeCap: number
  tailCap: number
  storeLen: number
  tailLen: number
  dtype: DType
}

/**
 * Split-K over the context (flash-decoding): each workgroup / block takes `tokensPerSplit`
 * consecutive tokens of one batch row and writes a partial (max, sum, unnormalised output);
 * a second kernel merges them. More splits fill the GPU at small batch; fewer keep the
 * partials' traffic small.
 */
export interface DecodeTuning {
  /** Aim for about this many workgroups / blocks in total (when blocksPerSm does not apply). */
  targetBlocks: number
  /**
   * Where set and the backend reports its multiprocessor count, aim for at most
   * multiprocessors x blocksPerSm blocks instead of targetBlocks: one wave of resident blocks,
   * so no partly filled last wave idles most of the GPU while a few blocks finish. Keep it at or
   * below the blocks one SM holds at once. Setting targetBlocks alone (setDecodeTuning) clears it.
   */
  blocksPerSm: number | null
  /** Never give a split fewer tokens than this. */
  minTokensPerSplit: number
  /**
   * CUDA, float16 / bfloat16: use the tensor-core (mma.sync) decode kernel where the shape fits
   * (h % 16 == 0, d_h % 16 == 0, R_K == R_V in {2, 4}, contextual K and V), else the FMA kernel.
   */
  tensorCores: boolean
  /**
   * CUDA: launch the tensor-core partial kernel and the split merge as programmatic dependents
   * (Hopper's programmatic dependent launch, where the backend can: compute capability 9.0+),
   * so each launch overlaps the end of the kernel before it; both kernels wait
   * (griddepcontrol.wait) before reading anything. Applied only where the merge's grid fits one
   * block per multiprocessor (programmaticLaunchFits: batch 1 to 2 at h = 16, d_h = 64 on an
   * H100); with larger grids the early launches cost time (H100, batch 16: 0.147 against 0.141 ms
   * at 32K, 0.503 against 0.457 ms at 128K). Off: ordinary launches everywhere.
   */
  programmaticLaunch: boolean
}

const TUNING: Record<string, DecodeTuning> = {
  // Four blocks per SM: at h = 16, d_h = 64 on sm_90a (ptxas -v) the tensor-core kernel takes
  // 95 registers x 128 threads and 42 KiB of shared memory (5 blocks fit an SM), the FMA kernel
  // 128 registers and 44.6 KiB (4 fit); four resident blocks keep about 4 record tiles (86 KiB)
  // in flight per SM, where the split count allows.
  cuda: {
    targetBlocks: 1024,
    blocksPerSm: 4,
    minTokensPerSplit: 128,
    tensorCores: true,
    programmaticLaunch: true,
  },
  webgpu: {
    targetBlocks: 64,
    blocksPerSm: null,
    minTokensPerSplit: 64,
    tensorCores: false,
    programmaticLaunch: false,
  },
}

export function decodeTuning(backendName: string): DecodeTuning {
  return TUNING[backendName] ?? (fusedLanguage(backendName) === 'cuda' ? TUNING.cuda : TUNING.webgpu)
}

/** Overrides the split heuristics for one backend (the bench sweeps them). */
export function setDecodeTuning(backendName: string, tuning: Partial<DecodeTuning>): DecodeTuning {
  // An explicit block target without a per-SM one means that target, not the SM-derived one.
  const perSm = tuning.targetBlocks !== undefined && !('blocksPerSm' in tuning) ? { blocksPerSm: null } : {}
  const next = { ...decodeTuning(backendName), ...perSm, ...tuning }
  for (const k of ['targetBlocks', 'minTokensPerSplit'] as const)
    if (!Number.isInteger(next[k]) || next[k] <= 0)
      throw new RangeError(`setDecodeTuning: '${k}' expected a positive integer, got ${next[k]}`)
  if (next.blocksPerSm !== null && (!Number.isInteger(next.blocksPerSm) || next.blocksPerSm <= 0))
    throw new RangeError(
      `setDecodeTuning: 'blocksPerSm' expected a positive integer or null, got ${next.blocksPerSm}`,
    )
  for (const k of ['tensorCores', 'programmaticLaunch'] as const)
    if (typeof next[k] !== 'boolean')
      throw new RangeError(`setDecodeTuning: '${k}' expected a boolean, got ${String(next[k])}`)
  TUNING[backendName] = next
  return next
}

/**
 * How to split `total` tokens of each of `batch` rows: as many splits as the block target allows
 * (multiprocessors x blocksPerSm where both are known, else targetBlocks), never fewer than
 * minTokensPerSplit tokens each, every split a whole number of `tile`-token tiles. The splits
 * only shrink from the wanted count when rounded to tiles, so an SM-derived target is never
 * exceeded and the blocks run as one wave (or, past one block per batch row, whole rows per wave).
 */
export function planSplits(
  total: number,
  batch: number,
  tile: number,
  tuning: DecodeTuning,
  multiprocessors?: number,
): { splits: number; tokensPerSplit: number } {
  if (total === 0) return { splits: 1, tokensPerSplit: tile }
  const wanted =
    tuning.blocksPerSm !== null && multiprocessors
      ? Math.max(1, Math.floor((multiprocessors * tuning.blocksPerSm) / batch))
      : Math.max(1, Math.ceil(tuning.targetBlocks / batch))
  const most = Math.max(1, Math.ceil(total / tuning.minTokensPerSplit))
  let splits = Math.min(wanted, most)
  const tokensPerSplit = Math.ceil(Math.ceil(total / splits) / tile) * tile
  splits = Math.ceil(total / tokensPerSplit)
  return { splits, tokensPerSplit }
}

/**
 * Whether the decode's launches go programmatic (DecodeTuning.programmaticLaunch): the split
 * merge's grid, batch x h x (d_h / CUDA_COMBINE.chunk) blocks, is at most the multiprocessor
 * count, so the blocks launched early (the merge's during the partial launch, the next partial
 * launch's during the merge) find room beside the running ones. Unknown SM count: no.
 */
export function programmaticLaunchFits(
  batch: number,
  heads: number,
  headDim: number,
  multiprocessors?: number,
): boolean {
  if (!multiprocessors) return false
  return batch * heads * Math.ceil(headDim / CUDA_COMBINE.chunk) <= multiprocessors
}

/** WGSL: workgroup memory holds a tile of records plus per-head scores (16 KiB, WebGPU's default limit). */
export interface WgslDecodeLayout {
  tile: number
  workgroupSize: number
}

export const WGSL_WORKGROUP_BYTES = 16384

export function wgslDecodeLayout(s: DecodeShape): WgslDecodeLayout | string {
  const floats = WGSL_WORKGROUP_BYTES / 4 - 3 * s.heads
  const tile = Math.min(32, Math.floor(floats / (s.layout.size + s.heads)))
  if (tile < 1)
    return `a record of ${s.layout.size} values plus ${s.heads} heads does not fit the ${WGSL_WORKGROUP_BYTES}-byte workgroup memory`
  return { tile, workgroupSize: 64 }
}

/**
 * CUDA: a block of heads x 8 threads; thread (head i, lane s) keeps q_i in registers, scores
 * tokens s, s + 8, ... of each tile and owns d_h / 8 output features of head i. The tile sits
 * in shared memory as float32 with B_K and B_V 16-byte aligned and a row stride of 4 mod 8
 * floats, so the float4 reads of eight different tokens hit different banks.
 */
export interface CudaDecodeLayout {
  tile: number
  threads: number
  /** Shared-memory row stride (floats). */
  recPad: number
  /** Shared-memory offsets (floats) of A_K, B_K, A_V, B_V within a row (-1: not stored). */
  so: { aK: number; bK: number; aV: number; bV: number }
  /** Row stride of the softmax-weight array (floats). */
  wsStride: number
  /** Elements per 16-byte global load, or 1 when the record does not split into whole vectors. */
  vec: number
}

export const CUDA_SUB = 8

/**
 * The CUDA split merge: one block per (head, chunk of 16 features, batch row), 256 threads in
 * 64 groups of 4 lanes (16 bytes each), the splits spread over the groups. Both decode kernels
 * need d_h % 16 == 0, so every head divides into whole chunks.
 */
export const CUDA_COMBINE = { chunk: 16, threads: 256 } as const
export const CUDA_STATIC_SMEM = 48 * 1024

export function cudaDecodeLayout(s: DecodeShape): CudaDecodeLayout | string {
  const { heads: H, headDim: D, kRank: RK, vRank: RV, layout } = s
  if (D % (4 * CUDA_SUB) !== 0) return `headDim ${D} is not a multiple of ${4 * CUDA_SUB}`
  if (H * CUDA_SUB > 1024) return `heads ${H} x ${CUDA_SUB} threads exceeds a block of 1024`
  if (H % 4 !== 0)
    return `heads ${H} is not a multiple of 4 (blocks are whole warps of 4 heads x ${CUDA_SUB} lanes)`
  const align4 = (x: number) => Math.ceil(x / 4) * 4
  let off = 0
  const aK = layout.aK ? off : -1
  if (layout.aK) off += layout.aK.length
  const bK = align4(off)
  off = bK + layout.bK.length
  const aV = layout.aV ? off : -1
  if (layout.aV) off += layout.aV.length
  const bV = align4(off)
  off = bV + layout.bV.length
  let recPad = align4(off)
  if (recPad % 8 === 0) recPad += 4
  const fixedFloats = (layout.aK ? 0 : H * RK) + (layout.aV ? 0 : H * RV)
  for (const tile of [32, 24, 16, 8]) {
    const wsStride = tile * RV + 1
    const bytes = 4 * (tile * recPad + H * wsStride + fixedFloats)
    if (bytes <= CUDA_STATIC_SMEM - 1024) {
      const es = byteSize(s.dtype)
      const v = 16 / es
      const starts = [layout.aK?.offset, layout.bK.offset, layout.aV?.offset, layout.bV.offset, layout.size]
      const whole = starts.every((x) => x === undefined || x % v === 0)
      return { tile, threads: H * CUDA_SUB, recPad, so: { aK, bK, aV, bV }, wsStride, vec: whole ? v : 1 }
    }
  }
  return `a record of ${layout.size} values does not fit 8 tokens in ${CUDA_STATIC_SMEM} bytes of shared memory`
}

/** The tensor-core kernel's staging: TILE = 64 / R tokens per stage, shared token stride pB bytes. */
export interface CudaMmaLayout {
  tile: number
  pB: number
}

export function cudaMmaLayout(s: DecodeShape): CudaMmaLayout | string {
  const { heads: H, headDim: D, kRank, vRank, layout } = s
  if (s.dtype !== 'float16' && s.dtype !== 'bfloat16')
    return `tensor cores take float16 / bfloat16, not ${s.dtype}`
  if (H % 16 !== 0) return `heads ${H} is not a multiple of 16`
  if (D % 16 !== 0) return `headDim ${D} is not a multiple of 16`
  if (kRank !== vRank || (kRank !== 2 && kRank !== 4))
    return `R_K = ${kRank}, R_V = ${vRank}: needs R_K == R_V in {2, 4}`
  if (!layout.aK || !layout.aV) return 'fixed (non-contextual) K / V factors'
  const offsets = [layout.aK.offset, layout.bK.offset, layout.aV.offset, layout.bV.offset, layout.size]
  if (offsets.some((o) => o % 8 !== 0)) return 'record segments are not 16-byte aligned'
  const R = kRank
  const tile = 64 / R
  let pB = Math.ceil((layout.size * 2) / 16) * 16
  while (pB % 128 !== (16 * R) % 128) pB += 16
  const bytes = 2 * tile * pB
  if (bytes > CUDA_STATIC_SMEM - 1024)
    return `two stages of ${tile} records (${bytes} bytes) exceed shared memory`
  // The closing warp merge: four per-warp output slices of row stride D + 8 floats, max and sum.
  if (4 * (4 * H * (D + 8) + 8 * H) > bytes) return 'the warp merge does not fit in the stage buffers'
  return { tile, pB }
}
