import { argumentError, fmtShape, ShapeError } from '../errors.js'
import type { Conv1dAttrs } from '../kernel-contract.js'
import { registerGradient } from '../registry.js'
import type { Tensor } from '../tensor.js'
import { sum } from './reduce.js'
import { assertFloat, assertInt, assertSameDType, assertShape, assertTensor, run1 } from './validate.js'

export interface Conv1dOptions {
  dilation?: number
  /**
   * 'causal': output t sees inputs <= t (left padding dilation*(K-1)); 'same': centred, output
   * length = input length; 'valid': no padding; or explicit [left, right].
   */
  padding?: 'causal' | 'same' | 'valid' | readonly [number, number]
  /** 1 = full convolution; Cin = depthwise (with Cout = Cin * multiplier). */
  groups?: number
}

/**
 * 1-D convolution over sequences, channels-last: x [B, T, Cin], weight [Cout, Cin/groups, K]
 * (PyTorch's layout), optional bias [Cout] -> [B, Tout, Cout]. Cross-correlation, as in PyTorch.
 */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor, opts: Conv1dOptions = {}): Tensor {
  assertTensor('conv1d', 'x', x)
  assertTensor('conv1d', 'weight', weight)
  assertFloat('conv1d', 'x', x)
  assertSameDType('conv1d', 'x', x, 'weight', weight)
  if (x.rank !== 3)
    throw new ShapeError(`conv1d: argument 'x' expected shape [B, T, Cin], got ${fmtShape(x.shape)}`)
  if (weight.rank !== 3) {
    throw new ShapeError(
      `conv1d: argument 'weight' expected shape [Cout, Cin/groups, K], got ${fmtShape(weight.shape)}`,
    )
  }
  const groups = assertInt('conv1d', 'groups', opts.groups ?? 1, 1)
  const dilation = assertInt('conv1d', 'dilation', opts.dilation ?? 1, 1)
  const [, T, cin] = x.shape
  const [cout, cinPerGroup, k] = weight.shape
  if (cin % groups !== 0) throw argumentError('conv1d', 'groups', `a divisor of Cin=${cin}`, groups)
  if (cout % groups !== 0) throw argumentError('conv1d', 'groups', `a divisor of Cout=${cout}`, groups)
  if (cinPerGroup !== cin / groups) {
    throw new ShapeError(
      `conv1d: argument 'weight' expected shape [${cout}, ${cin / groups}, K] (Cin/groups = ${cin}/${groups}), got ${fmtShape(weight.shape)}`,
    )
  }
  if (bias) {
    assertTensor('conv1d', 'bias', bias)
    assertSameDType('conv1d', 'x', x, 'bias', bias)
    assertShape('conv1d', 'bias', bias, [cout], ['Cout'])
  }
  const span = dilation * (k - 1)
  const padding = opts.padding ?? 'valid'
  let pads: [number, number]
  if (padding === 'causal') pads = [span, 0]
  else if (padding === 'same') pads = [Math.floor(span / 2), span - Math.floor(span / 2)]
  else if (padding === 'valid') pads = [0, 0]
  else if (
    Array.isArray(padding) &&
    padding.length === 2 &&
    padding.every((p) => Number.isInteger(p) && p >= 0)
  ) {
    pads = [padding[0], padding[1]]
  } else throw argumentError('conv1d', 'padding', "'causal' | 'same' | 'valid' | [left, right]", padding)
  if (T + pads[0] + pads[1] - span <= 0) {
    throw new ShapeError(
      `conv1d: input length ${T} with padding [${pads}] is shorter than the kernel span ${span + 1}`,
    )
  }
  const attrs: Conv1dAttrs = { dilation, padLeft: pads[0], padRight: pads[1], groups }
  return run1('conv1d', { x, weight, bias }, attrs)
}

registerGradient<Conv1dAttrs>({
  kernelName: 'conv1d',
  saveInputs: ['x', 'weight'],
  gradFunc: ({ dys, inputs, inputMeta, attrs }) => {
    const x = inputs.x as Tensor
    const w = inputs.weight as Tensor
    const dy = dys[0]
    const dx = run1('conv1dBackwardInput', { dy, weight: w }, { ...attrs, inputLength: x.shape[1] })
    const dw = run1('conv1dBackwardWeight', { x, dy }, { ...attrs, kernelSize: w.shape[2] })
    const hasBias = (inputMeta as Record<string, unknown>).bias !== undefined
    return { x: dx, weight: dw, bias: hasBias ? sum(dy, [0, 1]) : undefined }
  },
})
