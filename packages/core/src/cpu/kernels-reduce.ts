import { registerCoreKernel } from '../registry.js'
import { sizeOf, stridesOf } from '../shape.js'
import type { CpuBackend } from './cpu-backend.js'
import { odometer } from './iter.js'

/** Splits a shape around the last axis: rows x D. */
function rows(shape: readonly number[]): [number, number] {
  const d = shape[shape.length - 1]
  return [d === 0 ? 0 : sizeOf(shape) / d, d]
}

export function registerReduceKernels(): void {
  registerCoreKernel<'reduce', CpuBackend>('reduce', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const { axes, op, keepDims } = attrs
    const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    const outShape = keepDims ? keptShape : x.shape.filter((_, i) => !axes.includes(i))
    const n = sizeOf(keptShape)
    const acc = new Float64Array(n)
    if (op === 'max') acc.fill(Number.NEGATIVE_INFINITY)
    if (op === 'min') acc.fill(Number.POSITIVE_INFINITY)
    const keptStrides = stridesOf(keptShape).map((s, i) => (axes.includes(i) ? 0 : s))
    const vx = backend.values(x)
    const combine =
      op === 'max'
        ? (o: number, v: number) => {
            if (v > acc[o] || Number.isNaN(v)) acc[o] = v
          }
        : op === 'min'
          ? (o: number, v: number) => {
              if (v < acc[o] || Number.isNaN(v)) acc[o] = v
            }
          : (o: number, v: number) => {
              acc[o] += v
            }
    odometer(x.shape, [keptStrides], (i, offs) => combine(offs[0], vx[i]))
    if (op === 'mean') {
      const count = axes.reduce((c, a) => c * x.shape[a], 1)
      for (let i = 0; i < n; i++) acc[i] /= count
    }
    const out = backend.alloc(x.dtype, n)
    out.set(acc)
    return backend.output(out, outShape, x.dtype)
  })

  registerCoreKernel<'argReduce', CpuBackend>('argReduce', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const a = attrs.axis
    const outer = sizeOf(x.shape.slice(0, a))
    const len = x.shape[a]
    const inner = sizeOf(x.shape.slice(a + 1))
    const vx = backend.values(x)
    const out = new Int32Array(outer * inner)
    const better = attrs.op === 'argmax' ? (v: number, b: number) => v > b : (v: number, b: number) => v < b
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = vx[o * len * inner + i]
        let bestIdx = 0
        for (let j = 1; j < len; j++) {
          const v = vx[(o * len + j) * inner + i]
          if (better(v, best) || (Number.isNaN(v) && !Number.isNaN(best))) {
            best = v
            bestIdx = j
          }
        }
        out[o * inner + i] = bestIdx
      }
    }
    return backend.output(
      out,
      x.shape.filter((_, i) => i !== a),
      'int32',
    )
  })

  const softmaxLike = (log: boolean) =>
    (({ inputs, backend }) => {
      const { x } = inputs
      const [n, d] = rows(x.shape)
      const vx = backend.values(x)
      const out = backend.alloc(x.dtype, vx.length)
      for (let r = 0; r < n; r++) {
        const base = r * d
        let m = Number.NEGATIVE_INFINITY
        for (let j = 0; j < d; j++) m = Math.max(m, vx[base + j])
        let s = 0
        for (let j = 0; j < d; j++) s += Math.exp(vx[base + j] - m)
        if (log) {
          const lse = m + Math.log(s)
          for (let j = 0; j < d; j++) out[base + j] = vx[base + j] - lse
        } else {
          for (let j = 0; j < d; j++) out[base + j] = Math.exp(vx[base + j] - m) / s
        }
      }
      return backend.output(out, x.shape, x.dtype)
    }) satisfies Parameters<typeof registerCoreKernel<'softmax', CpuBackend>>[2]
  registerCoreKernel<'softmax', CpuBackend>('softmax', 'cpu', softmaxLike(false))
  registerCoreKernel<'logSoftmax', CpuBackend>('logSoftmax', 'cpu', softmaxLike(true))

  registerCoreKernel<'rmsNorm', CpuBackend>('rmsNorm', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, weight } = inputs
    const [n, d] = rows(x.shape)
    const vx = backend.values(x)
    const w = weight ? backend.values(weight) : undefined
    const out = backend.alloc(x.dtype, vx.length)
    for (let r = 0; r < n; r++) {
      const base = r * d
      let ss = 0
      for (let j = 0; j < d; j++) ss += vx[base + j] * vx[base + j]
      const inv = 1 / Math.sqrt(ss / d + attrs.eps)
      for (let j = 0; j < d; j++) out[base + j] = vx[base + j] * inv * (w ? w[j] : 1)
    }
    return backend.output(out, x.shape, x.dtype)
  })

  registerCoreKernel<'layerNorm', CpuBackend>('layerNorm', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, weight, bias } = inputs
    const [n, d] = rows(x.shape)
    const vx = backend.values(x)
    const w = weight ? backend.values(weight) : undefined
    const b = bias ? backend.values(bias) : undefined
    const out = backend.alloc(x.dtype, vx.length)
    for (let r = 0; r < n; r++) {
      const base = r * d
      let mu = 0
      for (let j = 0; j < d; j++) mu += vx[base + j]
      mu /= d
      let v = 0
      for (let j = 0; j < d; j++) v += (vx[base + j] - mu) ** 2
      const inv = 1 / Math.sqrt(v / d + attrs.eps)
      for (let j = 0; j < d; j++) out[base + j] = (vx[base + j] - mu) * inv * (w ? w[j] : 1) + (b ? b[j] : 0)
    }
    return backend.output(out, x.shape, x.dtype)
  })
}
