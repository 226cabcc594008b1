import { registerCoreKernel } from '../registry.js'
import type { CpuBackend } from './cpu-backend.js'

export function registerConvRopeKernels(): void {
  registerCoreKernel<'conv1d', CpuBackend>('conv1d', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, weight, bias } = inputs
    const [B, T, cin] = x.shape
    const [cout, cinPG, K] = weight.shape
    const { dilation, padLeft, padRight, groups } = attrs
    const Tout = T + padLeft + padRight - dilation * (K - 1)
    const coutPG = cout / groups
    const vx = backend.values(x)
    const vw = backend.values(weight)
    const vb = bias ? backend.values(bias) : undefined
    const out = backend.alloc(x.dtype, B * Tout * cout)
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < Tout; t++) {
        for (let co = 0; co < cout; co++) {
          const g0 = Math.floor(co / coutPG) * cinPG
          let s = vb ? vb[co] : 0
          for (let k = 0; k < K; k++) {
            const ti = t - padLeft + k * dilation
            if (ti < 0 || ti >= T) continue
            const xo = (b * T + ti) * cin + g0
            const wo = co * cinPG * K + k
            for (let c = 0; c < cinPG; c++) s += vw[wo + c * K] * vx[xo + c]
          }
          out[(b * Tout + t) * cout + co] = s
        }
      }
    }
    return backend.output(out, [B, Tout, cout], x.dtype)
  })

  registerCoreKernel<'conv1dBackwardInput', CpuBackend>(
    'conv1dBackwardInput',
    'cpu',
    ({ inputs, attrs, backend }) => {
      const { dy, weight } = inputs
      const [B, Tout, cout] = dy.shape
      const [, cinPG, K] = weight.shape
      const { dilation, padLeft, groups, inputLength: T } = attrs
      const cin = cinPG * groups
      const coutPG = cout / groups
      const vdy = backend.values(dy)
      const vw = backend.values(weight)
      const acc = new Float64Array(B * T * cin)
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < Tout; t++) {
          for (let co = 0; co < cout; co++) {
            const g = vdy[(b * Tout + t) * cout + co]
            if (g === 0) continue
            const g0 = Math.floor(co / coutPG) * cinPG
            for (let k = 0; k < K; k++) {
              const ti = t - padLeft + k * dilation
              if (ti < 0 || ti >= T) continue
              const xo = (b * T + ti) * cin + g0
              const wo = co * cinPG * K + k
              for (let c = 0; c < cinPG; c++) acc[xo + c] += g * vw[wo + c * K]
            }
          }
        }
      }
      const out = backend.alloc(dy.dtype, acc.length)
      out.set(acc)
      return backend.output(out, [B, T, cin], dy.dtype)
    },
  )

  registerCoreKernel<'conv1dBackwardWeight', CpuBackend>(
    'conv1dBackwardWeight',
    'cpu',
    ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs
      const [B, T, cin] = x.shape
      const [, Tout, cout] = dy.shape
      const { dilation, padLeft, groups, kernelSize: K } = attrs
      const cinPG = cin / groups
      const coutPG = cout / groups
      const vx = backend.values(x)
      const vdy = backend.values(dy)
      const acc = new Float64Array(cout * cinPG * K)
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < Tout; t++) {
          for (let co = 0; co < cout; co++) {
            const g = vdy[(b * Tout + t) * cout + co]
            if (g === 0) continue
            const g0 = Math.floor(co / coutPG) * cinPG
            for (let k = 0; k < K; k++) {
              const ti = t - padLeft + k * dilation
              if (ti < 0 || ti >= T) continue
              const xo = (b * T + ti) * cin + g0
              const wo = co * cinPG * K + k
              for (let c = 0; c < cinPG; c++) acc[wo + c * K] += g * vx[xo + c]
            }
          }
        }
      }
      const out = backend.alloc(x.dtype, acc.length)
      out.set(acc)
      return backend.output(out, [cout, cinPG, K], x.dtype)
    },
  )

  registerCoreKernel<'rope', CpuBackend>('rope', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, positions } = inputs
    const [B, H, T, D] = x.shape
    const half = attrs.rotaryDim / 2
    const vx = backend.values(x)
    const vp = backend.values(positions)
    const out = backend.alloc(x.dtype, vx.length)
    out.set(vx)
    const invFreq = Float64Array.from({ length: half }, (_, i) => attrs.base ** ((-2 * i) / attrs.rotaryDim))
    const dir = attrs.inverse ? -1 : 1
    for (let r = 0; r < B * H * T; r++) {
      const p = vp[r]
      const base = r * D
      for (let i = 0; i < half; i++) {
        const theta = dir * p * invFreq[i]
        const c = Math.cos(theta)
        const s = Math.sin(theta)
        const x1 = vx[base + i]
        const x2 = vx[base + i + half]
        out[base + i] = x1 * c - x2 * s
        out[base + i + half] = x2 * c + x1 * s
      }
    }
    return backend.output(out, x.shape, x.dtype)
  })
}
