import type { TensorInfo } from '../backend.js'
import { argumentError, fmtShape, ShapeError, shapeError } from '../errors.js'
import { registerGradient, registerKernel } from '../registry.js'
import { inferReshape, normAxis, type Shape, shapesEqual } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { assertInt, assertSameDType, assertTensor, run1 } from './validate.js'

// reshape shares storage on every backend, so it is one engine-level kernel ('*').
registerKernel({
  kernelName: 'reshape',
  backendName: '*',
  kernelFunc: ({ inputs, attrs }: { inputs: { x: TensorInfo }; attrs: { shape: number[] } }) => ({
    dataId: inputs.x.dataId,
    shape: attrs.shape,
    dtype: inputs.x.dtype,
  }),
})
registerKernel({
  kernelName: 'stopGradient',
  backendName: '*',
  kernelFunc: ({ inputs }: { inputs: { x: TensorInfo } }) => ({
    dataId: inputs.x.dataId,
    shape: inputs.x.shape,
    dtype: inputs.x.dtype,
  }),
})
registerGradient({
  kernelName: 'reshape',
  gradFunc: ({ dys, inputMeta }) => ({ x: reshape(dys[0], (inputMeta.x as { shape: Shape }).shape) }),
})

/** Same elements, new shape (one entry may be -1). Shares storage; free both as usual. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  assertTensor('reshape', 'x', x)
  const target = inferReshape('reshape', x.size, shape)
  return run1('reshape', { x }, { shape: target })
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [-1])
}

/** Inserts a size-1 axis at `axis`. */
export function expandDims(x: Tensor, axis: number): Tensor {
  assertTensor('expandDims', 'x', x)
  const a = normAxis('expandDims', axis, x.rank + 1)
  const shape = [...x.shape]
  shape.splice(a, 0, 1)
  return reshape(x, shape)
}

/** Removes size-1 axes (all of them, or those given). */
export function squeeze(x: Tensor, axes?: number | number[]): Tensor {
  assertTensor('squeeze', 'x', x)
  const list =
    axes === undefined
      ? undefined
      : (typeof axes === 'number' ? [axes] : axes).map((a) => normAxis('squeeze', a, x.rank))
  for (const a of list ?? []) {
    if (x.shape[a] !== 1) throw shapeError('squeeze', 'x', `size 1 at axis ${a}`, x.shape)
  }
  return reshape(
    x,
    x.shape.filter((d, i) => (list ? !list.includes(i) : d !== 1)),
  )
}

/** Reorders axes: out.shape[i] = x.shape[perm[i]] (default: reversed). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  assertTensor('transpose', 'x', x)
  const p = perm
    ? perm.map((a) => normAxis('transpose', a, x.rank, 'perm'))
    : x.shape.map((_, i) => x.rank - 1 - i)
  if (p.length !== x.rank || new Set(p).size !== p.length) {
    throw argumentError('transpose', 'perm', `a permutation of ${x.rank} axes`, perm)
  }
  if (p.every((a, i) => a === i)) return reshape(x, x.shape)
  return run1('transpose', { x }, { perm: p })
}
export const permute = transpose

registerGradient<{ perm: number[] }>({
  kernelName: 'transpose',
  gradFunc: ({ dys, attrs }) => {
    const inverse = new Array<number>(attrs.perm.length)
    attrs.perm.forEach((a, i) => {
      inverse[a] = i
    })
    return { x: transpose(dys[0], inverse) }
  },
})

/** Swaps two axes. */
export function swapAxes(x: Tensor, a: number, b: number): Tensor {
  assertTensor('swapAxes', 'x', x)
  const perm = x.shape.map((_, i) => i)
  const i = normAxis('swapAxes', a, x.rank, 'a')
  const j = normAxis('swapAxes', b, x.rank, 'b')
  ;[perm[i], perm[j]] = [perm[j], perm[i]]
  return transpose(x, perm)
}

/**
 * A contiguous block: `begin[i]` (negative counts from the end) and `size[i]` (-1: to the end)
 * per axis; missing trailing axes are taken whole.
 */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  assertTensor('slice', 'x', x)
  if (begin.length > x.rank) throw argumentError('slice', 'begin', `at most ${x.rank} entries`, begin)
  const b = x.shape.map((d, i) => {
    const v = begin[i] ?? 0
    const n = v < 0 ? v + d : v
    if (!Number.isInteger(v) || n < 0 || n > d)
      throw argumentError('slice', `begin[${i}]`, `an integer in [${-d}, ${d}]`, v)
    return n
  })
  const s = x.shape.map((d, i) => {
    const v = size?.[i] ?? -1
    const n = v === -1 ? d - b[i] : v
    if (!Number.isInteger(n) || n < 0 || b[i] + n > d) {
      throw argumentError('slice', `size[${i}]`, `an integer in [0, ${d - b[i]}] or -1`, v)
    }
    return n
  })
  if (shapesEqual(s, x.shape)) return reshape(x, x.shape)
  return run1('slice', { x }, { begin: b, size: s })
}

registerGradient<{ begin: number[]; size: number[] }>({
  kernelName: 'slice',
  gradFunc: ({ dys, inputMeta, attrs }) => {
    const shape = (inputMeta.x as { shape: Shape }).shape
    const paddings = shape.map(
      (d, i) => [attrs.begin[i], d - attrs.begin[i] - attrs.size[i]] as [number, number],
    )
    return { x: pad(dys[0], paddings) }
  },
})

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs as unknown) || xs.length === 0)
    throw argumentError('concat', 'xs', 'a non-empty array of tensors', xs)
  for (const [i, x] of xs.entries()) assertTensor('concat', `xs[${i}]`, x)
  const first = xs[0]
  const a = normAxis('concat', axis, first.rank)
  xs.forEach((x, i) => {
    assertSameDType('concat', 'xs[0]', first, `xs[${i}]`, x)
    if (x.rank !== first.rank || x.shape.some((d, k) => k !== a && d !== first.shape[k])) {
      const expected = first.shape.map((d, k) => (k === a ? '*' : String(d)))
      throw shapeError(
        'concat',
        `xs[${i}]`,
        `[${expected.join(', ')}] (all dims but axis ${a} equal)`,
        x.shape,
      )
    }
  })
  if (xs.length === 1) return reshape(first, first.shape)
  return run1('concat', { xs }, { axis: a })
}

registerGradient<{ axis: number }>({
  kernelName: 'concat',
  gradFunc: ({ dys, inputMeta, attrs }) => {
    const metas = inputMeta.xs as { shape: Shape }[]
    let offset = 0
    const grads = metas.map((m) => {
      const begin = m.shape.map((_, k) => (k === attrs.axis ? offset : 0))
      offset += m.shape[attrs.axis]
      return slice(dys[0], begin, m.shape)
    })
    return { xs: grads }
  },
})

/** Stacks same-shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs as unknown) || xs.length === 0)
    throw argumentError('stack', 'xs', 'a non-empty array of tensors', xs)
  xs.forEach((x, i) => {
    assertTensor('stack', `xs[${i}]`, x)
    if (!shapesEqual(x.shape, xs[0].shape))
      throw shapeError('stack', `xs[${i}]`, fmtShape(xs[0].shape), x.shape)
  })
  const expanded = xs.map((x) => expandDims(x, axis))
  const out = concat(expanded, axis)
  for (const e of expanded) e.dispose()
  return out
}

/** Splits along `axis` into pieces of the given sizes (or `n` equal pieces). */
export function split(x: Tensor, sizesOrCount: number | readonly number[], axis = 0): Tensor[] {
  assertTensor('split', 'x', x)
  const a = normAxis('split', axis, x.rank)
  const d = x.shape[a]
  let sizes: number[]
  if (typeof sizesOrCount === 'number') {
    assertInt('split', 'sizesOrCount', sizesOrCount, 1)
    if (d % sizesOrCount !== 0)
      throw new ShapeError(`split: axis ${a} of size ${d} is not divisible into ${sizesOrCount} pieces`)
    sizes = new Array(sizesOrCount).fill(d / sizesOrCount)
  } else {
    sizes = [...sizesOrCount]
    if (sizes.reduce((s, v) => s + v, 0) !== d) {
      throw argumentError('split', 'sizesOrCount', `sizes summing to ${d}`, sizesOrCount)
    }
  }
  let offset = 0
  return sizes.map((n) => {
    const begin = x.shape.map((_, k) => (k === a ? offset : 0))
    const size = x.shape.map((dim, k) => (k === a ? n : dim))
    offset += n
    return slice(x, begin, size)
  })
}

/** Pads every axis with [before, after] elements of `value` (missing leading axes: no padding). */
export function pad(x: Tensor, paddings: readonly (readonly [number, number])[], value = 0): Tensor {
  assertTensor('pad', 'x', x)
  if (paddings.length > x.rank) throw argumentError('pad', 'paddings', `at most ${x.rank} pairs`, paddings)
  const full = x.shape.map((_, i) => {
    const p = paddings[i - (x.rank - paddings.length)] ?? [0, 0]
    if (!Array.isArray(p) || p.length !== 2 || p.some((v) => !Number.isInteger(v) || v < 0)) {
      throw argumentError('pad', `paddings[${i}]`, 'a pair of non-negative integers', p)
    }
    return [p[0], p[1]] as [number, number]
  })
  if (full.every(([l, r]) => l === 0 && r === 0)) return reshape(x, x.shape)
  return run1('pad', { x }, { paddings: full, value })
}

registerGradient<{ paddings: [number, number][] }>({
  kernelName: 'pad',
  gradFunc: ({ dys, inputMeta, attrs }) => {
    const shape = (inputMeta.x as { shape: Shape }).shape
    return {
      x: slice(
        dys[0],
        attrs.paddings.map(([l]) => l),
        shape,
      ),
    }
  },
})
