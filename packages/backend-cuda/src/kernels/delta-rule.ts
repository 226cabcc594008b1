import { BackendError, registerCoreKernel, type TensorInfo } from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { ctype } from '../host-convert.js'
import { castTo } from './elementwise.js'

function blockFor(Dv: number): number {
  if (Dv > 1024) throw new BackendError(`gatedDeltaRule: Dv up to 1024 is supported on cuda, got ${Dv}`)
  return Math.max(32, Math.ceil(Dv / 32) * 32)
}

/** A float32 copy of an optional state input, or zeros. */
function stateF32(backend: CudaBackend, state: TensorInfo | undefined, shape: number[]): TensorInfo {
  if (state) return castTo(backend, state, 'float32')
  const s = backend.alloc(shape, 'float32')
  backend.zero(s)
  return s
}

export function registerDeltaRuleKernels(): void {
  registerCoreKernel<'gatedDeltaRule', CudaBackend>(
    'gatedDeltaRule',
    'cuda',
    ({ inputs, attrs, backend }) => {
      const { q, k, v, g, beta, state } = inputs
      const [B, H, T, Dk] = q.shape
      const Dv = v.shape[3]
      const out = backend.alloc([B, H, T, Dv], v.dtype)
      const S = stateF32(backend, state, [B, H, Dk, Dv])
      if (B * H === 0 || T === 0) return [out, S]
      const kern = backend.kernel('delta_rule.cu', { DT: ctype(q.dtype) }, 'delta_fwd_k', [
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
        'f32',
      ])
      backend.launch(kern, [B * H, 1, 1], [blockFor(Dv), 1, 1], 2 * Dk * 4, [
        backend.ptr(q),
        backend.ptr(k),
        backend.ptr(v),
        backend.ptr(g),
        backend.ptr(beta),
        backend.ptr(S),
        backend.ptr(out),
        T,
        Dk,
        Dv,
        attrs.scale,
      ])
      return [out, S]
    },
  )

  registerCoreKernel<'gatedDeltaRuleBackward', CudaBackend>(
    'gatedDeltaRuleBackward',
    'cuda',
    ({ inputs, attrs, backend }) => {
      const { q, k, v, g, beta, state, dout, dFinalState } = inputs
      const [B, H, T, Dk] = q.shape
      const Dv = v.shape[3]
      const dtype = q.dtype
      const dq = backend.alloc(q.shape, dtype)
      const dk = backend.alloc(k.shape, dtype)
      const dv = backend.alloc(v.shape, dtype)
      const dg = backend.alloc(g.shape, dtype)
      const db = backend.alloc(beta.shape, dtype)
      const dS = stateF32(backend, dFinalState, [B, H, Dk, Dv])
      if (B * H === 0 || T === 0) {
        for (const t of [dq, dk, dv, dg, db]) backend.zero(t)
        return [dq, dk, dv, dg, db, dS]
      }
      const C = Math.max(1, Math.min(attrs.chunkSize || 64, T))
      const nChunks = Math.ceil(T / C)
      const scratch = backend.scratch(B * H * (nChunks + C + 1) * Dk * Dv * 4)
      const s0 = state ? castTo(backend, state, 'float32') : undefined
      const kern = backend.kernel('delta_rule.cu', { DT: ctype(dtype) }, 'delta_bwd_k', [
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
        'i32',
      ])
      backend.launch(kern, [B * H, 1, 1], [blockFor(Dv), 1, 1], (4 * Dk + 2) * 4, [
        backend.ptr(q),
        backend.ptr(k),
        backend.ptr(v),
        backend.ptr(g),
        backend.ptr(beta),
        s0 ? backend.ptr(s0) : 0n,
        backend.ptr(dout),
        backend.ptr(dS),
        scratch.ptr,
        backend.ptr(dq),
        backend.ptr(dk),
        backend.ptr(dv),
        backend.ptr(dg),
        backend.ptr(db),
        T,
        Dk,
        Dv,
        C,
        attrs.scale,
        s0 ? 1 : 0,
      ])
      backend.free(scratch)
      if (s0) backend.release(s0.dataId)
      return [dq, dk, dv, dg, db, dS]
    },
  )
}
