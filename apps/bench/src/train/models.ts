import type { MixerSpec } from './layers.js'
import type { ModelConfig } from './model.js'
import { type LteModelConfig, loadLte, loadMosa } from './packages.js'
import { BYTE_VOCAB_SIZE } from './tokenizer.js'

/** The models `train --model` knows; every one is the same block stack with a different mixer. */
export const MODEL_NAMES = [
  'dense',
  'mha',
  'gqa',
  'tpa',
  'mosa',
  'mosa-dense',
  'gdn',
  'lalte',
  'gdn-swa',
  'full',
] as const
export type ModelName = (typeof MODEL_NAMES)[number]

export const MODEL_DESCRIPTIONS: Record<ModelName, string> = {
  dense: 'multi-head attention from core ops (RoPE, causal SDPA)',
  mha: "@attnkit/tpa's MHA special case",
  gqa: "@attnkit/tpa's GQA special case (--kv-heads, default heads/4)",
  tpa: '@attnkit/tpa Tensor Product Attention (ranks Q6 K2 V2 unless --ranks)',
  mosa: "@attnkit/mosa: --keep-dense dense heads + the MoSA heads that match the dense layer's training FLOPs",
  'mosa-dense': '@attnkit/mosa layer with only dense heads (the FLOP-matched baseline of mosa)',
  gdn: '@attnkit/lte Gated DeltaNet in every layer',
  lalte: '@attnkit/lte laLTE: GDN layers with an LTE sparse-attention layer every --attention-every',
  'gdn-swa': '@attnkit/lte GDN with sink + sliding-window attention where laLTE has LTE',
  full: '@attnkit/lte full causal attention in every layer',
}

export interface ModelOptions {
  dModel: number
  layers: number
  headDim: number
  /** Query heads (default dModel / headDim). */
  heads?: number
  /** MoSA: the sequence length its FLOP matching is computed at. */
  seqLen: number
  mlpHidden?: number
  vocabSize?: number
  /** gqa: key/value heads (default heads / 4, at least 1). */
  kvHeads?: number
  /** tpa: [qRank, kRank, vRank]. */
  ranks?: [number, number, number]
  /** mosa: sparsity (tokens kept = seqLen / sparsity; default 8) and dense heads kept (default 1). */
  sparsity?: number
  keepDense?: number
  /** lalte / gdn-swa: one attention layer per this many (default 4), sinks, window, LTE pool. */
  attentionEvery?: number
  sinks?: number
  window?: number
  poolSize?: number
}

/** SwiGLU width ~8/3 dModel, a multiple of 64. */
export const defaultMlpHidden = (dModel: number): number => 64 * Math.ceil((8 * dModel) / 3 / 64)

function intOption(name: string, v: number | undefined, min = 1): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min))
    throw new Error(`model options: argument '${name}' expected an integer >= ${min}, got ${v}`)
}

/** The config of a named model at a size (loads the package its mixers come from). */
export async function modelConfig(name: ModelName, o: ModelOptions): Promise<ModelConfig> {
  for (const k of ['dModel', 'layers', 'headDim', 'seqLen'] as const) intOption(k, o[k])
  for (const k of ['heads', 'mlpHidden', 'kvHeads', 'attentionEvery', 'window', 'vocabSize'] as const)
    intOption(k, o[k])
  intOption('keepDense', o.keepDense, 0)
  intOption('sinks', o.sinks, 0)
  intOption('poolSize', o.poolSize, 0)
  const heads = o.heads ?? o.dModel / o.headDim
  if (!Number.isInteger(heads))
    throw new Error(
      `model options: argument 'headDim' expected a divisor of dModel=${o.dModel}, got ${o.headDim}`,
    )
  const base = {
    vocabSize: o.vocabSize ?? BYTE_VOCAB_SIZE,
    dModel: o.dModel,
    mlpHidden: o.mlpHidden ?? defaultMlpHidden(o.dModel),
    normEps: 1e-6,
  }
  const same = (spec: MixerSpec): ModelConfig => ({ name, ...base, layers: Array(o.layers).fill(spec) })
  const tpa = (config: Extract<MixerSpec, { kind: 'tpa' }>['config']) => same({ kind: 'tpa', config })
  const common = { dModel: o.dModel, heads, headDim: o.headDim }
  switch (name) {
    case 'dense':
      return same({ kind: 'dense', heads, kvHeads: heads, headDim: o.headDim, ropeBase: 10000 })
    case 'mha':
      return tpa({ ...common, variant: 'mha' })
    case 'gqa':
      return tpa({ ...common, variant: 'gqa', kvHeads: o.kvHeads ?? Math.max(1, Math.floor(heads / 4)) })
    case 'tpa': {
      const [qRank, kRank, vRank] = o.ranks ?? [6, 2, 2]
      return tpa({ ...common, variant: 'tpa', qRank, kRank, vRank })
    }
    case 'mosa':
    case 'mosa-dense': {
      const mosa = await loadMosa()
      const sparsity = o.sparsity ?? 8
      const keep = name === 'mosa' ? (o.keepDense ?? 1) : heads
      const sparseHeads =
        name === 'mosa'
          ? mosa.computeMatchedHeads({
              dModel: o.dModel,
              headDim: o.headDim,
              heads,
              denseHeads: keep,
              sparsity,
              seqLen: o.seqLen,
              flops: 'training',
            })
          : 0
      if (name === 'mosa' && sparseHeads === 0)
        throw new Error(
          `model 'mosa': no MoSA head fits the FLOP budget of ${heads - keep} dense heads at seqLen ${o.seqLen}, sparsity ${sparsity}`,
        )
      return same({
        kind: 'mosa',
        config: { dModel: o.dModel, headDim: o.headDim, denseHeads: keep, sparseHeads, sparsity },
      })
    }
    case 'gdn':
    case 'lalte':
    case 'gdn-swa':
    case 'full': {
      const lte = await loadLte()
      const opts = {
        vocabSize: base.vocabSize,
        dModel: o.dModel,
        numLayers: o.layers,
        headDim: o.headDim,
        attentionEvery: o.attentionEvery,
        sinks: o.sinks,
        window: o.window,
        poolSize: o.poolSize,
      }
      const build = {
        gdn: lte.gdnConfig,
        lalte: lte.laLTEConfig,
        'gdn-swa': lte.gdnSwaConfig,
        full: lte.fullAttentionConfig,
      }
      const c: LteModelConfig = build[name](opts)
      return {
        name,
        ...base,
        layers: c.layers.map(
          (kind): MixerSpec =>
            kind === 'gdn'
              ? { kind: 'gdn', config: lte.gdnLayerConfig(c) }
              : { kind: 'lte-attention', config: lte.attentionLayerConfig(c, kind) },
        ),
      }
    }
    default:
      throw new Error(`modelConfig: argument 'name' expected one of ${MODEL_NAMES.join(', ')}, got '${name}'`)
  }
}
