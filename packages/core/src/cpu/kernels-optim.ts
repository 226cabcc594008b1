import { registerCoreKernel } from '../registry.js'
import type { CpuBackend } from './cpu-backend.js'

export function registerOptimKernels(): void {
  registerCoreKernel<'adamW', CpuBackend>('adamW', 'cpu', ({ inputs, attrs, backend }) => {
    const { param, grad, m, v } = inputs
    const { lr, beta1, beta2, eps, weightDecay, step } = attrs
    const vp = backend.values(param)
    const vg = backend.values(grad)
    const vm = backend.values(m)
    const vv = backend.values(v)
    const p2 = backend.alloc(param.dtype, vp.length)
    const m2 = backend.alloc(m.dtype, vm.length)
    const v2 = backend.alloc(v.dtype, vv.length)
    const c1 = 1 - beta1 ** step
    const c2 = 1 - beta2 ** step
    for (let i = 0; i < vp.length; i++) {
      const gi = vg[i]
      const mi = beta1 * vm[i] + (1 - beta1) * gi
      const vi = beta2 * vv[i] + (1 - beta2) * gi * gi
      m2[i] = mi
      v2[i] = vi
      p2[i] = vp[i] * (1 - lr * weightDecay) - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps)
    }
    return [
      backend.output(p2, param.shape, param.dtype),
      backend.output(m2, m.shape, m.dtype),
      backend.output(v2, v.shape, v.dtype),
    ]
  })
}
