import { roundScalar } from '../dtype.js'
import { ArgumentError } from '../errors.js'
import { registerCoreKernel } from '../registry.js'
import { sizeOf, stridesOf } from '../shape.js'
import type { CpuBackend } from './cpu-backend.js'
import { odometer } from './iter.js'

function checkIndex(op: string, v: number, n: number): void {
  if (v < 0 || v >= n) throw new ArgumentError(`${op}: index ${v} out of range [0, ${n})`)
}

export function registerLayoutKernels(): void {
  registerCoreKernel<'transpose', CpuBackend>('transpose', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const outShape = attrs.perm.map((p) => x.shape[p])
    const inStrides = stridesOf(x.shape)
    const strides = attrs.perm.map((p) => inStrides[p])
    const vx = backend.values(x)
    const out = backend.alloc(x.dtype, vx.length)
    odometer(outShape, [strides], (i, offs) => {
      out[i] = vx[offs[0]]
    })
    return backend.output(out, outShape, x.dtype)
  })

  registerCoreKernel<'slice', CpuBackend>('slice', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const strides = stridesOf(x.shape)
    const base = attrs.begin.reduce((s, b, i) => s + b * strides[i], 0)
    const vx = backend.values(x)
    const out = backend.alloc(x.dtype, sizeOf(attrs.size))
    odometer(attrs.size, [strides], (i, offs) => {
      out[i] = vx[base + offs[0]]
    })
    return backend.output(out, attrs.size, x.dtype)
  })

  registerCoreKernel<'concat', CpuBackend>('concat', 'cpu', ({ inputs, attrs, backend }) => {
    const xs = inputs.xs
    const a = attrs.axis
    const first = xs[0]
    const outShape = [...first.shape]
    outShape[a] = xs.reduce((s, x) => s + x.shape[a], 0)
    const outer = sizeOf(first.shape.slice(0, a))
    const inner = sizeOf(first.shape.slice(a + 1))
    const out = backend.alloc(first.dtype, sizeOf(outShape))
    const outRow = outShape[a] * inner
    let offset = 0
    for (const x of xs) {
      const vx = backend.values(x)
      const chunk = x.shape[a] * inner
      for (let o = 0; o < outer; o++) out.set(vx.subarray(o * chunk, (o + 1) * chunk), o * outRow + offset)
      offset += chunk
    }
    return backend.output(out, outShape, first.dtype)
  })

  registerCoreKernel<'pad', CpuBackend>('pad', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const outShape = x.shape.map((d, i) => d + attrs.paddings[i][0] + attrs.paddings[i][1])
    const outStrides = stridesOf(outShape)
    const base = attrs.paddings.reduce((s, [l], i) => s + l * outStrides[i], 0)
    const vx = backend.values(x)
    const out = backend.alloc(x.dtype, sizeOf(outShape))
    out.fill(roundScalar(x.dtype, attrs.value))
    odometer(x.shape, [outStrides], (i, offs) => {
      out[base + offs[0]] = vx[i]
    })
    return backend.output(out, outShape, x.dtype)
  })

  registerCoreKernel<'gather', CpuBackend>('gather', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, indices } = inputs
    const a = attrs.axis
    const outer = sizeOf(x.shape.slice(0, a))
    const len = x.shape[a]
    const inner = sizeOf(x.shape.slice(a + 1))
    const idx = backend.values(indices)
    const vx = backend.values(x)
    const outShape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)]
    const out = backend.alloc(x.dtype, sizeOf(outShape))
    const n = idx.length
    for (let j = 0; j < n; j++) checkIndex('gather', idx[j], len)
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const src = (o * len + idx[j]) * inner
        out.set(vx.subarray(src, src + inner), (o * n + j) * inner)
      }
    }
    return backend.output(out, outShape, x.dtype)
  })

  registerCoreKernel<'takeAlongAxis', CpuBackend>('takeAlongAxis', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, indices } = inputs
    const a = attrs.axis
    const xStrides = stridesOf(x.shape)
    const strides = xStrides.map((s, i) => (i === a ? 0 : s))
    const idx = backend.values(indices)
    const vx = backend.values(x)
    const len = x.shape[a]
    const out = backend.alloc(x.dtype, idx.length)
    odometer(indices.shape, [strides], (i, offs) => {
      checkIndex('takeAlongAxis', idx[i], len)
      out[i] = vx[offs[0] + idx[i] * xStrides[a]]
    })
    return backend.output(out, indices.shape, x.dtype)
  })

  registerCoreKernel<'scatterAdd', CpuBackend>('scatterAdd', 'cpu', ({ inputs, attrs, backend }) => {
    const { x, indices, updates } = inputs
    const a = attrs.axis
    const xStrides = stridesOf(x.shape)
    const strides = xStrides.map((s, i) => (i === a ? 0 : s))
    const idx = backend.values(indices)
    const upd = backend.values(updates)
    const len = x.shape[a]
    const acc = Float64Array.from(backend.values(x))
    odometer(indices.shape, [strides], (i, offs) => {
      checkIndex('scatterAdd', idx[i], len)
      acc[offs[0] + idx[i] * xStrides[a]] += upd[i]
    })
    const out = backend.alloc(x.dtype, acc.length)
    out.set(acc)
    return backend.output(out, x.shape, x.dtype)
  })

  registerCoreKernel<'topk', CpuBackend>('topk', 'cpu', ({ inputs, attrs, backend }) => {
    const { x } = inputs
    const d = x.shape[x.shape.length - 1]
    const rowsN = d === 0 ? 0 : sizeOf(x.shape) / d
    const { k, largest } = attrs
    const vx = backend.values(x)
    const outShape = [...x.shape.slice(0, -1), k]
    const values = backend.alloc(x.dtype, rowsN * k)
    const indices = new Int32Array(rowsN * k)
    const order = new Array<number>(d)
    // NaN ranks above everything when largest (as torch.topk), below when smallest.
    const key = (v: number) =>
      Number.isNaN(v) ? (largest ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY) : v
    for (let r = 0; r < rowsN; r++) {
      const base = r * d
      for (let j = 0; j < d; j++) order[j] = j
      order.sort((i, j) => {
        const vi = key(vx[base + i])
        const vj = key(vx[base + j])
        if (vi !== vj) return largest ? vj - vi : vi - vj
        return i - j
      })
      for (let j = 0; j < k; j++) {
        values[r * k + j] = vx[base + order[j]]
        indices[r * k + j] = order[j]
      }
    }
    return [backend.output(values, outShape, x.dtype), backend.output(indices, outShape, 'int32')]
  })
}
