import { describe, expect, it } from 'vitest'
import {
  ArgumentError,
  add,
  attention,
  concat,
  conv1d,
  crossEntropy,
  DisposedError,
  DTypeError,
  gatedDeltaRule,
  gather,
  KernelNotFoundError,
  linear,
  matmul,
  memory,
  Rng,
  reshape,
  rmsNorm,
  runKernel,
  ShapeError,
  slice,
  softmax,
  sum,
  tensor,
  tidy,
  topk,
  transpose,
  valueAndGrad,
} from '../src/index.js'

const rng = new Rng(5)

describe('clear errors on bad input', () => {
  it('names the op, the argument, the expected and the actual shape', () => {
    tidy(() => {
      const a = rng.normal([3, 4])
      const b = rng.normal([5, 6])
      expect(() => matmul(a, b)).toThrow(ShapeError)
      expect(() => matmul(a, b)).toThrow(
        /matmul: inner dimensions differ: 'a' \[3, 4\] has K=4, 'b' \[5, 6\] has K=5/,
      )
      expect(() => add(a, b)).toThrow(/'a' \[3, 4\] and 'b' \[5, 6\] cannot be broadcast/)
      expect(() => reshape(a, [5, 5])).toThrow(/expected 12 elements in total, got \[5, 5\]/)
      expect(() => linear(a, rng.normal([2, 3]))).toThrow(/linear: argument 'x' expected last dimension 3/)
      const q = rng.normal([1, 4, 8, 16])
      const k = rng.normal([1, 3, 8, 16])
      expect(() => attention(q, k, k)).toThrow(
        /query heads \(4\) must be a multiple of key\/value heads \(3\)/,
      )
      expect(() => attention(q, rng.normal([1, 4, 8, 8]), q)).toThrow(
        /argument 'k' expected shape \[1, Hk, Tk, 16\], got \[1, 4, 8, 8\]/,
      )
      expect(() => rmsNorm(a, rng.normal([3]))).toThrow(
        /rmsNorm: argument 'weight' expected shape \[D=4\], got \[3\]/,
      )
      expect(() => concat([a, b], 0)).toThrow(/concat: argument 'xs\[1\]' expected shape \[\*, 4\]/)
      expect(() => conv1d(rng.normal([2, 5, 3]), rng.normal([4, 2, 3]))).toThrow(
        /expected shape \[4, 3, K\] \(Cin\/groups = 3\/1\)/,
      )
      expect(() => gatedDeltaRule(q, q, q, rng.normal([1, 4, 7]), rng.normal([1, 4, 8]))).toThrow(
        /argument 'g' expected shape \[B=1, H=4, T=8\], got \[1, 4, 7\]/,
      )
    })
  })

  it('names the expected and actual dtype', () => {
    tidy(() => {
      const a = rng.normal([2, 2])
      const h = rng.normal([2, 2], 0, 1, { dtype: 'float16' })
      expect(() => add(a, h)).toThrow(DTypeError)
      expect(() => add(a, h)).toThrow(/add: argument 'b' expected dtype float32 .* got float16/)
      const i = tensor([1, 2], [2], 'int32')
      expect(() => softmax(i)).toThrow(/softmax: argument 'x' expected dtype a floating dtype .* got int32/)
      expect(() => gather(a, a)).toThrow(/gather: argument 'indices' expected dtype int32, got float32/)
      const logits = rng.normal([3, 5])
      expect(() => crossEntropy(logits, tensor([0, 1], [2], 'int32'))).toThrow(
        /argument 'targets' expected shape \[3\]/,
      )
    })
  })

  it('names bad attribute values', () => {
    tidy(() => {
      const a = rng.normal([2, 6])
      expect(() => topk(a, 7)).toThrow(ArgumentError)
      expect(() => topk(a, 7)).toThrow(/topk: argument 'k' expected an integer in \[1, 6\], got 7/)
      expect(() => softmax(a, 2)).toThrow(/argument 'axis' expected an integer in \[-2, 1\], got 2/)
      expect(() => transpose(a, [0, 0])).toThrow(/argument 'perm' expected a permutation of 2 axes/)
      expect(() => slice(a, [0, 5], [1, 3])).toThrow(
        /slice: argument 'size\[1\]' expected an integer in \[0, 1\] or -1, got 3/,
      )
      expect(() =>
        attention(rng.normal([1, 1, 2, 4]), rng.normal([1, 1, 2, 4]), rng.normal([1, 1, 2, 4]), {
          window: -1,
        }),
      ).toThrow(/argument 'window' expected an integer >= 0, got -1/)
    })
  })

  it('refuses disposed tensors, unknown kernels and non-scalar losses', () => {
    const a = rng.normal([2])
    a.dispose()
    expect(() => add(a, 1)).toThrow(DisposedError)
    expect(() => a.dataSync()).toThrow(/was disposed/)
    expect(() => runKernel('no-such-kernel', {})).toThrow(KernelNotFoundError)
    const p = rng.normal([3])
    expect(() => valueAndGrad((x: typeof p) => add(x, 1))(p)).toThrow(
      /must return a float tensor with one element, got \[3\] float32/,
    )
    const before = memory().liveTensors
    expect(() => valueAndGrad((x: typeof p) => sum(matmul(x, x)))(p)).toThrow(/rank >= 2/)
    expect(memory().liveTensors).toBe(before)
    p.dispose()
  })
})
