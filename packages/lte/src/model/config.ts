import { argumentError } from '@attnkit/core'
import { type AttentionConfig, type AttentionKind, validateAttentionConfig } from '../attention/layer.js'
import { SCORER_DEFAULTS } from '../attention/scorer.js'
import { GDN_DEFAULTS, type GdnConfig, validateGdnConfig } from '../gdn/layer.js'
import { assertIntArg, assertNumberArg } from '../validate.js'

/** What each layer's token mixer is. */
export type LayerKind = 'gdn' | AttentionKind

/**
 * A language model: token embedding -> layers, each x += mixer(rmsNorm(x)); x += swiglu(rmsNorm(x))
 * -> rmsNorm -> logits. The four models of the paper's comparison differ only in `layers`.
 */
export interface ModelConfig {
  /** 'laLTE', 'GDN', 'GDN+SWA' or 'Transformer' from the builders; free text otherwise. */
  name: string
  vocabSize: number
  dModel: number
  layers: LayerKind[]
  /** SwiGLU hidden width. */
  mlpHidden: number
  normEps: number
  /** Share the embedding matrix with the output projection (no lm_head.weight then). */
  tieEmbeddings: boolean
  gdn: Omit<GdnConfig, 'dModel'>
  attention: Omit<AttentionConfig, 'kind' | 'dModel'>
}

export interface ModelOptions {
  vocabSize: number
  dModel: number
  numLayers: number
  /** Head dimension of GDN (Dk = Dv) and attention heads (default 64); heads = dModel / headDim. */
  headDim?: number
  /** GQA key/value heads of the attention layers (default: as many as query heads). */
  numKvHeads?: number
  /**
   * Hybrids: one attention layer per this many layers, last in each group. Default 2: GDN and
   * attention alternate (attention at layers 1, 3, 5, ...), the layout of the paper's reference
   * configurations (idiap/hybrid-linear-sparse-attention, configs/gated_delta_net_lte_*.json).
   */
  attentionEvery?: number
  /** s (default 4). */
  sinks?: number
  /** w (default 64). */
  window?: number
  /** Decode pool capacity per KV head (default 256). */
  poolSize?: number
  /** L1 weight on the scores (default 1e-3). */
  l1Weight?: number
  mlpHidden?: number
  normEps?: number
  tieEmbeddings?: boolean
  ropeBase?: number
  gdn?: Partial<Omit<GdnConfig, 'dModel'>>
  attention?: Partial<Omit<AttentionConfig, 'kind' | 'dModel'>>
}

export const MODEL_DEFAULTS = {
  headDim: 64,
  attentionEvery: 2,
  sinks: 4,
  window: 64,
  poolSize: 256,
  l1Weight: 1e-3,
  normEps: 1e-6,
  ropeBase: 10000,
} as const

function baseConfig(name: string, o: ModelOptions, layers: LayerKind[]): ModelConfig {
  const op = name
  assertIntArg(op, 'vocabSize', o.vocabSize, 1)
  assertIntArg(op, 'dModel', o.dModel, 1)
  const headDim = assertIntArg(op, 'headDim', o.headDim ?? MODEL_DEFAULTS.headDim, 1)
  if (o.dModel % headDim !== 0) throw argumentError(op, 'headDim', `a divisor of dModel=${o.dModel}`, headDim)
  const heads = o.dModel / headDim
  const cfg: ModelConfig = {
    name,
    vocabSize: o.vocabSize,
    dModel: o.dModel,
    layers,
    mlpHidden: o.mlpHidden ?? 256 * Math.ceil((8 * o.dModel) / 3 / 256),
    normEps: o.normEps ?? MODEL_DEFAULTS.normEps,
    tieEmbeddings: o.tieEmbeddings ?? false,
    gdn: { numHeads: heads, headKDim: headDim, headVDim: headDim, ...GDN_DEFAULTS, ...o.gdn },
    attention: {
      numHeads: heads,
      numKvHeads: o.numKvHeads ?? heads,
      headDim,
      ropeBase: o.ropeBase ?? MODEL_DEFAULTS.ropeBase,
      sinks: o.sinks ?? MODEL_DEFAULTS.sinks,
      window: o.window ?? MODEL_DEFAULTS.window,
      poolSize: o.poolSize ?? MODEL_DEFAULTS.poolSize,
      threshold: 0.5,
      l1Weight: o.l1Weight ?? MODEL_DEFAULTS.l1Weight,
      scorer: { ...SCORER_DEFAULTS },
      ...o.attention,
    },
  }
  validateModelConfig(cfg)
  return cfg
}

function hybridLayers(name: string, o: ModelOptions, attn: AttentionKind): LayerKind[] {
  const n = assertIntArg(name, 'numLayers', o.numLayers, 1)
  const every = assertIntArg(name, 'attentionEvery', o.attentionEvery ?? MODEL_DEFAULTS.attentionEvery, 1)
  return Array.from({ length: n }, (_, i) => ((i + 1) % every === 0 ? attn : 'gdn'))
}

/** laLTE: GDN layers with an LTE sparse-attention layer every `attentionEvery` layers. */
export const laLTEConfig = (o: ModelOptions): ModelConfig =>
  baseConfig('laLTE', o, hybridLayers('laLTE', o, 'lte'))

/** Baseline: Gated DeltaNet only. */
export const gdnConfig = (o: ModelOptions): ModelConfig =>
  baseConfig(
    'GDN',
    o,
    Array.from({ length: assertIntArg('GDN', 'numLayers', o.numLayers, 1) }, () => 'gdn'),
  )

/** Baseline: the laLTE layout with sink + sliding-window attention in place of LTE. */
export const gdnSwaConfig = (o: ModelOptions): ModelConfig =>
  baseConfig('GDN+SWA', o, hybridLayers('GDN+SWA', o, 'swa'))

/** Baseline: a full-attention transformer of the same width, depth and MLP. */
export const fullAttentionConfig = (o: ModelOptions): ModelConfig =>
  baseConfig(
    'Transformer',
    o,
    Array.from({ length: assertIntArg('Transformer', 'numLayers', o.numLayers, 1) }, () => 'full'),
  )

export function validateModelConfig(c: ModelConfig): void {
  const op = `model '${c.name}'`
  assertIntArg(op, 'vocabSize', c.vocabSize, 1)
  assertIntArg(op, 'dModel', c.dModel, 1)
  assertIntArg(op, 'mlpHidden', c.mlpHidden, 1)
  assertNumberArg(op, 'normEps', c.normEps, 0)
  if (!Array.isArray(c.layers) || c.layers.length === 0)
    throw argumentError(op, 'layers', 'a non-empty array', c.layers)
  c.layers.forEach((k, i) => {
    if (!['gdn', 'full', 'swa', 'lte'].includes(k))
      throw argumentError(op, `layers[${i}]`, "'gdn' | 'full' | 'swa' | 'lte'", k)
  })
  if (c.layers.includes('gdn')) validateGdnConfig(gdnLayerConfig(c), `${op}.gdn`)
  for (const kind of ['full', 'swa', 'lte'] as const)
    if (c.layers.includes(kind)) validateAttentionConfig(attentionLayerConfig(c, kind), `${op}.attention`)
}

export const gdnLayerConfig = (c: ModelConfig): GdnConfig => ({ ...c.gdn, dModel: c.dModel })

export const attentionLayerConfig = (c: ModelConfig, kind: AttentionKind): AttentionConfig => ({
  ...c.attention,
  kind,
  dModel: c.dModel,
})
