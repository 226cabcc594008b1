import { ShapeError } from '../errors.js'
import { registerGradient } from '../registry.js'
import { broadcastShapes } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { add, sumToShape } from './elementwise.js'
import { assertFloat, assertSameDType, assertShape, assertTensor, fmtShape, run1 } from './validate.js'

export interface MatmulOptions {
  transposeA?: boolean
  transposeB?: boolean
}

/**
 * Batched matrix product: a [..., M, K] x b [..., K, N] -> [..., M, N], with optional transposes
 * of the last two axes and numpy broadcasting of the batch axes.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  assertTensor('matmul', 'a', a)
  assertTensor('matmul', 'b', b)
  assertFloat('matmul', 'a', a)
  assertSameDType('matmul', 'a', a, 'b', b)
  const transposeA = opts.transposeA ?? false
  const transposeB = opts.transposeB ?? false
  if (a.rank < 2) throw new ShapeError(`matmul: argument 'a' expected rank >= 2, got ${fmtShape(a.shape)}`)
  if (b.rank < 2) throw new ShapeError(`matmul: argument 'b' expected rank >= 2, got ${fmtShape(b.shape)}`)
  const ka = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
  const kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
  if (ka !== kb) {
    throw new ShapeError(
      `matmul: inner dimensions differ: 'a' ${fmtShape(a.shape)}${transposeA ? ' (transposed)' : ''} has K=${ka}, 'b' ${fmtShape(b.shape)}${transposeB ? ' (transposed)' : ''} has K=${kb}`,
    )
  }
  broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2))
  return run1('matmul', { a, b }, { transposeA, transposeB })
}

registerGradient<{ transposeA: boolean; transposeB: boolean }>({
  kernelName: 'matmul',
  saveInputs: ['a', 'b'],
  gradFunc: ({ dys, inputs, attrs }) => {
    const a = inputs.a as Tensor
    const b = inputs.b as Tensor
    const dc = dys[0]
    const mm = (x: Tensor, y: Tensor, tx: boolean, ty: boolean) =>
      matmul(x, y, { transposeA: tx, transposeB: ty })
    let da: Tensor
    let db: Tensor
    if (!attrs.transposeA && !attrs.transposeB) {
      da = mm(dc, b, false, true)
      db = mm(a, dc, true, false)
    } else if (attrs.transposeA && !attrs.transposeB) {
      da = mm(b, dc, false, true)
      db = mm(a, dc, false, false)
    } else if (!attrs.transposeA && attrs.transposeB) {
      da = mm(dc, b, false, false)
      db = mm(dc, a, true, false)
    } else {
      da = mm(b, dc, true, true)
      db = mm(dc, a, true, true)
    }
    return { a: sumToShape(da, a.shape), b: sumToShape(db, b.shape) }
  },
})

/** A linear layer as PyTorch stores it: x [..., in] @ weight[out, in]^T + bias[out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  assertTensor('linear', 'x', x)
  assertTensor('linear', 'weight', weight)
  if (weight.rank !== 2)
    throw new ShapeError(`linear: argument 'weight' expected shape [out, in], got ${fmtShape(weight.shape)}`)
  const inF = weight.shape[1]
  if (x.shape[x.rank - 1] !== inF) {
    throw new ShapeError(
      `linear: argument 'x' expected last dimension ${inF} (weight is [out, in] = ${fmtShape(weight.shape)}), got ${fmtShape(x.shape)}`,
    )
  }
  if (bias) {
    assertTensor('linear', 'bias', bias)
    assertShape('linear', 'bias', bias, [weight.shape[0]], ['out'])
  }
  const lead = x.shape.slice(0, -1)
  const x2 = x.rank === 2 ? x : run1('reshape', { x }, { shape: [lead.reduce((n, d) => n * d, 1), inF] })
  const y2 = matmul(x2, weight, { transposeB: true })
  if (x2 !== x) x2.dispose()
  const y = x.rank === 2 ? y2 : run1('reshape', { x: y2 }, { shape: [...lead, weight.shape[0]] })
  if (y !== y2) y2.dispose()
  if (!bias) return y
  const out = add(y, bias)
  y.dispose()
  return out
}
