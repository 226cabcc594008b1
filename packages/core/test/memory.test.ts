import { describe, expect, it } from 'vitest'
import {
  attention,
  crossEntropy,
  dispose,
  gatedDeltaRule,
  getBackend,
  keep,
  linear,
  memory,
  mul,
  Rng,
  relu,
  resetPeakMemory,
  reshape,
  rmsNorm,
  type Tensor,
  tensor,
  tidy,
  transpose,
  valueAndGrad,
} from '../src/index.js'

describe('memory accounting', () => {
  it('counts live tensors, buffers and bytes, and frees on dispose', () => {
    const m0 = memory()
    const a = tensor([1, 2, 3, 4], [2, 2])
    const m1 = memory()
    expect(m1.liveTensors - m0.liveTensors).toBe(1)
    expect(m1.liveBytes - m0.liveBytes).toBe(16)
    // A reshape is a second tensor over the same buffer: one more tensor, no more bytes.
    const view = reshape(a, [4])
    expect(memory().liveTensors - m0.liveTensors).toBe(2)
    expect(memory().liveBuffers - m0.liveBuffers).toBe(1)
    a.dispose()
    expect([...view.dataSync()]).toEqual([1, 2, 3, 4])
    view.dispose()
    expect(memory().liveTensors).toBe(m0.liveTensors)
    expect(memory().liveBytes).toBe(m0.liveBytes)
    expect(getBackend().memory().liveBuffers).toBeGreaterThanOrEqual(0)
  })

  it('tracks the peak and resets it', () => {
    resetPeakMemory()
    const base = memory().liveBytes
    const big = new Rng(1).normal([256, 256])
    big.dispose()
    expect(memory().peakBytes - base).toBeGreaterThanOrEqual(256 * 256 * 4)
    resetPeakMemory()
    expect(memory().peakBytes).toBe(memory().liveBytes)
  })

  it('tidy frees everything but the result; keep() survives', () => {
    const before = memory().liveTensors
    let kept: ReturnType<typeof tensor> | undefined
    const out = tidy(() => {
      const a = tensor([1, 2, 3])
      const b = mul(a, 2)
      kept = keep(mul(b, 3))
      return { y: relu(b), list: [b] }
    })
    expect(memory().liveTensors - before).toBe(3)
    dispose([out, kept])
    expect(memory().liveTensors).toBe(before)
  })

  it('using disposes at the end of the block', () => {
    const before = memory().liveTensors
    {
      using t = tensor([1, 2])
      expect(t.isDisposed).toBe(false)
      expect(memory().liveTensors).toBe(before + 1)
    }
    expect(memory().liveTensors).toBe(before)
  })

  it('a forward + backward + decode-style run leaves nothing alive', () => {
    const rng = new Rng(11)
    const params = { w: rng.normal([16, 16], 0, 0.2), g: rng.normal([16], 1, 0.1) }
    const x = rng.normal([2, 8, 16])
    const targets = rng.randint([2, 8], 0, 16)
    // [2, 8, 16] <-> [2, 2 heads, 8, 8]
    const split = (t: Tensor) => transpose(reshape(t, [2, 8, 2, 8]), [0, 2, 1, 3])
    const merge = (t: Tensor) => reshape(transpose(t, [0, 2, 1, 3]), [2, 8, 16])
    const before = memory()
    const loss = (p: typeof params) => {
      const h = split(rmsNorm(linear(x, p.w), p.g))
      return crossEntropy(merge(attention(h, h, h, { causal: true })), targets)
    }
    const { value, grads } = valueAndGrad(loss)(params)
    // A decode-style recurrent step: state in, state out.
    const step = tidy(() => {
      const k = rng.normal([1, 1, 1, 4])
      const g = tensor([[[-0.1]]])
      const beta = tensor([[[0.5]]])
      return gatedDeltaRule(k, k, rng.normal([1, 1, 1, 4]), g, beta, { mode: 'recurrent' })
    })
    dispose([value, grads, step])
    const after = memory()
    expect(after.liveTensors).toBe(before.liveTensors)
    expect(after.liveBytes).toBe(before.liveBytes)
    dispose([params, x, targets])
  })
})
