import {
  argumentError,
  concat,
  conv1d,
  type Rng,
  reshape,
  sigmoid,
  silu,
  slice,
  type Tensor,
  tidy,
  transpose,
  zeros,
} from '@attnkit/core'
import { convBound, type ParamDType, uniformInit } from '../nn/init.js'
import { assertIntArg, assertShapeArg } from '../validate.js'

/**
 * The LTE scorer: a small 1-D CNN over the layer's input that gives each token one retention
 * score per KV head, r = sigmoid(conv_L(silu(... silu(conv_1(x))))). Convolutions are centred
 * ('same' padding, zeros beyond the sequence), so with L = 3 layers of kernel 3 and dilation 2
 * the receptive field is 13 tokens: the scorer sees `halo` = 6 tokens ahead.
 */
export interface ScorerConfig {
  /** Channels of the hidden layers. */
  hidden: number
  /** Number of convolution layers (3). */
  layers: number
  /** Kernel size (3; odd). */
  kernelSize: number
  /** Dilation (2). */
  dilation: number
}

export const SCORER_DEFAULTS: ScorerConfig = { hidden: 64, layers: 3, kernelSize: 3, dilation: 2 }

/** Parameters: PyTorch Conv1d layers in a ModuleList named `convs` ([Cout, Cin, K], bias [Cout]). */
export type ScorerParams = {
  convs: { weight: Tensor; bias: Tensor }[]
}

export function validateScorerConfig(c: ScorerConfig, where = 'lteScorer'): void {
  assertIntArg(where, 'hidden', c.hidden, 1)
  assertIntArg(where, 'layers', c.layers, 1)
  assertIntArg(where, 'kernelSize', c.kernelSize, 1)
  assertIntArg(where, 'dilation', c.dilation, 1)
  if (c.kernelSize % 2 !== 1)
    throw argumentError(where, 'kernelSize', 'an odd integer (a centred convolution)', c.kernelSize)
}

/** Tokens one layer looks to each side: dilation * (K - 1) / 2. */
export const layerReach = (c: ScorerConfig): number => (c.dilation * (c.kernelSize - 1)) / 2

/** Tokens the whole scorer looks ahead (and back): 6 for the paper's scorer. */
export const scorerHalo = (c: ScorerConfig): number => c.layers * layerReach(c)

/** Receptive field in tokens: 2 * halo + 1 (13). */
export const receptiveField = (c: ScorerConfig): number => 2 * scorerHalo(c) + 1

export function initScorer(
  c: ScorerConfig,
  dModel: number,
  kvHeads: number,
  rng: Rng,
  dtype: ParamDType = 'float32',
): ScorerParams {
  validateScorerConfig(c)
  const convs: ScorerParams['convs'] = []
  for (let l = 0; l < c.layers; l++) {
    const cin = l === 0 ? dModel : c.hidden
    const cout = l === c.layers - 1 ? kvHeads : c.hidden
    const bound = convBound(cin, c.kernelSize)
    convs.push({
      weight: uniformInit(rng, [cout, cin, c.kernelSize], bound, dtype),
      bias: uniformInit(rng, [cout], bound, dtype),
    })
  }
  return { convs }
}

/** Scores r [B, Hkv, T] in (0, 1) for x [B, T, dModel]. */
export function scorerForward(c: ScorerConfig, p: ScorerParams, x: Tensor): Tensor {
  if (p.convs.length !== c.layers)
    throw argumentError(
      'scorerForward',
      'params.convs',
      `${c.layers} conv layers (config.layers)`,
      `${p.convs.length}`,
    )
  return tidy(() => {
    let h = x
    p.convs.forEach((conv, l) => {
      const pre = conv1d(h, conv.weight, conv.bias, { padding: 'same', dilation: c.dilation })
      h = l === c.layers - 1 ? sigmoid(pre) : silu(pre)
    })
    return transpose(h, [0, 2, 1])
  })
}

/**
 * Streaming state of the scorer for decode: per layer, the last `span + 1` inputs of that layer
 * (span = dilation * (K - 1)), so each step computes exactly one new output per layer. Layer l's
 * newest output is for position t - (l + 1) * reach; the final one (t - halo) is the score that
 * becomes final at step t. Positions before 0 are the zero padding of the full forward.
 */
export interface ScorerState {
  buffers: Tensor[]
}

export function createScorerState(
  c: ScorerConfig,
  dModel: number,
  batch: number,
  dtype: ParamDType = 'float32',
): ScorerState {
  const span = 2 * layerReach(c)
  return {
    buffers: Array.from({ length: c.layers }, (_, l) =>
      zeros([batch, span + 1, l === 0 ? dModel : c.hidden], dtype),
    ),
  }
}

/**
 * Feeds token `t`'s input xt [B, 1, dModel]; returns the now-final score of token t - halo as
 * [B, Hkv] (undefined while t < halo). `state` is replaced in place.
 */
export function scorerStep(
  c: ScorerConfig,
  p: ScorerParams,
  state: ScorerState,
  xt: Tensor,
  t: number,
): Tensor | undefined {
  assertShapeArg(
    'scorerStep',
    'xt',
    xt,
    [state.buffers[0].shape[0], 1, state.buffers[0].shape[2]],
    ['B', '1', 'dModel'],
  )
  const reach = layerReach(c)
  const [B] = xt.shape
  let incoming: Tensor = xt
  let result: Tensor | undefined
  for (let l = 0; l < c.layers; l++) {
    const buf = state.buffers[l]
    const next = tidy(() => {
      const [, n, ch] = buf.shape
      return concat([slice(buf, [0, 1, 0], [B, n - 1, ch]), incoming], 1)
    })
    if (incoming !== xt) incoming.dispose()
    buf.dispose()
    state.buffers[l] = next
    const pos = t - (l + 1) * reach
    const conv = p.convs[l]
    const out = tidy(() => {
      const pre = conv1d(next, conv.weight, conv.bias, { padding: 'valid', dilation: c.dilation })
      const act = l === c.layers - 1 ? sigmoid(pre) : silu(pre)
      // Outputs at positions before the sequence are the next layer's zero padding.
      return pos < 0 ? zeros(act.shape, act.dtype) : act
    })
    if (l === c.layers - 1) {
      if (pos >= 0) result = reshape(out, [B, out.shape[2]])
      out.dispose()
    } else {
      incoming = out
    }
  }
  return result
}
