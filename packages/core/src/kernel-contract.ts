/**
 * The op contract at kernel level: every kernel a backend implements, with its inputs,
 * attributes and outputs. The functional ops (ops/*.ts) validate arguments, normalise them to
 * these forms and call `runKernel`; backends therefore never see negative axes, broadcast
 * positions or optional shapes, only what is written here.
 *
 * Conventions for all kernels:
 * - Inputs are contiguous, row-major. Outputs are new, contiguous tensors.
 * - Binary-style kernels broadcast numpy-style; other kernels get exact shapes.
 * - Floating inputs of one kernel share one dtype, and outputs keep it unless stated.
 * - Accumulation: float32 at least (float64 on the CPU reference), never in 16 bits.
 */
import type { DType } from './dtype.js'

/** Kernel attributes: plain data (numbers, strings, booleans, arrays of them). */
export type Attrs = object

export type UnaryOp =
  | 'neg'
  | 'abs'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'square'
  | 'reciprocal'
  | 'sigmoid'
  | 'logSigmoid'
  | 'tanh'
  | 'relu'
  | 'gelu'
  | 'silu'
  | 'softplus'
  | 'sin'
  | 'cos'
  | 'erf'
  | 'sign'
  | 'floor'
  | 'ceil'
  | 'round'
  | 'logicalNot'

/** Unary ops defined on integer dtypes too; all others need a floating dtype. */
export const INTEGER_UNARY_OPS: readonly UnaryOp[] = ['neg', 'abs', 'square', 'sign', 'relu']

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'and' | 'or'
export type CompareOp = 'equal' | 'notEqual' | 'less' | 'lessEqual' | 'greater' | 'greaterEqual'
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min'

export interface AttentionAttrs {
  /** Multiplies q.k before the softmax (usually 1/sqrt(headDim)). */
  scale: number
  /** Key j is visible to query i only when kPos[j] <= qPos[i]. */
  causal: boolean
  /**
   * Selectors. With window = 0 and no keep mask every key is selected. Otherwise a key is
   * selected when any holds: |qPos - kPos| < window; kPos < sinks; keep[j].
   * A key is visible when it is selected and the causal rule (if on) allows it.
   */
  window: number
  sinks: number
}

export interface Conv1dAttrs {
  dilation: number
  padLeft: number
  padRight: number
  groups: number
}

export interface RopeAttrs {
  base: number
  /** Leading features of the head dimension that rotate (even, <= D); the rest pass through. */
  rotaryDim: number
  /** Rotates by -angle: the gradient (and undoing a rotation). */
  inverse: boolean
}

export interface AdamWAttrs {
  lr: number
  beta1: number
  beta2: number
  eps: number
  weightDecay: number
  /** 1-based step number, for bias correction. */
  step: number
}

export interface DeltaRuleAttrs {
  /** Multiplies q (usually 1/sqrt(dk)). */
  scale: number
  mode: 'recurrent' | 'chunked'
  chunkSize: number
}

/**
 * Every kernel: input names (`?` optional), attributes, and outputs (in order).
 * Shapes use B batch, H heads, T sequence, D head dim.
 */
export interface KernelSignatures {
  /** out = value, of the given shape and dtype. */
  fill: { inputs: Record<string, never>; attrs: { shape: number[]; dtype: DType; value: number }; outputs: 1 }
  /** Converts dtype (float->int truncates toward zero; ->bool is x != 0). */
  cast: { inputs: { x: true }; attrs: { dtype: DType }; outputs: 1 }
  unary: { inputs: { x: true }; attrs: { op: UnaryOp }; outputs: 1 }
  /** Broadcasting. `and`/`or` take bool; the rest a shared numeric dtype. */
  binary: { inputs: { a: true; b: true }; attrs: { op: BinaryOp }; outputs: 1 }
  /** Broadcasting; output bool. */
  compare: { inputs: { a: true; b: true }; attrs: { op: CompareOp }; outputs: 1 }
  /** Broadcasting of all three; cond is bool; a and b share a dtype. */
  where: { inputs: { cond: true; a: true; b: true }; attrs: Record<string, never>; outputs: 1 }
  /** axes sorted, distinct, non-empty. */
  reduce: { inputs: { x: true }; attrs: { op: ReduceOp; axes: number[]; keepDims: boolean }; outputs: 1 }
  /** Output int32 with `axis` removed; ties pick the lowest index. */
  argReduce: { inputs: { x: true }; attrs: { op: 'argmax' | 'argmin'; axis: number }; outputs: 1 }
  /** Along the last axis. */
  softmax: { inputs: { x: true }; attrs: Record<string, never>; outputs: 1 }
  /** Along the last axis. */
  logSoftmax: { inputs: { x: true }; attrs: Record<string, never>; outputs: 1 }
  /** y = x / sqrt(mean(x^2) + eps) * weight, over the last axis; weight [D] optional. */
  rmsNorm: { inputs: { x: true; weight?: true }; attrs: { eps: number }; outputs: 1 }
  /** y = (x - mean) / sqrt(var + eps) * weight + bias, over the last axis. */
  layerNorm: { inputs: { x: true; weight?: true; bias?: true }; attrs: { eps: number }; outputs: 1 }
  /** [..., M, K] x [..., K, N] (before transposes), batch dims broadcast; both rank >= 2. */
  matmul: { inputs: { a: true; b: true }; attrs: { transposeA: boolean; transposeB: boolean }; outputs: 1 }
  transpose: { inputs: { x: true }; attrs: { perm: number[] }; outputs: 1 }
  slice: { inputs: { x: true }; attrs: { begin: number[]; size: number[] }; outputs: 1 }
  /** Inputs `xs` share rank and dtype and all dims but `axis`. */
  concat: { inputs: { xs: true }; attrs: { axis: number }; outputs: 1 }
  /** paddings[i] = [before, after] for every axis. */
  pad: { inputs: { x: true }; attrs: { paddings: [number, number][]; value: number }; outputs: 1 }
  /** indices int32 of any shape, values in [0, x.shape[axis]); out = x.shape[:axis] + indices.shape + x.shape[axis+1:]. */
  gather: { inputs: { x: true; indices: true }; attrs: { axis: number }; outputs: 1 }
  /** indices int32 with x's rank and x's dims except `axis`; out has indices' shape. */
  takeAlongAxis: { inputs: { x: true; indices: true }; attrs: { axis: number }; outputs: 1 }
  /** out = x, then out[.., indices[..j..], ..] += updates[..j..] along axis; indices and updates share a shape. */
  scatterAdd: { inputs: { x: true; indices: true; updates: true }; attrs: { axis: number }; outputs: 1 }
  /** Top k along the last axis: values then int32 indices, sorted (largest first unless largest=false); ties: lower index first. */
  topk: { inputs: { x: true }; attrs: { k: number; largest: boolean }; outputs: 2 }
  /** x [B, T, Cin] channels-last, weight [Cout, Cin/groups, K] (PyTorch layout), bias [Cout]. Out [B, Tout, Cout]. */
  conv1d: { inputs: { x: true; weight: true; bias?: true }; attrs: Conv1dAttrs; outputs: 1 }
  /** dx [B, inputLength, Cin] from dy [B, Tout, Cout]. */
  conv1dBackwardInput: {
    inputs: { dy: true; weight: true }
    attrs: Conv1dAttrs & { inputLength: number }
    outputs: 1
  }
  /** dweight [Cout, Cin/groups, K] from x and dy. */
  conv1dBackwardWeight: {
    inputs: { x: true; dy: true }
    attrs: Conv1dAttrs & { kernelSize: number }
    outputs: 1
  }
  /** x [B, H, T, D], positions int32 [B, H, T]. Half-split (rotate-half) pairs (i, i + rotaryDim/2). */
  rope: { inputs: { x: true; positions: true }; attrs: RopeAttrs; outputs: 1 }
  /**
   * q [B, Hq, Tq, D], k [B, Hk, Tk, D], v [B, Hk, Tk, Dv] (Hq a multiple of Hk: query head h reads
   * kv head floor(h / (Hq / Hk))), qPos int32 [B, Hq, Tq], kPos int32 [B, Hk, Tk], keep bool [B, Hk, Tk].
   * Outputs: out [B, Hq, Tq, Dv] (q's dtype) and lse [B, Hq, Tq] (float32, float64 for float64
   * inputs; -Infinity and a zero output row where no key is visible).
   */
  attention: {
    inputs: { q: true; k: true; v: true; qPos: true; kPos: true; keep?: true }
    attrs: AttentionAttrs
    outputs: 2
  }
  /** Gradients dq, dk, dv of `attention` given dout. */
  attentionBackward: {
    inputs: {
      q: true
      k: true
      v: true
      out: true
      lse: true
      dout: true
      qPos: true
      kPos: true
      keep?: true
    }
    attrs: AttentionAttrs
    outputs: 3
  }
  /**
   * Gated delta rule. q, k [B, H, T, Dk], v [B, H, T, Dv], g (log decay, <= 0) and beta [B, H, T],
   * initial state [B, H, Dk, Dv] (zeros when absent). Per step, with S of shape [Dk, Dv]:
   *   S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T (scale q_t).
   * Outputs o [B, H, T, Dv] (v's dtype) and the final state [B, H, Dk, Dv] (float32, or float64).
   */
  gatedDeltaRule: {
    inputs: { q: true; k: true; v: true; g: true; beta: true; state?: true }
    attrs: DeltaRuleAttrs
    outputs: 2
  }
  /** Gradients dq, dk, dv, dg, dbeta, dstate (initial state) given do and dFinalState. */
  gatedDeltaRuleBackward: {
    inputs: {
      q: true
      k: true
      v: true
      g: true
      beta: true
      state?: true
      dout: true
      dFinalState?: true
    }
    attrs: DeltaRuleAttrs
    outputs: 6
  }
  /** One AdamW step (decoupled weight decay). Outputs param, m, v. */
  adamW: { inputs: { param: true; grad: true; m: true; v: true }; attrs: AdamWAttrs; outputs: 3 }
}

export type CoreKernelName = keyof KernelSignatures
export type KernelAttrs<K extends CoreKernelName> = KernelSignatures[K]['attrs']

export const CORE_KERNELS: readonly CoreKernelName[] = [
  'fill',
  'cast',
  'unary',
  'binary',
  'compare',
  'where',
  'reduce',
  'argReduce',
  'softmax',
  'logSoftmax',
  'rmsNorm',
  'layerNorm',
  'matmul',
  'transpose',
  'slice',
  'concat',
  'pad',
  'gather',
  'takeAlongAxis',
  'scatterAdd',
  'topk',
  'conv1d',
  'conv1dBackwardInput',
  'conv1dBackwardWeight',
  'rope',
  'attention',
  'attentionBackward',
  'gatedDeltaRule',
  'gatedDeltaRuleBackward',
  'adamW',
]
