import { type AttentionAttrs, BackendError, registerCoreKernel, type TensorInfo } from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { ctype } from '../host-convert.js'
import type { ArgKind } from '../launch-args.js'
import { castFromF32Ptr } from './elementwise.js'

/**
 * Tunables of kernels/flash_fwd.cu and flash_bwd.cu, as defines; ATTNKIT_FLASH_FWD and
 * ATTNKIT_FLASH_BWD ("NAME=value,...") override them (the H100 runner compares variants).
 */
const FWD_DEFAULT: Record<string, number> = {
  BC: 64,
  WM: 2,
  NW: 4,
  FAST_EXP: 1,
  KK_UNROLL: 1,
  LAZY_RESCALE: 1,
}
const BWD_DEFAULT: Record<string, number> = { NWB: 8, FAST_EXP: 1, RED_V2: 1 }
const BWD_BQ = 64

function parseTunables(env: string | undefined, defaults: Record<string, number>): Record<string, number> {
  const out = { ...defaults }
  for (const part of (env ?? '').split(',')) {
    const [k, v] = part.split('=')
    if (k && v !== undefined && /^[A-Z_0-9]+$/.test(k) && Number.isFinite(Number(v))) out[k] = Number(v)
  }
  return out
}

/** Variants the H100 runner times against the defaults (as ATTNKIT_FLASH_FWD / _BWD strings). */
export const FWD_ALTERNATIVES: Record<string, number>[] = [
  { BC: 64, WM: 2, NW: 4, FAST_EXP: 1, KK_UNROLL: 1 },
  { BC: 64, WM: 1, NW: 8, MIN_CTAS: 2, FAST_EXP: 1, KK_UNROLL: 1, LAZY_RESCALE: 1 },
]
export const BWD_ALTERNATIVES: Record<string, number>[] = [{ NWB: 4, FAST_EXP: 1, RED_V2: 1 }]

export function tunableString(t: Record<string, number>): string {
  return Object.entries(t)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
}

/**
 * The Hopper forward (kernels/flash_fwd_wgmma.cu, wgmma on sm_90a): 128 query rows per CTA (two
 * warpgroups), BC keys per tile, STAGES cp.async stages, OVERLAP (softmax of one tile under the
 * P V of the previous one; three stages). ATTNKIT_FLASH_FWD_SM90 overrides the
 * tunables; ATTNKIT_FLASH_WGMMA=0 falls back to the mma.sync kernel (flash_fwd.cu) on Hopper too.
 */
// H100 run 2 (bench/results/h100-2026-11-23-wgmma-run2): 64-key tiles with two CTAs per SM (four
// warpgroups, 128 registers) 352 TFLOP/s; 128-key tiles, one CTA 295; the pipelined OVERLAP loop 268.
const FWD_WGMMA_DEFAULT: Record<string, number> = {
  BC: 64,
  STAGES: 2,
  MIN_CTAS: 2,
  FAST_EXP: 1,
  LAZY_RESCALE: 1,
}
// (MIN_CTAS is spelt out: a variant inherits the defaults it does not name. H100 run 3 timed the
// 128-key ones with the default's MIN_CTAS=2, i.e. capped at 128 registers and spilling.)
export const FWD_WGMMA_ALTERNATIVES: Record<string, number>[] = [
  { BC: 128, STAGES: 2, MIN_CTAS: 1, FAST_EXP: 1, LAZY_RESCALE: 1 },
  { BC: 128, STAGES: 3, OVERLAP: 1, MIN_CTAS: 1, FAST_EXP: 1, LAZY_RESCALE: 1 },
  { BC: 64, STAGES: 2, MIN_CTAS: 1, FAST_EXP: 1, LAZY_RESCALE: 1 },
]

/** Whether the forward runs on the wgmma kernel: compiled for sm_90a, unless turned off. */
export function usesWgmmaForward(arch: string): boolean {
  return arch === 'sm_90a' && process.env.ATTNKIT_FLASH_WGMMA !== '0'
}

export function flashFwdWgmmaConfig(hd: number) {
  const d = parseTunables(process.env.ATTNKIT_FLASH_FWD_SM90, FWD_WGMMA_DEFAULT)
  if (d.OVERLAP) d.STAGES = 3 // the pipelined loop keeps three stages
  const rows = 128
  // + 1 KiB: the kernel rounds the buffer up to a 1024-byte boundary (128-byte swizzle atoms).
  return {
    defines: d,
    rows,
    threads: 256,
    keys: d.BC,
    sharedBytes: (rows * hd + 2 * d.STAGES * d.BC * hd) * 2 + 1024,
  }
}

/** Whether the backward runs on the wgmma kernel (flash_bwd_wgmma.cu: head dim 128, sm_90a). */
export function usesWgmmaBackward(arch: string, hd: number): boolean {
  return usesWgmmaForward(arch) && process.env.ATTNKIT_FLASH_BWD_WGMMA !== '0' && hd === 128
}

/** Tunables of flash_bwd_wgmma.cu (ATTNKIT_FLASH_BWD_SM90 overrides them). */
const BWD_WGMMA_DEFAULT: Record<string, number> = { FAST_EXP: 1 }
export const BWD_WGMMA_ALTERNATIVES: Record<string, number>[] = [{ FAST_EXP: 1, DQ_DEFER: 1 }]

export function flashBwdWgmmaConfig(hd: number) {
  const d = parseTunables(process.env.ATTNKIT_FLASH_BWD_SM90, BWD_WGMMA_DEFAULT)
  const keys = 128
  const dsBuffers = d.DQ_DEFER ? 2 : 1
  // K, V; two stages of Q and dO; dS^T; lse, delta, positions (two stages); 1 KiB for alignment.
  return {
    defines: d,
    keys,
    threads: 256,
    sharedBytes:
      (2 * keys * hd + 4 * BWD_BQ * hd + dsBuffers * keys * BWD_BQ) * 2 + 3 * 2 * BWD_BQ * 4 + 1024,
  }
}

export function flashFwdConfig(hd: number) {
  const d = parseTunables(process.env.ATTNKIT_FLASH_FWD, FWD_DEFAULT)
  const rows = 16 * d.WM * d.NW
  return { defines: d, rows, threads: 32 * d.NW, keys: d.BC, sharedBytes: (rows * hd + 4 * d.BC * hd) * 2 }
}

export function flashBwdConfig(hd: number) {
  const d = parseTunables(process.env.ATTNKIT_FLASH_BWD, BWD_DEFAULT)
  const keys = 16 * d.NWB
  return {
    defines: d,
    keys,
    threads: 32 * d.NWB,
    sharedBytes: (2 * keys * hd + 4 * BWD_BQ * hd + keys * BWD_BQ) * 2 + 3 * 2 * BWD_BQ * 4,
  }
}
const TILE_BOUNDS_BYTES = 16

export interface AttentionShapes {
  B: number
  Hq: number
  Hk: number
  Tq: number
  Tk: number
  D: number
  Dv: number
}

export function attentionShapes(q: TensorInfo, k: TensorInfo, v: TensorInfo): AttentionShapes {
  const [B, Hq, Tq, D] = q.shape
  const [, Hk, Tk] = k.shape
  return { B, Hq, Hk, Tq, Tk, D, Dv: v.shape[3] }
}

/** Whether the tensor-core flash kernels handle this case (else the SIMT kernels do). */
export function usesFlash(dtype: string, s: AttentionShapes, scale: number): boolean {
  return (
    (dtype === 'bfloat16' || dtype === 'float16') && s.D === s.Dv && (s.D === 64 || s.D === 128) && scale > 0
  )
}

export function flashDefines(dtype: string, hd: number): Record<string, string | number> {
  return dtype === 'float16' ? { DT: '__half', DT_IS_HALF: 1, HD: hd } : { DT: '__nv_bfloat16', HD: hd }
}

const FWD_ARGS: ArgKind[] = [
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'i32',
  'i32',
  'i32',
  'i32',
  'f32',
  'i32',
  'i32',
  'i32',
  'i32',
]
const BWD_ARGS: ArgKind[] = [
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'ptr',
  'i32',
  'i32',
  'i32',
  'i32',
  'f32',
  'f32',
  'i32',
  'i32',
  'i32',
  'i32',
]
const SIMT_ARGS_TAIL: ArgKind[] = [
  'i32',
  'i32',
  'i32',
  'i32',
  'i32',
  'i32',
  'i32',
  'f32',
  'i32',
  'i32',
  'i32',
  'i32',
]

function simtDefines(dtype: string, s: AttentionShapes): Record<string, string | number> {
  const need = Math.max(s.D, s.Dv)
  let maxd = 32
  while (maxd < need) maxd *= 2
  if (maxd > 1024) {
    throw new BackendError(`attention: head dims up to 1024 are supported on cuda, got D=${s.D}, Dv=${s.Dv}`)
  }
  return { DT: ctype(dtype as 'float32'), MAXD: maxd }
}

function keyBounds(
  backend: CudaBackend,
  kPos: TensorInfo,
  keep: TensorInfo | undefined,
  s: AttentionShapes,
  tile: number,
) {
  const n = s.B * s.Hk * Math.ceil(s.Tk / tile)
  const block = backend.scratch(n * TILE_BOUNDS_BYTES)
  const k = backend.kernel('attention.cu', { DT: 'float' }, 'attn_key_bounds_k', [
    'ptr',
    'ptr',
    'ptr',
    'i32',
    'i32',
    'i32',
    'i32',
  ])
  backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
    backend.ptr(kPos),
    keep ? backend.ptr(keep) : 0n,
    block.ptr,
    s.B * s.Hk,
    s.Tk,
    tile,
    keep ? 1 : 0,
  ])
  return block
}

function queryBounds(backend: CudaBackend, qPos: TensorInfo, s: AttentionShapes, tile: number) {
  const n = s.B * s.Hq * Math.ceil(s.Tq / tile)
  const block = backend.scratch(n * 8)
  const k = backend.kernel('attention.cu', { DT: 'float' }, 'attn_query_bounds_k', [
    'ptr',
    'ptr',
    'i32',
    'i32',
    'i32',
  ])
  backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [backend.ptr(qPos), block.ptr, s.B * s.Hq, s.Tq, tile])
  return block
}

export function attentionForward(
  backend: CudaBackend,
  inputs: {
    q: TensorInfo
    k: TensorInfo
    v: TensorInfo
    qPos: TensorInfo
    kPos: TensorInfo
    keep?: TensorInfo
  },
  attrs: AttentionAttrs,
): [TensorInfo, TensorInfo] {
  const { q, k, v, qPos, kPos, keep } = inputs
  const s = attentionShapes(q, k, v)
  const out = backend.alloc([s.B, s.Hq, s.Tq, s.Dv], q.dtype)
  const lse = backend.alloc([s.B, s.Hq, s.Tq], 'float32')
  if (s.B * s.Hq * s.Tq === 0) return [out, lse]
  if (s.Tk === 0) {
    backend.zero(out)
    backend.fill(lse, Number.NEGATIVE_INFINITY)
    return [out, lse]
  }
  const flags = [attrs.causal ? 1 : 0, attrs.window, attrs.sinks, keep ? 1 : 0]
  if (usesFlash(q.dtype, s, attrs.scale)) {
    const wgmma = usesWgmmaForward(backend.compiler.arch)
    const cfg = wgmma ? flashFwdWgmmaConfig(s.D) : flashFwdConfig(s.D)
    const kb = keyBounds(backend, kPos, keep, s, cfg.keys)
    const kern = backend.kernel(
      wgmma ? 'flash_fwd_wgmma.cu' : 'flash_fwd.cu',
      // ATTNKIT_SM90A: the wgmma code is compiled in (NVRTC targets sm_90a here).
      { ...flashDefines(q.dtype, s.D), ...cfg.defines, ...(wgmma ? { ATTNKIT_SM90A: 1 } : {}) },
      wgmma ? 'flash_fwd_wgmma_k' : 'flash_fwd_k',
      FWD_ARGS,
    )
    backend.launch(kern, [Math.ceil(s.Tq / cfg.rows), s.B * s.Hq, 1], [cfg.threads, 1, 1], cfg.sharedBytes, [
      backend.ptr(q),
      backend.ptr(k),
      backend.ptr(v),
      backend.ptr(qPos),
      backend.ptr(kPos),
      keep ? backend.ptr(keep) : 0n,
      kb.ptr,
      backend.ptr(out),
      backend.ptr(lse),
      s.Hq,
      s.Hk,
      s.Tq,
      s.Tk,
      attrs.scale * Math.LOG2E,
      ...flags,
    ])
    backend.free(kb)
    return [out, lse]
  }
  const rows = s.B * s.Hq * s.Tq
  const kern = backend.kernel('attention.cu', simtDefines(q.dtype, s), 'attn_fwd_simt_k', [
    'ptr',
    'ptr',
    'ptr',
    'ptr',
    'ptr',
    'ptr',
    'ptr',
    'ptr',
    ...SIMT_ARGS_TAIL,
  ])
  backend.launch(kern, [Math.ceil(rows / 4), 1, 1], [128, 1, 1], 0, [
    backend.ptr(q),
    backend.ptr(k),
    backend.ptr(v),
    backend.ptr(qPos),
    backend.ptr(kPos),
    keep ? backend.ptr(keep) : 0n,
    backend.ptr(out),
    backend.ptr(lse),
    s.B,
    s.Hq,
    s.Hk,
    s.Tq,
    s.Tk,
    s.D,
    s.Dv,
    attrs.scale,
    ...flags,
  ])
  return [out, lse]
}

export function attentionBackward(
  backend: CudaBackend,
  inputs: {
    q: TensorInfo
    k: TensorInfo
    v: TensorInfo
    out: TensorInfo
    lse: TensorInfo
    dout: TensorInfo
    qPos: TensorInfo
    kPos: TensorInfo
    keep?: TensorInfo
  },
  attrs: AttentionAttrs,
): [TensorInfo, TensorInfo, TensorInfo] {
  const { q, k, v, out, lse, dout, qPos, kPos, keep } = inputs
  const s = attentionShapes(q, k, v)
  const dtype = q.dtype
  const flags = [attrs.causal ? 1 : 0, attrs.window, attrs.sinks, keep ? 1 : 0]
  if (usesFlash(dtype, s, attrs.scale) && s.Tq > 0 && s.Tk > 0) {
    const rows = s.B * s.Hq * s.Tq
    const delta = backend.scratch(rows * 4)
    const dk = backend.alloc(k.shape, dtype)
    const dv = backend.alloc(v.shape, dtype)
    const dkern = backend.kernel('attention.cu', { DT: ctype(dtype) }, 'attn_delta_k', [
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'i32',
    ])
    backend.launch(dkern, [Math.ceil(rows / 8), 1, 1], [256, 1, 1], 0, [
      backend.ptr(out),
      backend.ptr(dout),
      delta.ptr,
      rows,
      s.Dv,
    ])
    const wgmma = usesWgmmaBackward(backend.compiler.arch, s.D)
    const cfg = wgmma ? flashBwdWgmmaConfig(s.D) : flashBwdConfig(s.D)
    const kb = keyBounds(backend, kPos, keep, s, cfg.keys)
    const qb = queryBounds(backend, qPos, s, BWD_BQ)
    const dqAcc = backend.scratch(rows * s.D * 4)
    backend.zeroBlock(dqAcc, rows * s.D * 4)
    const kern = backend.kernel(
      wgmma ? 'flash_bwd_wgmma.cu' : 'flash_bwd.cu',
      { ...flashDefines(dtype, s.D), ...cfg.defines, ...(wgmma ? { ATTNKIT_SM90A: 1 } : {}) },
      wgmma ? 'flash_bwd_wgmma_k' : 'flash_bwd_k',
      BWD_ARGS,
    )
    backend.launch(kern, [Math.ceil(s.Tk / cfg.keys), s.B * s.Hk, 1], [cfg.threads, 1, 1], cfg.sharedBytes, [
      backend.ptr(q),
      backend.ptr(k),
      backend.ptr(v),
      backend.ptr(dout),
      backend.ptr(lse),
      delta.ptr,
      backend.ptr(qPos),
      backend.ptr(kPos),
      keep ? backend.ptr(keep) : 0n,
      qb.ptr,
      kb.ptr,
      dqAcc.ptr,
      backend.ptr(dk),
      backend.ptr(dv),
      s.Hq,
      s.Hk,
      s.Tq,
      s.Tk,
      attrs.scale,
      attrs.scale * Math.LOG2E,
      ...flags,
    ])
    const dq = castFromF32Ptr(backend, dqAcc.ptr, q.shape, dtype)
    for (const b of [delta, kb, qb, dqAcc]) backend.free(b)
    return [dq, dk, dv]
  }
  const dq = backend.alloc(q.shape, dtype)
  const nk = s.B * s.Hk * s.Tk
  const dkAcc = backend.alloc(k.shape, 'float32')
  const dvAcc = backend.alloc(v.shape, 'float32')
  backend.zero(dkAcc)
  backend.zero(dvAcc)
  const rows = s.B * s.Hq * s.Tq
  if (rows > 0 && nk > 0) {
    const kern = backend.kernel('attention.cu', simtDefines(dtype, s), 'attn_bwd_simt_k', [
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      ...SIMT_ARGS_TAIL,
    ])
    backend.launch(kern, [Math.ceil(rows / 4), 1, 1], [128, 1, 1], 0, [
      backend.ptr(q),
      backend.ptr(k),
      backend.ptr(v),
      backend.ptr(out),
      backend.ptr(lse),
      backend.ptr(dout),
      backend.ptr(qPos),
      backend.ptr(kPos),
      keep ? backend.ptr(keep) : 0n,
      backend.ptr(dq),
      backend.ptr(dkAcc),
      backend.ptr(dvAcc),
      s.B,
      s.Hq,
      s.Hk,
      s.Tq,
      s.Tk,
      s.D,
      s.Dv,
      attrs.scale,
      ...flags,
    ])
  } else {
    backend.zero(dq)
  }
  if (dtype === 'float32') return [dq, dkAcc, dvAcc]
  const dk = castFromF32Ptr(backend, backend.ptr(dkAcc), k.shape, dtype)
  const dv = castFromF32Ptr(backend, backend.ptr(dvAcc), v.shape, dtype)
  backend.release(dkAcc.dataId)
  backend.release(dvAcc.dataId)
  return [dq, dk, dv]
}

export function registerAttentionKernels(): void {
  registerCoreKernel<'attention', CudaBackend>('attention', 'cuda', ({ inputs, attrs, backend }) =>
    attentionForward(backend, inputs, attrs),
  )
  registerCoreKernel<'attentionBackward', CudaBackend>(
    'attentionBackward',
    'cuda',
    ({ inputs, attrs, backend }) => attentionBackward(backend, inputs, attrs),
  )
}
