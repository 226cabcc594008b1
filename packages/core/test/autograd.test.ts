import { describe, expect, it } from 'vitest'
import {
  add,
  dispose,
  grad,
  linear,
  matmul,
  mean,
  memory,
  mul,
  Rng,
  registerKernel,
  runKernel,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  valueAndGrad,
  valueAndGradWithAux,
} from '../src/index.js'

describe('autograd', () => {
  it('least squares: the gradient equals 2 X^T (X w - y) / n', () => {
    const rng = new Rng(3)
    const X = rng.normal([20, 4], 0, 1, { dtype: 'float64' })
    const y = rng.normal([20, 1], 0, 1, { dtype: 'float64' })
    const w = rng.normal([4, 1], 0, 1, { dtype: 'float64' })
    const { value, grads } = valueAndGrad((p: { w: Tensor }) => mean(square(sub(matmul(X, p.w), y))))({ w })
    const r = sub(matmul(X, w), y)
    const expected = mul(matmul(X, r, { transposeA: true }), 2 / 20)
    const g = grads.w.dataSync()
    for (const [i, e] of expected.dataSync().entries()) expect(g[i]).toBeCloseTo(e, 12)
    dispose([X, y, w, value, grads, r, expected])
  })

  it('returns gradients in the params tree shape; unused params get zeros; reuse accumulates', () => {
    const a = tensor([1, 2, 3])
    const b = tensor([4, 5, 6])
    const unused = tensor([7])
    const { value, grads } = valueAndGrad((p: { a: Tensor; list: Tensor[] }) =>
      sum(add(mul(p.a, p.a), mul(p.a, p.list[0]))),
    )({ a, list: [b, unused] })
    expect(value.dataSync()[0]).toBe(1 + 4 + 9 + 4 + 10 + 18)
    expect([...grads.a.dataSync()]).toEqual([2 + 4, 4 + 5, 6 + 6])
    expect([...grads.list[0].dataSync()]).toEqual([1, 2, 3])
    expect([...grads.list[1].dataSync()]).toEqual([0])
    dispose([a, b, unused, value, grads])
  })

  it('survives intermediates disposed inside f, and frees everything it made', () => {
    const before = memory().liveTensors
    const x = tensor([
      [0.5, -1],
      [2, 0.25],
    ])
    const w = tensor([
      [1, 2],
      [3, 4],
    ])
    const g = grad((p: Tensor) => {
      const h = linear(x, p)
      const y = square(h)
      h.dispose() // still needed by the backward pass: the tape holds its own reference
      return sum(y)
    })(w)
    // d/dW sum((x W^T)^2) = 2 (x W^T)^T x
    const expected = tidy(() => mul(matmul(matmul(x, w, { transposeB: true }), x, { transposeA: true }), 2))
    expect([...g.dataSync()]).toEqual([...expected.dataSync()])
    dispose([x, w, g, expected])
    expect(memory().liveTensors).toBe(before)
  })

  it('valueAndGradWithAux returns the aux untouched', () => {
    const p = tensor([3])
    const { value, grads, aux } = valueAndGradWithAux((x: Tensor) => {
      const y = mul(x, x)
      return [sum(y), { note: 'ok', y }] as [Tensor, { note: string; y: Tensor }]
    })(p)
    expect(aux.note).toBe('ok')
    expect(aux.y.dataSync()[0]).toBe(9)
    expect(grads.dataSync()[0]).toBe(6)
    dispose([p, value, grads, aux.y])
  })

  it('refuses integer params and kernels without a gradient', () => {
    const i = tensor([1, 2], [2], 'int32')
    expect(() => valueAndGrad((x: Tensor) => sum(x))(i)).toThrow(/only float tensors have gradients/)
    registerKernel({
      kernelName: 'test.noGrad',
      backendName: 'cpu',
      kernelFunc: ({ inputs }: { inputs: { x: Tensor } }) => inputs.x,
    })
    const f = tensor([1])
    expect(() => valueAndGrad((x: Tensor) => sum(runKernel('test.noGrad', { x })[0]))(f)).toThrow(
      /Kernel 'test.noGrad' has no gradient registered/,
    )
    dispose([i, f])
  })
})
