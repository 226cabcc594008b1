import { registerGradient } from '../registry.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { add, mul, rsqrt, sub } from './elementwise.js'
import { mean, sum } from './reduce.js'
import { assertFloat, assertSameDType, assertShape, assertTensor, run1 } from './validate.js'

function checkAffine(op: string, x: Tensor, name: string, p: Tensor | undefined): void {
  if (!p) return
  assertTensor(op, name, p)
  assertSameDType(op, 'x', x, name, p)
  assertShape(op, name, p, [x.shape[x.rank - 1]], ['D'])
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, weight?: Tensor, eps = 1e-6): Tensor {
  assertTensor('rmsNorm', 'x', x)
  assertFloat('rmsNorm', 'x', x)
  checkAffine('rmsNorm', x, 'weight', weight)
  return run1('rmsNorm', { x, weight }, { eps })
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias. */
export function layerNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  assertTensor('layerNorm', 'x', x)
  assertFloat('layerNorm', 'x', x)
  checkAffine('layerNorm', x, 'weight', weight)
  checkAffine('layerNorm', x, 'bias', bias)
  return run1('layerNorm', { x, weight, bias }, { eps })
}

/** Sums every axis but the last (the gradient of a per-feature parameter). */
function sumToLastAxis(g: Tensor): Tensor {
  const axes = g.shape.slice(0, -1).map((_, i) => i)
  return axes.length ? sum(g, axes) : g
}

registerGradient<{ eps: number }>({
  kernelName: 'rmsNorm',
  saveInputs: ['x', 'weight'],
  gradFunc: ({ dys, inputs, attrs }) => {
    const x = inputs.x as Tensor
    const w = inputs.weight as Tensor | undefined
    const r = rsqrt(add(mean(mul(x, x), -1, { keepDims: true }), attrs.eps))
    const n = mul(x, r)
    const dn = w ? mul(dys[0], w) : dys[0]
    const proj = mean(mul(dn, n), -1, { keepDims: true })
    const dx = mul(r, sub(dn, mul(n, proj)))
    return { x: dx, weight: w ? sumToLastAxis(mul(dys[0], n)) : undefined }
  },
})

registerGradient<{ eps: number }>({
  kernelName: 'layerNorm',
  saveInputs: ['x', 'weight'],
  gradFunc: ({ dys, inputs, inputMeta, attrs }) => {
    const x = inputs.x as Tensor
    const w = inputs.weight as Tensor | undefined
    const mu = mean(x, -1, { keepDims: true })
    const centred = sub(x, mu)
    const r = rsqrt(add(mean(mul(centred, centred), -1, { keepDims: true }), attrs.eps))
    const xhat = mul(centred, r)
    const dxhat = w ? mul(dys[0], w) : dys[0]
    const m1 = mean(dxhat, -1, { keepDims: true })
    const m2 = mean(mul(dxhat, xhat), -1, { keepDims: true })
    const dx = mul(r, sub(sub(dxhat, m1), mul(xhat, m2)))
    const hasBias = (inputMeta as Record<string, { shape: Shape } | undefined>).bias !== undefined
    return {
      x: dx,
      weight: w ? sumToLastAxis(mul(dys[0], xhat)) : undefined,
      bias: hasBias ? sumToLastAxis(dys[0]) : undefined,
    }
  },
})
