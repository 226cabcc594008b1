import {
  addCosts,
  attentionCost,
  type Backend,
  type Cost,
  type DType,
  matmulCost,
  type Rng,
  type Tensor,
  type TensorTree,
} from '@attnkit/core'
import type { Dims, Mode } from '../schema.js'
import type { MechanismAdapter, Workload } from './adapter.js'
import { disposeAll, gradientWorkload, requireFunctions } from './common.js'
import { attentionLabel } from './dense.js'

// The parts of @attnkit/mosa's API the adapter uses (checked at load time).
interface MosaConfig {
  dModel: number
  headDim: number
  denseHeads: number
  sparseHeads: number
  sparsity: number
  dtype?: DType
}
/** Tensors, with the config attached under a symbol by init / withConfig. */
type MosaParams = TensorTree
interface MosaCache {
  maxLen: number
  capacity: number
}
interface MosaModule {
  init(config: MosaConfig, rng: Rng, opts?: { backend?: Backend }): MosaParams
  withConfig(config: MosaConfig, tensors: TensorTree): MosaParams
  forward(params: MosaParams, x: Tensor, opts?: { config?: MosaConfig }): Tensor
  createCache(config: MosaConfig, opts: { batch: number; maxLen: number; backend?: Backend }): MosaCache
  prefill(params: MosaParams, cache: MosaCache, x: Tensor): Tensor
  decode(params: MosaParams, cache: MosaCache, xt: Tensor): Tensor
  disposeCache(cache: MosaCache): void
  cost(
    config: MosaConfig,
    opts: { seqLen: number; batch?: number; dtype?: DType },
  ): Cost & { trainingFlops: number; k: number }
  decodeCacheBytes(config: MosaConfig, opts: { batch?: number; maxLen: number; dtype?: DType }): number
  computeMatchedHeads(opts: {
    dModel: number
    headDim: number
    heads: number
    denseHeads?: number
    sparsity: number
    seqLen: number
  }): number
  selectedTokens(seqLen: number, sparsity: number): number
}

const PKG = '@attnkit/mosa'
/** Dense heads the hybrid keeps, at most (the rest of the budget goes to MoSA heads). */
const KEPT_DENSE_HEADS = 4
const SPARSITIES = [4, 8, 16]
/** Decode steps a cell may take after its prefill (warm-up plus timed runs). */
const DECODE_ROOM = 256

export function mosaAdapter(mod: Record<string, unknown>): MechanismAdapter {
  const mosa = requireFunctions<MosaModule>(mod, PKG, [
    'init',
    'withConfig',
    'forward',
    'createCache',
    'prefill',
    'decode',
    'disposeCache',
    'cost',
    'decodeCacheBytes',
    'computeMatchedHeads',
    'selectedTokens',
  ])

  /**
   * The layer of a variant. 'dense' runs the same code with dense heads only; 'sN' is the paper's
   * hybrid: up to 4 dense heads plus as many MoSA heads of sparsity N as cost the FLOPs of the
   * dense layer's other heads at the cell's length (matchSeqLen: the timed length, which the
   * smaller correctness check keeps so that it checks the same layer).
   */
  const config = (variant: string, d: Dims): MosaConfig => {
    const dModel = d.heads * d.headDim
    if (variant === 'dense')
      return { dModel, headDim: d.headDim, denseHeads: d.heads, sparseHeads: 0, sparsity: 1 }
    const sparsity = Number(variant.slice(1))
    if (!variant.startsWith('s') || !SPARSITIES.includes(sparsity))
      throw new Error(
        `mosa: unknown variant '${variant}' (expected dense, ${SPARSITIES.map((s) => `s${s}`).join(', ')})`,
      )
    const denseHeads = Math.min(KEPT_DENSE_HEADS, d.heads - 1)
    const sparseHeads = mosa.computeMatchedHeads({
      dModel,
      headDim: d.headDim,
      heads: d.heads,
      denseHeads,
      sparsity,
      seqLen: d.matchSeqLen ?? d.seqLen,
    })
    return { dModel, headDim: d.headDim, denseHeads, sparseHeads, sparsity }
  }

  /** One decode step: projections of the new token, attention over the dense cache and the MoSA caches. */
  const decodeCost = (c: MosaConfig, d: Dims, dtype: DType): Cost => {
    const B = d.batch
    const heads = c.denseHeads + c.sparseHeads
    const capacity = mosa.selectedTokens(d.seqLen, c.sparsity)
    const attn = (h: number, kLen: number) =>
      h > 0
        ? attentionCost({ batch: B, qHeads: h, kvHeads: h, qLen: 1, kLen, headDim: c.headDim }, dtype)
        : { flops: 0, bytes: 0 }
    return addCosts(
      matmulCost(B, 4 * heads * c.headDim + c.sparseHeads, c.dModel, dtype),
      attn(c.denseHeads, d.seqLen + 1),
      attn(c.sparseHeads, capacity),
    )
  }

  return {
    name: 'mosa',
    description: 'a Mixture of Sparse Attention layer (@attnkit/mosa): projections, routing, sparse heads',
    variants: [
      { name: 'dense', description: 'the same layer with dense heads only (the baseline)' },
      ...SPARSITIES.map((s) => ({
        name: `s${s}`,
        description: `sparsity ${s}: up to ${KEPT_DENSE_HEADS} dense heads + compute-matched MoSA heads keeping T/${s} tokens each`,
      })),
    ],
    modes: ['forward', 'forward+backward', 'decode'],
    requiredDims: ['batch', 'heads', 'seqLen', 'headDim'],
    label: attentionLabel,
    checkDims: (d, mode) => ({
      batch: 1,
      heads: d.heads,
      seqLen: Math.min(d.seqLen, mode === 'forward' ? 256 : 128),
      headDim: d.headDim,
      matchSeqLen: d.matchSeqLen ?? d.seqLen,
    }),
    cost(d, variant, mode: Mode, dtype) {
      const c = config(variant, d)
      if (mode === 'decode') return decodeCost(c, d, dtype)
      const f = mosa.cost(c, { seqLen: d.seqLen, batch: d.batch, dtype })
      return mode === 'forward+backward'
        ? { flops: f.trainingFlops, bytes: 2 * f.bytes }
        : { flops: f.flops, bytes: f.bytes }
    },
    setupCost: (d, variant, mode, dtype) => {
      if (mode !== 'decode') return { flops: 0, bytes: 0 }
      const f = mosa.cost(config(variant, d), { seqLen: d.seqLen, batch: d.batch, dtype })
      return { flops: f.flops, bytes: f.bytes }
    },
    note(d, variant, mode) {
      const c = config(variant, d)
      const layer =
        c.sparseHeads > 0
          ? `${c.denseHeads} dense + ${c.sparseHeads} MoSA heads (k = ${mosa.selectedTokens(d.seqLen, c.sparsity)} tokens each), FLOP-matched to ${d.heads} dense heads at T=${d.matchSeqLen ?? d.seqLen}`
          : `${c.denseHeads} dense heads`
      return `${layer}, with Q/K/V/O projections${mode === 'decode' ? `; cache filled by a prefill of ${d.seqLen} tokens` : ''}`
    },
    kvCacheBytes: (d, variant, dtype, context) =>
      mosa.decodeCacheBytes({ ...config(variant, d), dtype }, { batch: d.batch, maxLen: context, dtype }),
    // Top-k routing is discontinuous: 16-bit cells are checked computing in float32.
    checkDType: (dtype) => (dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype),
    toleranceFactor: () => 16,
    async setup(ctx, d, variant, mode): Promise<Workload> {
      // Parameters drawn on the CPU in float32, placed in the context's dtype: the config says so.
      const c = { ...config(variant, d), dtype: ctx.dtype }
      const tensors = await ctx.initOnCpu(() => mosa.init({ ...c, dtype: 'float32' }, ctx.rng))
      const params = mosa.withConfig(c, tensors)
      const shape = [d.batch, d.seqLen, c.dModel]
      if (mode === 'forward') {
        const x = ctx.normal(shape)
        return { run: () => ({ y: mosa.forward(params, x) }), dispose: () => disposeAll(params, x) }
      }
      if (mode === 'forward+backward') {
        const x = ctx.normal(shape)
        const w = ctx.normal(shape)
        return gradientWorkload(
          { params, x },
          (p) => mosa.forward(p.params, p.x, { config: c }),
          w,
          () => disposeAll(params, x),
        )
      }
      const cache = mosa.createCache(c, {
        batch: d.batch,
        maxLen: d.seqLen + DECODE_ROOM,
        backend: ctx.backend,
      })
      const prompt = ctx.normal(shape)
      mosa.prefill(params, cache, prompt).dispose()
      prompt.dispose()
      const xt = ctx.normal([d.batch, 1, c.dModel])
      return {
        run: () => ({ y: mosa.decode(params, cache, xt) }),
        dispose: () => {
          mosa.disposeCache(cache)
          disposeAll(params, xt)
        },
      }
    },
  }
}
