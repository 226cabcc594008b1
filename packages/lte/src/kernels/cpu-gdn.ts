import { type CpuBackend, registerKernel, type TensorInfo } from '@attnkit/core'
import {
  chunkedBackwardHead,
  chunkedForwardHead,
  type HeadGrads,
  type HeadView,
} from '../gdn/chunked-math.js'
import { type GdnKernelAttrs, KERNELS } from './names.js'

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

/**
 * The chunkwise algorithm on the CPU in float64: the reference the WGSL and CUDA kernels are
 * checked against, and an explicit chunkwise backward (core's CPU backward is BPTT).
 */
export function registerCpuGdnKernels(): void {
  registerKernel<CpuBackend, GdnKernelAttrs, GdnInputs>({
    kernelName: KERNELS.gdnForward,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { q, v, state } = inputs
      const [B, H, T, Dk] = q.shape
      const Dv = v.shape[3]
      const view = headViews(backend, inputs, T, Dk, Dv)
      const vs = state ? backend.values(state) : undefined
      const out = new Float64Array(B * H * T * Dv)
      const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
      const finalState = backend.alloc(stateDType, B * H * Dk * Dv)
      for (let bh = 0; bh < B * H; bh++) {
        const S = new Float64Array(Dk * Dv)
        if (vs) for (let x = 0; x < Dk * Dv; x++) S[x] = vs[bh * Dk * Dv + x]
        chunkedForwardHead(view(bh), S, attrs.scale, attrs.chunkSize, out, bh * T * Dv)
        finalState.set(S, bh * Dk * Dv)
      }
      const o = backend.alloc(v.dtype, out.length)
      o.set(out)
      return [
        backend.output(o, [B, H, T, Dv], v.dtype),
        backend.output(finalState, [B, H, Dk, Dv], stateDType),
      ]
    },
  })

  registerKernel<CpuBackend, GdnKernelAttrs, GdnInputs>({
    kernelName: KERNELS.gdnBackward,
    backendName: 'cpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { q, k, v, g, beta, state, dout, dFinalState } = inputs
      const [B, H, T, Dk] = q.shape
      const Dv = v.shape[3]
      const view = headViews(backend, inputs, T, Dk, Dv)
      const vs = state ? backend.values(state) : undefined
      const vdS = dFinalState ? backend.values(dFinalState) : undefined
      const vdo = backend.values(dout!)
      const grads: HeadGrads = {
        dq: new Float64Array(B * H * T * Dk),
        dk: new Float64Array(B * H * T * Dk),
        dv: new Float64Array(B * H * T * Dv),
        dg: new Float64Array(B * H * T),
        dbeta: new Float64Array(B * H * T),
      }
      const dstate = new Float64Array(B * H * Dk * Dv)
      for (let bh = 0; bh < B * H; bh++) {
        const S0 = new Float64Array(Dk * Dv)
        if (vs) for (let x = 0; x < Dk * Dv; x++) S0[x] = vs[bh * Dk * Dv + x]
        const dS = new Float64Array(Dk * Dv)
        if (vdS) for (let x = 0; x < Dk * Dv; x++) dS[x] = vdS[bh * Dk * Dv + x]
        chunkedBackwardHead(view(bh), S0, dS, attrs.scale, attrs.chunkSize, vdo, bh * T * Dv, grads)
        dstate.set(dS, bh * Dk * Dv)
      }
      const wrap = (acc: Float64Array, info: { shape: readonly number[]; dtype: TensorInfo['dtype'] }) => {
        const o = backend.alloc(info.dtype, acc.length)
        o.set(acc)
        return backend.output(o, info.shape, info.dtype)
      }
      const stateDType = q.dtype === 'float64' ? 'float64' : 'float32'
      return [
        wrap(grads.dq, q),
        wrap(grads.dk, k),
        wrap(grads.dv, v),
        wrap(grads.dg, g),
        wrap(grads.dbeta, beta),
        wrap(dstate, { shape: [B, H, Dk, Dv], dtype: stateDType }),
      ]
    },
  })
}

function headViews(
  backend: CpuBackend,
  inputs: GdnInputs,
  T: number,
  Dk: number,
  Dv: number,
): (bh: number) => HeadView {
  const q = backend.values(inputs.q)
  const k = backend.values(inputs.k)
  const v = backend.values(inputs.v)
  const g = backend.values(inputs.g)
  const beta = backend.values(inputs.beta)
  return (bh) => ({ q, k, v, g, beta, qk: bh * T * Dk, vo: bh * T * Dv, go: bh * T, T, Dk, Dv })
}
