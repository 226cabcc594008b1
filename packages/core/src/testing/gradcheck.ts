import { valueAndGrad } from '../autograd.js'
import { isFloat } from '../dtype.js'
import { ENGINE } from '../engine.js'
import * as o from '../ops/index.js'
import { Rng } from '../rng.js'
import { dispose, tidy } from '../scope.js'
import type { Tensor } from '../tensor.js'
import type { OpCase } from './cases.js'
import { makeInputValues } from './runner.js'

/**
 * Central finite differences of a scalar function of float64 CPU tensors:
 * d f / d x_i ~ (f(x + eps e_i) - f(x - eps e_i)) / 2 eps, for every element of every param.
 */
export function numericGradient(
  f: (params: Record<string, Tensor>) => Tensor,
  params: Record<string, Tensor>,
  eps = 1e-6,
): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {}
  for (const [name, p] of Object.entries(params)) {
    const base = p.dataSync() as Float64Array
    const g = new Float64Array(base.length)
    const evalAt = (i: number, delta: number) => {
      const v = base.slice()
      v[i] += delta
      const shifted = ENGINE.fromHost(v, p.shape, p.dtype, p.backend)
      const y = tidy(() => f({ ...params, [name]: shifted }))
      const value = y.dataSync()[0]
      y.dispose()
      shifted.dispose()
      return value
    }
    for (let i = 0; i < base.length; i++) g[i] = (evalAt(i, eps) - evalAt(i, -eps)) / (2 * eps)
    out[name] = g
  }
  return out
}

export interface GradCheckResult {
  input: string
  maxAbsError: number
  maxRelError: number
  ok: boolean
}

/**
 * Checks a case's analytic gradients (float64, CPU) against central finite differences of
 * sum(fn(x) * w) for random w. Tolerance: |analytic - numeric| <= atol + rtol |numeric|.
 */
export function gradCheckCase(c: OpCase, seed = 99, rtol = 1e-5, atol = 1e-7): GradCheckResult[] {
  const cpu = ENGINE.backendSync('cpu')
  const rng = new Rng(seed)
  const inputs: Record<string, Tensor> = {}
  for (const [name, spec] of Object.entries(c.inputs)) {
    const dtype = spec.dtype && !isFloat(spec.dtype) ? spec.dtype : 'float64'
    const values = makeInputValues(spec, rng)
    inputs[name] = ENGINE.fromHost(
      dtype === 'float64' ? values : dtype === 'bool' ? Uint8Array.from(values) : Int32Array.from(values),
      spec.shape,
      dtype,
      cpu,
    )
  }
  const names = Object.entries(c.inputs)
    .filter(([, s]) => (!s.dtype || isFloat(s.dtype)) && s.grad !== false)
    .map(([n]) => n)
  const probe = tidy(() => {
    const r = c.fn(inputs)
    return Array.isArray(r) ? r[0] : r
  })
  const w = ENGINE.fromHost(new Rng(seed + 1).normalArray(probe.size), probe.shape, 'float64', cpu)
  probe.dispose()
  const loss = (p: Record<string, Tensor>) => {
    const r = c.fn({ ...inputs, ...p })
    return o.sum(o.mul(Array.isArray(r) ? r[0] : r, w))
  }
  const params = Object.fromEntries(names.map((n) => [n, inputs[n]]))
  const { value, grads } = valueAndGrad(loss)(params)
  const numeric = numericGradient(loss, params)
  const results = names.map((n) => {
    const a = grads[n].dataSync()
    const e = numeric[n]
    let maxAbs = 0
    let maxRel = 0
    let ok = true
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - e[i])
      maxAbs = Math.max(maxAbs, d)
      maxRel = Math.max(maxRel, d / Math.max(Math.abs(e[i]), 1e-12))
      if (!(d <= atol + rtol * Math.abs(e[i]))) ok = false
    }
    return { input: n, maxAbsError: maxAbs, maxRelError: maxRel, ok }
  })
  dispose([value, grads, w, inputs])
  return results
}
