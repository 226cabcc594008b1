import {
  addCosts,
  byteSize,
  type Cost,
  type DType,
  gatedDeltaRuleCost,
  matmulCost,
  type Rng,
  reshape,
  scaleCost,
  slice,
  type Tensor,
  type TensorTree,
} from '@attnkit/core'
import type { Dims } from '../schema.js'
import type { MechanismAdapter, Workload } from './adapter.js'
import { disposeAll, gradientWorkload, requireFunctions } from './common.js'
import { attentionLabel } from './dense.js'

// The parts of @attnkit/lte's API the adapters use (checked at load time).
interface GdnConfig {
  dModel: number
  numHeads: number
  headKDim: number
  headVDim: number
  convSize: number
  chunkSize: number
  normEps: number
}
type GdnState = Record<'S' | 'convQ' | 'convK' | 'convV', Tensor>
interface ModelCache {
  batch: number
  position: number
}
interface ModelCost {
  forward: Cost
  forwardBackward: Cost
  decodeStep(contextLen: number): Cost
  cacheBytes(contextLen: number): number
}
interface LteModel {
  config: { attention: { sinks: number; window: number; poolSize: number } }
  init(rng: Rng, opts?: { dtype?: DType }): TensorTree
  forward(
    params: TensorTree,
    tokens: Tensor,
    opts?: { training?: boolean },
  ): { logits: Tensor; penalty: Tensor }
  loss(params: TensorTree, tokens: Tensor, targets: Tensor, opts?: { training?: boolean }): Tensor
  createCache(opts: { batch: number; dtype?: DType }): ModelCache
  decode(params: TensorTree, cache: ModelCache, tokens: Tensor): Tensor
  cost(shape: { batch: number; seqLen: number; dtype?: DType }): ModelCost
}
interface LteModule {
  GDN_DEFAULTS: { convSize: number; chunkSize: number; normEps: number }
  initGdn(c: GdnConfig, rng: Rng, dtype?: DType): TensorTree
  gdnForward(
    c: GdnConfig,
    p: TensorTree,
    x: Tensor,
    opts?: { state?: GdnState; returnState?: boolean },
  ): { y: Tensor; state?: GdnState }
  gdnDecode(c: GdnConfig, p: TensorTree, state: GdnState, xt: Tensor): Tensor
  laLTE(o: ModelOptions): LteModel
  gdnSwaModel(o: ModelOptions): LteModel
  disposeCache(cache: ModelCache): void
  cacheTensors(cache: ModelCache): Tensor[]
}
interface ModelOptions {
  vocabSize: number
  dModel: number
  numLayers: number
  headDim: number
}

const PKG = '@attnkit/lte'

function loadLte(mod: Record<string, unknown>): LteModule {
  const lte = requireFunctions<LteModule>(mod, PKG, [
    'initGdn',
    'gdnForward',
    'gdnDecode',
    'laLTE',
    'gdnSwaModel',
    'disposeCache',
    'cacheTensors',
  ])
  if (typeof lte.GDN_DEFAULTS !== 'object') throw new Error(`${PKG} does not export GDN_DEFAULTS`)
  return lte
}

/**
 * Decode caches of constant size are filled by a prefill (GDN) or decode steps (laLTE) of at
 * most this many tokens: beyond it neither the cache's size nor a step's cost depends on the
 * context, and filling 128K tokens would cost minutes of set-up for the same timing.
 */
const GDN_PREFILL_CAP = 4096

// ------------------------------------------------------------------ Gated DeltaNet layer

const gdnConfig = (lte: LteModule, d: Dims): GdnConfig => ({
  dModel: d.heads * d.headDim,
  numHeads: d.heads,
  headKDim: d.headDim,
  headVDim: d.headDim,
  ...lte.GDN_DEFAULTS,
})

/** A GDN layer's FLOPs and bytes over `rows` tokens (projections, short convolutions, the delta rule). */
function gdnLayerCost(c: GdnConfig, batch: number, seqLen: number, decode: boolean, dtype: DType): Cost {
  const { dModel: D, numHeads: H, headKDim: Dk, headVDim: Dv, convSize: K } = c
  const rows = batch * (decode ? 1 : seqLen)
  const proj = addCosts(
    matmulCost(rows, 2 * H * Dk + 2 * H * Dv + 2 * H, D, dtype),
    matmulCost(rows, D, H * Dv, dtype),
    { flops: 2 * rows * (2 * H * Dk + H * Dv) * K, bytes: 0 },
  )
  const rule = decode
    ? { flops: 7 * batch * H * Dk * Dv, bytes: 2 * batch * H * Dk * Dv * 4 }
    : gatedDeltaRuleCost({ batch, heads: H, seqLen, keyDim: Dk, valueDim: Dv, chunkSize: c.chunkSize }, dtype)
  return addCosts(proj, rule)
}

export function gdnAdapter(mod: Record<string, unknown>): MechanismAdapter {
  const lte = loadLte(mod)
  const prefillLen = (d: Dims) => Math.min(d.seqLen, GDN_PREFILL_CAP)
  return {
    name: 'gdn',
    description: 'a Gated DeltaNet layer (@attnkit/lte): projections, short convolutions, chunked delta rule',
    variants: [{ name: 'layer', description: 'one GDN layer, dModel = heads x headDim, Dk = Dv = headDim' }],
    modes: ['forward', 'forward+backward', 'decode'],
    requiredDims: ['batch', 'heads', 'seqLen', 'headDim'],
    label: attentionLabel,
    checkDims: (d, mode) => ({
      batch: 1,
      heads: Math.min(d.heads, 2),
      seqLen: Math.min(d.seqLen, mode === 'forward' ? 192 : 96),
      headDim: Math.min(d.headDim, 32),
    }),
    cost(d, _v, mode, dtype) {
      const c = gdnConfig(lte, d)
      const f = gdnLayerCost(c, d.batch, d.seqLen, mode === 'decode', dtype)
      return mode === 'forward+backward' ? { flops: 3 * f.flops, bytes: 2 * f.bytes } : f
    },
    setupCost: (d, _v, mode, dtype) =>
      mode === 'decode'
        ? gdnLayerCost(gdnConfig(lte, d), d.batch, prefillLen(d), false, dtype)
        : { flops: 0, bytes: 0 },
    note: (d, _v, mode) =>
      mode === 'decode'
        ? `state filled by a prefill of ${prefillLen(d)} tokens (its size and a step's cost do not depend on the context)`
        : undefined,
    kvCacheBytes(d, _v, dtype) {
      const c = gdnConfig(lte, d)
      return (
        d.batch *
        (c.numHeads * c.headKDim * c.headVDim * 4 +
          (c.convSize - 1) * c.numHeads * (2 * c.headKDim + c.headVDim) * byteSize(dtype))
      )
    },
    toleranceFactor: () => 16,
    async setup(ctx, d, _v, mode): Promise<Workload> {
      const c = gdnConfig(lte, d)
      const params = await ctx.initOnCpu(() => lte.initGdn(c, ctx.rng, 'float32'))
      const D = c.dModel
      if (mode === 'forward') {
        const x = ctx.normal([d.batch, d.seqLen, D])
        return { run: () => ({ y: lte.gdnForward(c, params, x).y }), dispose: () => disposeAll(params, x) }
      }
      if (mode === 'forward+backward') {
        const x = ctx.normal([d.batch, d.seqLen, D])
        const w = ctx.normal([d.batch, d.seqLen, D])
        return gradientWorkload(
          { params, x },
          (p) => lte.gdnForward(c, p.params, p.x).y,
          w,
          () => disposeAll(params, x),
        )
      }
      const prompt = ctx.normal([d.batch, prefillLen(d), D])
      const { y, state } = lte.gdnForward(c, params, prompt, { returnState: true })
      y.dispose()
      prompt.dispose()
      const xt = ctx.normal([d.batch, 1, D])
      return {
        run: () => ({ y: lte.gdnDecode(c, params, state!, xt) }),
        dispose: () => disposeAll(params, state, xt),
      }
    },
  }
}

// ------------------------------------------------------------------ laLTE block (and GDN+SWA)

/** A 4-layer block (GDN and attention alternating: @attnkit/lte's default, the paper's) with embeddings, MLPs and logits. */
const LAYERS = 4
const VOCAB = 512

export function lalteAdapter(mod: Record<string, unknown>): MechanismAdapter {
  const lte = loadLte(mod)
  const model = (variant: string, d: Dims): LteModel => {
    const o = { vocabSize: VOCAB, dModel: d.heads * d.headDim, numLayers: LAYERS, headDim: d.headDim }
    if (variant === 'lalte') return lte.laLTE(o)
    if (variant === 'gdn-swa') return lte.gdnSwaModel(o)
    throw new Error(`lalte: unknown variant '${variant}' (expected lalte, gdn-swa)`)
  }
  // Decode steps that fill the constant-size attention cache (sinks, window, pool) and then some.
  const fillSteps = (m: LteModel, d: Dims) => {
    const a = m.config.attention
    return Math.min(d.seqLen, a.sinks + a.window + a.poolSize + 32)
  }
  return {
    name: 'lalte',
    description: `laLTE (@attnkit/lte): ${LAYERS} layers, 3 Gated DeltaNet : 1 sparse attention with learnable token eviction`,
    variants: [
      { name: 'lalte', description: 'GDN layers + LTE attention (sinks, window, learned retained pool)' },
      {
        name: 'gdn-swa',
        description: 'the same with sink + sliding-window attention (no learned retention)',
      },
    ],
    modes: ['forward', 'forward+backward', 'decode'],
    requiredDims: ['batch', 'heads', 'seqLen', 'headDim'],
    label: attentionLabel,
    checkDims: (d, mode) => ({
      batch: 1,
      heads: Math.min(d.heads, 2),
      seqLen: Math.min(d.seqLen, mode === 'forward' ? 160 : 96),
      headDim: Math.min(d.headDim, 32),
    }),
    cost(d, variant, mode, dtype) {
      const c = model(variant, d).cost({ batch: d.batch, seqLen: d.seqLen, dtype })
      if (mode === 'decode') return c.decodeStep(d.seqLen)
      return mode === 'forward+backward' ? c.forwardBackward : c.forward
    },
    setupCost(d, variant, mode, dtype) {
      if (mode !== 'decode') return { flops: 0, bytes: 0 }
      const m = model(variant, d)
      return scaleCost(m.cost({ batch: d.batch, seqLen: 1, dtype }).decodeStep(d.seqLen), fillSteps(m, d))
    },
    note: (d, variant, mode) =>
      mode === 'decode'
        ? `cache filled by ${fillSteps(model(variant, d), d)} decode steps (constant size from there; a step's cost does not depend on the context beyond it)`
        : `${LAYERS} layers with embeddings, MLPs and a ${VOCAB}-token vocabulary`,
    kvCacheBytes: (d, variant, dtype, context) =>
      model(variant, d).cost({ batch: d.batch, seqLen: context, dtype }).cacheBytes(context),
    // LTE's keep threshold is discontinuous: 16-bit cells are checked computing in float32.
    checkDType: (dtype) => (dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype),
    toleranceFactor: () => 16,
    async setup(ctx, d, variant, mode): Promise<Workload> {
      const m = model(variant, d)
      const params = await ctx.initOnCpu(() => m.init(ctx.rng, { dtype: 'float32' }))
      if (mode === 'forward') {
        const tokens = ctx.randint([d.batch, d.seqLen], 0, VOCAB)
        return {
          run: () => {
            const { logits, penalty } = m.forward(params, tokens, { training: false })
            penalty.dispose()
            return { logits }
          },
          dispose: () => disposeAll(params, tokens),
        }
      }
      if (mode === 'forward+backward') {
        const tokens = ctx.randint([d.batch, d.seqLen], 0, VOCAB)
        const targets = ctx.randint([d.batch, d.seqLen], 0, VOCAB)
        // The loss is already a scalar: a cotangent of 1 leaves the gradients as they are.
        const one = ctx.uniform([], 1, 1)
        return gradientWorkload(
          params,
          (p) => m.loss(p, tokens, targets, { training: true }),
          one,
          () => disposeAll(params, tokens, targets),
        )
      }
      const cache = m.createCache({ batch: d.batch, dtype: ctx.dtype })
      const steps = fillSteps(m, d)
      const prompt = ctx.randint([steps, d.batch], 0, VOCAB)
      for (let t = 0; t < steps; t++) {
        const tok = tokenRow(prompt, t)
        m.decode(params, cache, tok).dispose()
        tok.dispose()
        // Bound the queue: hundreds of unsynchronised steps crash Dawn on lavapipe (SIGSEGV).
        if (t % 32 === 31) await ctx.backend.synchronize()
      }
      prompt.dispose()
      const next = ctx.randint([d.batch], 0, VOCAB)
      return {
        run: () => ({ logits: m.decode(params, cache, next) }),
        dispose: () => {
          lte.disposeCache(cache)
          disposeAll(params, next)
        },
      }
    },
  }
}

/** Row `row` of int32 [rows, B] token ids, as [B]. */
function tokenRow(t: Tensor, row: number): Tensor {
  const s = slice(t, [row, 0], [1, t.shape[1]])
  const r = reshape(s, [t.shape[1]])
  s.dispose()
  return r
}
