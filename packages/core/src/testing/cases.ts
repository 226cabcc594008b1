/**
 * The conformance cases: every kernel of the op contract, on random inputs (odd and
 * non-power-of-two sizes, broadcasting, every dtype the op supports), forward and gradient.
 * Each case is plain data plus a function of public ops, so any backend can run it.
 */
import type { DType } from '../dtype.js'
import type { UnaryOp } from '../kernel-contract.js'
import * as o from '../ops/index.js'
import type { Tensor } from '../tensor.js'

export type Dist = 'normal' | 'wide' | 'positive' | 'unit' | 'prob' | 'logdecay' | 'int' | 'bool' | 'smallint'

export interface InputSpec {
  shape: number[]
  /** normal N(0,1); wide N(0,9); positive U(0.5,2); unit: normal rows scaled to length 1 along the last axis;
   *  prob U(0.05,0.95); logdecay U(-0.5,-0.01); int U{low..high-1}; bool p=0.5; smallint: floats in {-2..2}. */
  dist?: Dist
  /** Fixed dtype (int32, bool, float32 for optimiser state); float inputs otherwise take the case's. */
  dtype?: DType
  low?: number
  high?: number
  /** Whether the gradient with respect to this input is checked (default: float inputs). */
  grad?: boolean
}

export interface OpCase {
  name: string
  /** Core kernels this case exercises. */
  kernels: string[]
  dtypes: DType[]
  inputs: Record<string, InputSpec>
  fn: (x: Record<string, Tensor>) => Tensor | Tensor[]
  /** Check gradients (default true when any input takes gradients). */
  grad?: boolean
  /** Tolerance multiplier over the dtype's base tolerance. */
  tol?: number
  /** Small enough (and smooth enough) for float64 finite differences. Default true. */
  finiteDiff?: boolean
}

export const FLOATS: DType[] = ['float32', 'float16', 'bfloat16']
const F32: DType[] = ['float32']

const UNARY_POSITIVE: UnaryOp[] = ['log', 'sqrt', 'rsqrt', 'reciprocal']
const UNARY_SMOOTH: UnaryOp[] = [
  'neg',
  'exp',
  'square',
  'sigmoid',
  'logSigmoid',
  'tanh',
  'gelu',
  'silu',
  'softplus',
  'sin',
  'cos',
  'erf',
  'abs',
  'relu',
]
const UNARY_STEP: UnaryOp[] = ['sign', 'floor', 'ceil', 'round']

function unaryFn(op: UnaryOp): (x: Tensor) => Tensor {
  return (o as unknown as Record<string, (x: Tensor) => Tensor>)[op]
}

function cases(): OpCase[] {
  const list: OpCase[] = []
  const add = (c: OpCase) => list.push(c)

  // ---------------------------------------------------------------- creation & casts
  add({
    name: 'fill/full',
    kernels: ['fill'],
    dtypes: [...FLOATS, 'int32', 'uint32', 'bool'],
    inputs: { x: { shape: [3, 5], dist: 'int', dtype: 'int32', low: 0, high: 3 } },
    fn: ({ x }) => [
      o.full([7, 3], 1.25, { backend: x.backend }),
      o.zeros([2, 9], { backend: x.backend, dtype: 'int32' }),
    ],
    grad: false,
  })
  for (const to of ['int32', 'uint32', 'bool', 'float32', 'float16', 'bfloat16'] as DType[]) {
    add({
      name: `cast/float->${to}`,
      kernels: ['cast'],
      dtypes: F32,
      inputs: { x: { shape: [4, 33], dist: to === 'uint32' ? 'positive' : 'normal' } },
      fn: ({ x }) => o.cast(o.mul(x, 3), to),
      grad: to === 'float32' || to === 'float16' || to === 'bfloat16',
      // The rounding to a narrower type makes finite differences meaningless here.
      finiteDiff: false,
    })
  }
  add({
    name: 'cast/int->float',
    kernels: ['cast'],
    dtypes: F32,
    inputs: {
      i: { shape: [5, 7], dist: 'int', dtype: 'int32', low: -50, high: 50 },
      b: { shape: [5, 7], dist: 'bool', dtype: 'bool' },
    },
    fn: ({ i, b }) => [o.cast(i, 'float32'), o.cast(b, 'float32'), o.cast(b, 'int32')],
    grad: false,
  })

  // ---------------------------------------------------------------- unary
  for (const op of [...UNARY_SMOOTH, ...UNARY_POSITIVE]) {
    add({
      name: `unary/${op}`,
      kernels: ['unary'],
      dtypes: FLOATS,
      inputs: { x: { shape: [3, 37], dist: UNARY_POSITIVE.includes(op) ? 'positive' : 'normal' } },
      fn: ({ x }) => unaryFn(op)(x),
    })
  }
  for (const op of UNARY_STEP) {
    add({
      name: `unary/${op}`,
      kernels: ['unary'],
      dtypes: FLOATS,
      inputs: { x: { shape: [5, 19], dist: 'wide' } },
      fn: ({ x }) => unaryFn(op)(x),
      grad: false,
    })
  }
  add({
    name: 'unary/int',
    kernels: ['unary'],
    dtypes: F32,
    inputs: {
      i: { shape: [6, 11], dist: 'int', dtype: 'int32', low: -9, high: 9 },
      b: { shape: [4], dist: 'bool', dtype: 'bool' },
    },
    fn: ({ i, b }) => [o.neg(i), o.abs(i), o.square(i), o.sign(i), o.relu(i), o.logicalNot(b)],
    grad: false,
  })

  // ---------------------------------------------------------------- binary, compare, where
  const binaryShapes: [string, number[], number[]][] = [
    ['same', [7, 9], [7, 9]],
    ['broadcast', [3, 1, 5], [4, 1]],
    ['scalar', [2, 3, 17], []],
    ['rank-mismatch', [5], [3, 2, 5]],
  ]
  for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow'] as const) {
    for (const [label, sa, sb] of binaryShapes) {
      if ((op === 'pow' || op === 'div') && label === 'rank-mismatch') continue
      add({
        name: `binary/${op}/${label}`,
        kernels: ['binary'],
        dtypes: FLOATS,
        inputs: {
          a: { shape: sa, dist: op === 'pow' ? 'positive' : 'normal' },
          b: { shape: sb, dist: op === 'div' ? 'positive' : 'normal' },
        },
        fn: ({ a, b }) => (o as unknown as Record<string, (a: Tensor, b: Tensor) => Tensor>)[op](a, b),
      })
    }
  }
  add({
    name: 'binary/int',
    kernels: ['binary'],
    dtypes: F32,
    inputs: {
      a: { shape: [4, 6], dist: 'int', dtype: 'int32', low: -100, high: 100 },
      b: { shape: [6], dist: 'int', dtype: 'int32', low: -100, high: 100 },
      p: { shape: [4, 6], dist: 'bool', dtype: 'bool' },
      q: { shape: [1, 6], dist: 'bool', dtype: 'bool' },
    },
    fn: ({ a, b, p, q }) => [
      o.add(a, b),
      o.sub(a, b),
      o.mul(a, b),
      o.maximum(a, b),
      o.minimum(a, b),
      o.logicalAnd(p, q),
      o.logicalOr(p, q),
    ],
    grad: false,
  })
  for (const op of ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'] as const) {
    add({
      name: `compare/${op}`,
      kernels: ['compare'],
      dtypes: [...FLOATS],
      inputs: {
        a: { shape: [5, 8], dist: 'smallint' },
        b: { shape: [8], dist: 'smallint' },
        i: { shape: [3, 4], dist: 'int', dtype: 'int32', low: -3, high: 3 },
      },
      fn: ({ a, b, i }) => [
        (o as unknown as Record<string, (a: Tensor, b: Tensor | number) => Tensor>)[op](a, b),
        (o as unknown as Record<string, (a: Tensor, b: Tensor | number) => Tensor>)[op](i, 0),
      ],
      grad: false,
    })
  }
  add({
    name: 'where/broadcast',
    kernels: ['where', 'compare'],
    dtypes: FLOATS,
    inputs: {
      c: { shape: [4, 1, 6], dist: 'normal' },
      a: { shape: [3, 6], dist: 'normal' },
      b: { shape: [4, 3, 1], dist: 'normal' },
    },
    fn: ({ c, a, b }) => o.where(o.greater(c, 0), a, b),
  })

  // ---------------------------------------------------------------- reductions
  const reduceAxes: [string, number[], number[] | undefined, boolean][] = [
    ['all', [4, 7, 5], undefined, false],
    ['last', [6, 33], [-1], false],
    ['first-keep', [9, 4, 3], [0], true],
    ['middle', [3, 10, 7], [1], false],
    ['two', [5, 3, 6, 2], [0, 2], true],
    // Long rows, few of them: the CUDA backend splits each row over several blocks there.
    ['long-all', [40, 1000], undefined, false],
    ['long-last', [3, 17000], [-1], true],
  ]
  for (const op of ['sum', 'mean', 'max', 'min'] as const) {
    for (const [label, shape, axes, keepDims] of reduceAxes) {
      add({
        name: `reduce/${op}/${label}`,
        kernels: ['reduce'],
        dtypes: FLOATS,
        inputs: { x: { shape, dist: 'normal' } },
        fn: ({ x }) => ({ sum: o.sum, mean: o.mean, max: o.max, min: o.min })[op](x, axes, { keepDims }),
        tol: op === 'sum' || op === 'mean' ? 2 : 1,
        // Finite differences over tens of thousands of elements take minutes; the small cases
        // check the same gradient code.
        finiteDiff: !label.startsWith('long'),
      })
    }
  }
  add({
    name: 'reduce/int-sum',
    kernels: ['reduce'],
    dtypes: F32,
    inputs: { i: { shape: [7, 5], dist: 'int', dtype: 'int32', low: -20, high: 20 } },
    fn: ({ i }) => [o.sum(i, [0]), o.max(i, [1]), o.min(i)],
    grad: false,
  })
  add({
    // Long rows of int32 (split over blocks on CUDA): partial sums must stay exact past 2^31.
    name: 'reduce/int-long',
    kernels: ['reduce'],
    dtypes: F32,
    inputs: { i: { shape: [2, 20000], dist: 'int', dtype: 'int32', low: 200000, high: 300000 } },
    fn: ({ i }) => [o.sum(i), o.max(i, [1]), o.min(i, [1])],
    grad: false,
  })
  add({
    name: 'argReduce',
    kernels: ['argReduce'],
    dtypes: FLOATS,
    inputs: { x: { shape: [5, 17, 3], dist: 'normal' } },
    fn: ({ x }) => [o.argmax(x, 1), o.argmin(x, -1), o.argmax(x, 0)],
    grad: false,
  })
  add({
    name: 'logsumexp',
    kernels: ['reduce', 'unary', 'binary'],
    dtypes: FLOATS,
    inputs: { x: { shape: [4, 29], dist: 'normal' } },
    fn: ({ x }) => o.logsumexp(o.mul(x, 4), -1),
  })

  // ---------------------------------------------------------------- softmax & norms
  for (const [label, shape, axis] of [
    ['last', [5, 33], -1],
    ['wide', [2, 3, 129], -1],
    ['axis0', [7, 4], 0],
  ] as [string, number[], number][]) {
    add({
      name: `softmax/${label}`,
      kernels: ['softmax'],
      dtypes: FLOATS,
      inputs: { x: { shape, dist: 'normal' } },
      fn: ({ x }) => o.softmax(o.mul(x, 3), axis),
    })
    add({
      name: `logSoftmax/${label}`,
      kernels: ['logSoftmax'],
      dtypes: FLOATS,
      inputs: { x: { shape, dist: 'normal' } },
      fn: ({ x }) => o.logSoftmax(o.mul(x, 3), axis),
    })
  }
  add({
    name: 'rmsNorm/weight',
    kernels: ['rmsNorm'],
    dtypes: FLOATS,
    inputs: { x: { shape: [3, 5, 24], dist: 'normal' }, w: { shape: [24], dist: 'normal' } },
    fn: ({ x, w }) => o.rmsNorm(x, w, 1e-5),
  })
  add({
    name: 'rmsNorm/plain',
    kernels: ['rmsNorm'],
    dtypes: FLOATS,
    inputs: { x: { shape: [7, 13], dist: 'normal' } },
    fn: ({ x }) => o.rmsNorm(x),
  })
  add({
    name: 'layerNorm/affine',
    kernels: ['layerNorm'],
    dtypes: FLOATS,
    inputs: {
      x: { shape: [4, 19], dist: 'normal' },
      w: { shape: [19], dist: 'normal' },
      b: { shape: [19], dist: 'normal' },
    },
    fn: ({ x, w, b }) => o.layerNorm(x, w, b),
  })

  // ---------------------------------------------------------------- matmul
  const mm: [string, number[], number[], boolean, boolean, boolean][] = [
    ['1x1', [1, 1], [1, 1], false, false, true],
    ['odd', [17, 33], [33, 9], false, false, true],
    ['tA', [12, 5], [12, 7], true, false, true],
    ['tB', [6, 11], [10, 11], false, true, true],
    ['tAtB', [8, 3], [5, 8], true, true, true],
    ['batched-broadcast', [2, 1, 5, 7], [3, 7, 4], false, false, true],
    ['large', [64, 128], [128, 96], false, false, false],
    ['batched-large-tB', [3, 70, 64], [3, 50, 64], false, true, false],
  ]
  for (const [label, sa, sb, tA, tB, fd] of mm) {
    add({
      name: `matmul/${label}`,
      kernels: ['matmul'],
      dtypes: FLOATS,
      inputs: { a: { shape: sa }, b: { shape: sb } },
      fn: ({ a, b }) => o.matmul(a, b, { transposeA: tA, transposeB: tB }),
      tol: 2,
      finiteDiff: fd,
    })
  }
  add({
    name: 'linear',
    kernels: ['matmul', 'binary'],
    dtypes: FLOATS,
    inputs: { x: { shape: [2, 5, 12] }, w: { shape: [7, 12] }, b: { shape: [7] } },
    fn: ({ x, w, b }) => o.linear(x, w, b),
    tol: 2,
  })

  // ---------------------------------------------------------------- layout
  add({
    name: 'transpose/rank3',
    kernels: ['transpose'],
    dtypes: [...FLOATS, 'int32'],
    inputs: { x: { shape: [3, 5, 7], dist: 'normal' } },
    fn: ({ x }) => o.transpose(x, [2, 0, 1]),
  })
  add({
    name: 'transpose/rank4',
    kernels: ['transpose'],
    dtypes: FLOATS,
    inputs: { x: { shape: [2, 3, 4, 5] } },
    fn: ({ x }) => o.transpose(x, [0, 2, 1, 3]),
  })
  add({
    name: 'transpose/int',
    kernels: ['transpose'],
    dtypes: F32,
    inputs: { i: { shape: [5, 6], dist: 'int', dtype: 'int32', low: 0, high: 100 } },
    fn: ({ i }) => o.transpose(i),
    grad: false,
  })
  add({
    name: 'slice',
    kernels: ['slice'],
    dtypes: FLOATS,
    inputs: { x: { shape: [6, 9, 5] } },
    fn: ({ x }) => [o.slice(x, [1, 2, 0], [3, -1, 4]), o.slice(x, [-2], [1])],
  })
  add({
    name: 'concat',
    kernels: ['concat'],
    dtypes: FLOATS,
    inputs: { a: { shape: [2, 3, 4] }, b: { shape: [2, 5, 4] }, c: { shape: [2, 1, 4] } },
    fn: ({ a, b, c }) => [o.concat([a, b, c], 1), o.stack([a, a], 0)],
  })
  add({
    // Masks and positions are concatenated too (a growing KV cache's keep mask and slots).
    name: 'concat/int-bool',
    kernels: ['concat'],
    dtypes: F32,
    inputs: {
      p: { shape: [2, 3, 5], dist: 'bool', dtype: 'bool' },
      q: { shape: [2, 1, 5], dist: 'bool', dtype: 'bool' },
      i: { shape: [2, 3, 5], dist: 'int', dtype: 'int32', low: -50, high: 50 },
      j: { shape: [2, 2, 5], dist: 'int', dtype: 'int32', low: -50, high: 50 },
    },
    fn: ({ p, q, i, j }) => [o.concat([p, q, p], 1), o.concat([i, j], 1), o.stack([q, q], 0)],
    grad: false,
  })
  add({
    name: 'pad',
    kernels: ['pad'],
    dtypes: FLOATS,
    inputs: { x: { shape: [3, 4, 5] } },
    fn: ({ x }) =>
      o.pad(
        x,
        [
          [0, 1],
          [2, 0],
          [1, 3],
        ],
        0.5,
      ),
  })
  add({
    name: 'gather/axis0',
    kernels: ['gather'],
    dtypes: FLOATS,
    inputs: { x: { shape: [11, 6] }, i: { shape: [3, 4], dist: 'int', dtype: 'int32', low: 0, high: 11 } },
    fn: ({ x, i }) => o.gather(x, i, 0),
  })
  add({
    name: 'gather/axis1',
    kernels: ['gather'],
    dtypes: FLOATS,
    inputs: { x: { shape: [3, 9, 5] }, i: { shape: [7], dist: 'int', dtype: 'int32', low: 0, high: 9 } },
    fn: ({ x, i }) => o.gather(x, i, 1),
  })
  add({
    name: 'embedding',
    kernels: ['gather'],
    dtypes: FLOATS,
    inputs: {
      table: { shape: [13, 8] },
      ids: { shape: [2, 5], dist: 'int', dtype: 'int32', low: 0, high: 13 },
    },
    fn: ({ table, ids }) => o.embedding(table, ids),
  })
  add({
    name: 'takeAlongAxis',
    kernels: ['takeAlongAxis'],
    dtypes: FLOATS,
    inputs: {
      x: { shape: [4, 10, 3] },
      i: { shape: [4, 6, 3], dist: 'int', dtype: 'int32', low: 0, high: 10 },
    },
    fn: ({ x, i }) => o.takeAlongAxis(x, i, 1),
  })
  add({
    name: 'scatterAdd/duplicates',
    kernels: ['scatterAdd'],
    dtypes: FLOATS,
    inputs: {
      x: { shape: [3, 7] },
      i: { shape: [3, 12], dist: 'int', dtype: 'int32', low: 0, high: 7 },
      u: { shape: [3, 12] },
    },
    fn: ({ x, i, u }) => o.scatterAdd(x, i, u, 1),
    tol: 2,
  })
  add({
    name: 'topk/largest',
    kernels: ['topk'],
    dtypes: FLOATS,
    inputs: { x: { shape: [4, 37] } },
    fn: ({ x }) => {
      const { values, indices } = o.topk(x, 5)
      return [values, indices]
    },
  })
  add({
    name: 'topk/smallest-all',
    kernels: ['topk'],
    dtypes: F32,
    inputs: { x: { shape: [3, 9] } },
    fn: ({ x }) => {
      const { values, indices } = o.topk(x, 9, { largest: false })
      return [values, indices]
    },
  })
  add({
    name: 'topk/ties',
    kernels: ['topk'],
    dtypes: FLOATS,
    inputs: { x: { shape: [6, 20], dist: 'smallint' } },
    fn: ({ x }) => {
      const { values, indices } = o.topk(x, 7)
      return [values, indices]
    },
    grad: false,
  })
  add({
    name: 'topk/int',
    kernels: ['topk'],
    dtypes: F32,
    inputs: { i: { shape: [3, 16], dist: 'int', dtype: 'int32', low: -5, high: 5 } },
    fn: ({ i }) => {
      const { values, indices } = o.topk(i, 4)
      return [values, indices]
    },
    grad: false,
  })

  // ---------------------------------------------------------------- conv1d & rope
  for (const [label, cin, cout, K, opts] of [
    ['causal', 4, 6, 3, { padding: 'causal' }],
    ['same-dilated', 5, 3, 3, { padding: 'same', dilation: 2 }],
    ['depthwise-causal', 6, 6, 4, { padding: 'causal', groups: 6 }],
    ['grouped-valid', 6, 4, 2, { padding: 'valid', groups: 2, dilation: 3 }],
  ] as [string, number, number, number, o.Conv1dOptions][]) {
    add({
      name: `conv1d/${label}`,
      kernels: ['conv1d', 'conv1dBackwardInput', 'conv1dBackwardWeight'],
      dtypes: FLOATS,
      inputs: {
        x: { shape: [2, 11, cin] },
        w: { shape: [cout, cin / (opts.groups ?? 1), K] },
        b: { shape: [cout] },
      },
      fn: ({ x, w, b }) => o.conv1d(x, w, b, opts),
      tol: 2,
    })
  }
  add({
    name: 'rope/full',
    kernels: ['rope'],
    dtypes: FLOATS,
    inputs: {
      x: { shape: [2, 3, 7, 8] },
      p: { shape: [2, 7], dist: 'int', dtype: 'int32', low: 0, high: 4096 },
    },
    fn: ({ x, p }) => o.rope(x, p),
    tol: 2,
  })
  add({
    name: 'rope/partial-perhead',
    kernels: ['rope'],
    dtypes: FLOATS,
    inputs: {
      x: { shape: [1, 2, 5, 12] },
      p: { shape: [1, 2, 5], dist: 'int', dtype: 'int32', low: 0, high: 50 },
    },
    fn: ({ x, p }) => o.rope(x, p, { rotaryDim: 8, base: 500 }),
    tol: 2,
  })

  // ---------------------------------------------------------------- attention
  const att = (
    label: string,
    q: number[],
    kv: number[],
    dv: number,
    opts: (x: Record<string, Tensor>) => o.AttentionOptions,
    extra: Record<string, InputSpec> = {},
    fd = true,
  ) =>
    add({
      name: `attention/${label}`,
      kernels: ['attention', 'attentionBackward'],
      dtypes: FLOATS,
      inputs: { q: { shape: q }, k: { shape: kv }, v: { shape: [...kv.slice(0, 3), dv] }, ...extra },
      fn: (x) => o.attention(x.q, x.k, x.v, opts(x)),
      tol: 2,
      finiteDiff: fd,
    })
  att('dense', [2, 2, 5, 8], [2, 2, 7, 8], 8, () => ({}))
  att('causal', [1, 3, 9, 16], [1, 3, 9, 16], 16, () => ({ causal: true }))
  att('gqa-causal', [2, 4, 6, 8], [2, 2, 6, 8], 5, () => ({ causal: true }))
  att('decode-aligned', [1, 2, 1, 8], [1, 2, 9, 8], 8, () => ({ causal: true }))
  att('window-sinks', [1, 2, 13, 8], [1, 2, 13, 8], 8, () => ({ causal: true, window: 4, sinks: 2 }))
  att(
    'keep-mask',
    [2, 2, 10, 8],
    [2, 2, 10, 8],
    8,
    (x) => ({ causal: true, window: 3, sinks: 1, keep: x.keep }),
    { keep: { shape: [2, 2, 10], dist: 'bool', dtype: 'bool' } },
  )
  att(
    'per-head-positions',
    [1, 3, 6, 8],
    [1, 3, 6, 8],
    8,
    (x) => ({ causal: true, qPositions: x.pos, kPositions: x.pos }),
    { pos: { shape: [1, 3, 6], dist: 'int', dtype: 'int32', low: 0, high: 40 } },
  )
  att('headdim64', [1, 2, 33, 64], [1, 2, 33, 64], 64, () => ({ causal: true }), {}, false)
  att('headdim128', [1, 1, 70, 128], [1, 1, 70, 128], 128, () => ({ causal: true }), {}, false)

  // ---------------------------------------------------------------- gated delta rule
  for (const mode of ['recurrent', 'chunked'] as const) {
    add({
      name: `gatedDeltaRule/${mode}`,
      kernels: ['gatedDeltaRule', 'gatedDeltaRuleBackward'],
      dtypes: FLOATS,
      inputs: {
        q: { shape: [1, 2, 11, 4], dist: 'unit' },
        k: { shape: [1, 2, 11, 4], dist: 'unit' },
        v: { shape: [1, 2, 11, 3] },
        g: { shape: [1, 2, 11], dist: 'logdecay' },
        beta: { shape: [1, 2, 11], dist: 'prob' },
      },
      fn: ({ q, k, v, g, beta }) => {
        const r = o.gatedDeltaRule(q, k, v, g, beta, { mode, chunkSize: 4 })
        return [r.out, r.state]
      },
      tol: 3,
    })
  }
  add({
    name: 'gatedDeltaRule/initial-state',
    kernels: ['gatedDeltaRule', 'gatedDeltaRuleBackward'],
    dtypes: F32,
    inputs: {
      q: { shape: [2, 1, 7, 4], dist: 'unit' },
      k: { shape: [2, 1, 7, 4], dist: 'unit' },
      v: { shape: [2, 1, 7, 5] },
      g: { shape: [2, 1, 7], dist: 'logdecay' },
      beta: { shape: [2, 1, 7], dist: 'prob' },
      s: { shape: [2, 1, 4, 5], dtype: 'float32' },
    },
    fn: ({ q, k, v, g, beta, s }) => {
      const r = o.gatedDeltaRule(q, k, v, g, beta, { mode: 'chunked', chunkSize: 3, initialState: s })
      return [r.out, r.state]
    },
    tol: 3,
  })

  // ---------------------------------------------------------------- loss & optimiser
  add({
    name: 'crossEntropy',
    kernels: ['logSoftmax', 'takeAlongAxis'],
    dtypes: FLOATS,
    inputs: { logits: { shape: [6, 17] }, t: { shape: [6], dist: 'int', dtype: 'int32', low: 0, high: 17 } },
    fn: ({ logits, t }) => o.crossEntropy(logits, t),
  })
  add({
    name: 'adamW',
    kernels: ['adamW'],
    dtypes: ['float32'],
    inputs: {
      p: { shape: [5, 7] },
      g: { shape: [5, 7] },
      m: { shape: [5, 7] },
      v: { shape: [5, 7], dist: 'positive' },
    },
    fn: ({ p, g, m, v }) => {
      const r = o.adamWStep(p, g, m, v, 3, { lr: 1e-2, weightDecay: 0.1 })
      return [r.param, r.m, r.v]
    },
    grad: false,
  })
  return list
}

let cached: OpCase[] | undefined

/** Every conformance case (built once). */
export function allCases(): OpCase[] {
  cached ??= cases()
  return cached
}
