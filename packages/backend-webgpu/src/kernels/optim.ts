import { registerCoreKernel, sizeOf } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import { mapKernel, operand, Params } from './common.js'

export function registerOptimKernels(name: string): void {
  // One AdamW step; the bias corrections are computed on the host in float64.
  registerCoreKernel<'adamW', WebGPUBackend>('adamW', name, ({ inputs, attrs, backend: b }) => {
    const { param, grad, m, v } = inputs
    const { lr, beta1, beta2, eps, weightDecay, step } = attrs
    const params = new Params()
    const at = params.f32(beta1)
    params.f32(1 - beta1)
    params.f32(beta2)
    params.f32(1 - beta2)
    params.f32(1 - lr * weightDecay)
    params.f32(lr / (1 - beta1 ** step))
    params.f32(1 / (1 - beta2 ** step))
    params.f32(eps)
    const F = (k: number) => `PF(${at + k}u)`
    return mapKernel(
      b,
      {
        key: 'adamW',
        label: 'adamW',
        inputs: [operand(b, 'p', param), operand(b, 'g', grad), operand(b, 'm', m), operand(b, 'v', v)],
        outputs: [
          { name: 'p2', dtype: param.dtype },
          { name: 'm2', dtype: m.dtype },
          { name: 'v2', dtype: v.dtype },
        ],
        n: sizeOf(param.shape),
        params,
        body: `  let g = ld_g(i);
  let mi = ${F(0)} * ld_m(i) + ${F(1)} * g;
  let vi = ${F(2)} * ld_v(i) + ${F(3)} * g * g;
  r.m2 = mi;
  r.v2 = vi;
  r.p2 = ld_p(i) * ${F(4)} - ${F(5)} * mi / (sqrt(vi * ${F(6)}) + ${F(7)});`,
      },
      param.shape,
    ).map((t, i) => ({ ...t, shape: [...[param, m, v][i].shape] }))
  })
}
