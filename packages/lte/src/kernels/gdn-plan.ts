import { type Backend, BackendError, type DType, type ProgramSpec, type TensorInfo } from '@attnkit/core'
import { type GdnDims, type GdnKernelName, gdnCudaSource } from './cuda/gdn-chunked.js'
import type { GdnKernelAttrs } from './names.js'
import { gdnWgslSource } from './wgsl/gdn-chunked.js'

export type ProgramLanguage = 'cuda' | 'wgsl'

/** Threads per block / workgroup of every GDN kernel; rows use 4 lanes, so C <= 64. */
export const GDN_THREADS = 256
export const GDN_MAX_CHUNK = GDN_THREADS / 4
/** State columns per block of the sequential scans. */
const BV = 16

type Scalar = { type: 'u32' | 'f32'; value: number }

interface Launcher {
  run(
    kernel: GdnKernelName,
    inputs: TensorInfo[],
    outputs: { shape: number[]; dtype?: DType }[],
    scalars: Scalar[],
    gridX: number,
  ): TensorInfo[]
  release(...infos: TensorInfo[]): void
}

function launcher(backend: Backend, lang: ProgramLanguage, dims: GdnDims, BH: number): Launcher {
  if (typeof backend.runProgram !== 'function')
    throw new BackendError(`lte: backend '${backend.name}' cannot run programs (no runProgram)`)
  return {
    run(kernel, inputs, outputs, scalars, gridX) {
      const spec: ProgramSpec = {
        language: lang,
        name: `lte.${kernel}.C${dims.C}.K${dims.DK}.V${dims.DV}`,
        source: lang === 'cuda' ? gdnCudaSource(dims, kernel) : gdnWgslSource(dims, kernel),
        entryPoint: kernel,
        grid: [gridX, BH, 1],
        block: [GDN_THREADS, 1, 1],
        inputs,
        outputs: outputs.map((o) => ({ shape: o.shape, dtype: o.dtype ?? 'float32' })),
        scalars,
      }
      return backend.runProgram!(spec)
    },
    release(...infos) {
      for (const t of infos) backend.release(t.dataId)
    },
  }
}

interface GdnInputs {
  q: TensorInfo
  k: TensorInfo
  v: TensorInfo
  g: TensorInfo
  beta: TensorInfo
  state?: TensorInfo
  dout?: TensorInfo
  dFinalState?: TensorInfo
}

function shapes(inputs: GdnInputs, attrs: GdnKernelAttrs) {
  const [B, H, T, Dk] = inputs.q.shape
  const Dv = inputs.v.shape[3]
  const C = attrs.chunkSize
  if (C > GDN_MAX_CHUNK)
    throw new BackendError(`lte: the fused GDN kernels take chunkSize <= ${GDN_MAX_CHUNK}, got ${C}`)
  for (const [name, t] of Object.entries(inputs))
    if (t && t.dtype !== 'float32')
      throw new BackendError(`lte: the fused GDN kernels take float32; '${name}' is ${t.dtype}`)
  const BH = B * H
  const Nc = Math.ceil(T / C)
  return { B, H, T, Dk, Dv, C, BH, Nc, dims: { C, DK: Dk, DV: Dv, BV } }
}

/** Forward: prep (UT transform per chunk) -> scan over chunks -> outputs. */
export function gdnForwardPrograms(
  backend: Backend,
  lang: ProgramLanguage,
  inputs: GdnInputs,
  attrs: GdnKernelAttrs,
): TensorInfo[] {
  const { B, H, T, Dk, Dv, C, BH, Nc, dims } = shapes(inputs, attrs)
  const L = launcher(backend, lang, dims, BH)
  const { q, k, v, g, beta, state } = inputs
  const [gam, Tm, U, Wk] = L.run('gdn_prep', [k, v, g, beta], prepOutputs(BH, T, Nc, C, Dk, Dv), [u32(T)], Nc)
  const [Hs, W, Sout] = L.run(
    'gdn_scan',
    [k, gam, U, Wk, state ?? q],
    [{ shape: [BH * Nc * Dk * Dv] }, { shape: [BH * T * Dv] }, { shape: [B, H, Dk, Dv] }],
    [u32(T), u32(Nc), u32(state ? 1 : 0)],
    Math.ceil(Dv / BV),
  )
  const [O] = L.run(
    'gdn_output',
    [q, k, gam, Hs, W],
    [{ shape: [B, H, T, Dv] }],
    [u32(T), f32(attrs.scale)],
    Nc,
  )
  L.release(gam, Tm, U, Wk, Hs, W)
  return [O, Sout]
}

/**
 * Backward: recomputes the forward's chunk quantities and entry states, then runs the reverse
 * state-gradient scan and the chunk-parallel gradient kernels.
 */
export function gdnBackwardPrograms(
  backend: Backend,
  lang: ProgramLanguage,
  inputs: GdnInputs,
  attrs: GdnKernelAttrs,
): TensorInfo[] {
  const { B, H, T, Dk, Dv, C, BH, Nc, dims } = shapes(inputs, attrs)
  const L = launcher(backend, lang, dims, BH)
  const { q, k, v, g, beta, state, dout, dFinalState } = inputs
  if (!dout) throw new BackendError('lte.gdnChunkedBackward: input dout is required')
  const flat = (n: number) => ({ shape: [n] })
  const [gam, Tm, U, Wk] = L.run('gdn_prep', [k, v, g, beta], prepOutputs(BH, T, Nc, C, Dk, Dv), [u32(T)], Nc)
  const [Hs, W, Sout] = L.run(
    'gdn_scan',
    [k, gam, U, Wk, state ?? q],
    [flat(BH * Nc * Dk * Dv), flat(BH * T * Dv), flat(BH * Dk * Dv)],
    [u32(T), u32(Nc), u32(state ? 1 : 0)],
    Math.ceil(Dv / BV),
  )
  L.release(U, Sout)
  const scale = f32(attrs.scale)
  const [dWl] = L.run('gdn_bwd_dwl', [q, k, gam, dout], [flat(BH * T * Dv)], [u32(T), scale], Nc)
  const [DH, dW, dS0] = L.run(
    'gdn_bwd_scan',
    [q, k, gam, Wk, dout, dWl, dFinalState ?? q],
    [flat(BH * Nc * Dk * Dv), flat(BH * T * Dv), { shape: [B, H, Dk, Dv] }],
    [u32(T), u32(Nc), u32(dFinalState ? 1 : 0), scale],
    Math.ceil(Dv / BV),
  )
  L.release(dWl)
  const [dQ, dK1, dgam1] = L.run(
    'gdn_bwd_qk',
    [q, k, gam, Hs, DH, W, dout],
    [{ shape: [...q.shape] }, flat(BH * T * Dk), flat(BH * T)],
    [u32(T), scale],
    Nc,
  )
  L.release(DH, W)
  const [dWk] = L.run('gdn_bwd_dwk', [Hs, dW], [flat(BH * T * Dk)], [u32(T)], Nc)
  L.release(Hs)
  const [dV, dKy, dTm, dbeta1, dgam2] = L.run(
    'gdn_bwd_tm',
    [k, v, beta, gam, Tm, dW, dWk],
    [{ shape: [...v.shape] }, flat(BH * T * Dk), flat(BH * Nc * C * C), flat(BH * T), flat(BH * T)],
    [u32(T)],
    Nc,
  )
  L.release(dW, dWk, Wk)
  const [A] = L.run('gdn_bwd_a', [Tm, dTm], [flat(BH * Nc * C * C)], [u32(T)], Nc)
  L.release(dTm)
  const [dKL, dbetaL, dgamL] = L.run(
    'gdn_bwd_dl',
    [k, beta, gam, Tm, A],
    [flat(BH * T * Dk), flat(BH * T), flat(BH * T)],
    [u32(T)],
    Nc,
  )
  L.release(Tm, A, gam)
  const [dK, dbeta, dg] = L.run(
    'gdn_bwd_final',
    [dK1, dKy, dKL, dbeta1, dbetaL, dgam1, dgam2, dgamL],
    [{ shape: [...k.shape] }, { shape: [...beta.shape] }, { shape: [...g.shape] }],
    [u32(T)],
    Nc,
  )
  L.release(dK1, dKy, dKL, dbeta1, dbetaL, dgam1, dgam2, dgamL)
  return [dQ, dK, dV, dg, dbeta, dS0]
}

function prepOutputs(BH: number, T: number, Nc: number, C: number, Dk: number, Dv: number) {
  return [
    { shape: [BH * T] },
    { shape: [BH * Nc * C * C] },
    { shape: [BH * T * Dv] },
    { shape: [BH * T * Dk] },
  ]
}

const u32 = (value: number): Scalar => ({ type: 'u32', value })
const f32 = (value: number): Scalar => ({ type: 'f32', value })
