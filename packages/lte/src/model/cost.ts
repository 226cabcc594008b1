import {
  addCosts,
  attentionCost,
  byteSize,
  type Cost,
  type DType,
  gatedDeltaRuleCost,
  matmulCost,
} from '@attnkit/core'
import { slotCount } from '../attention/decode-cache.js'
import { coreWindow } from '../attention/keep-rule.js'
import { layerReach } from '../attention/scorer.js'
import { attentionLayerConfig, gdnLayerConfig, type ModelConfig } from './config.js'
import { parameterShapes } from './params.js'

export interface CostShape {
  batch: number
  seqLen: number
  /** Storage dtype of activations and caches (default float32). */
  dtype?: DType
  /** LTE layers: retained tokens visible per query beyond sinks and window (default: poolSize). */
  retainedPerQuery?: number
}

export interface ModelCost {
  params: number
  /** Full-sequence forward (training or prefill). */
  forward: Cost
  /** Forward + backward, counted as 3x the forward's FLOPs and 2x its bytes (the usual rule). */
  forwardBackward: Cost
  /** One decode step after `contextLen` tokens. */
  decodeStep(contextLen: number): Cost
  /** Decode cache bytes after `contextLen` tokens (flat for laLTE, GDN, GDN+SWA; linear for full). */
  cacheBytes(contextLen: number): number
}

const linearCost = (rows: number, inp: number, out: number, dtype: DType): Cost =>
  matmulCost(rows, out, inp, dtype)

/** Analytic FLOPs and bytes of a model (core's per-op cost model, summed over layers). */
export function modelCost(c: ModelConfig, shape: CostShape): ModelCost {
  const dtype = shape.dtype ?? 'float32'
  const B = shape.batch
  const D = c.dModel
  const elt = byteSize(dtype)
  const params = [...parameterShapes(c).values()].reduce((n, s) => n + s.reduce((a, d) => a * d, 1), 0)
  const retained = shape.retainedPerQuery ?? c.attention.poolSize

  const layerCost = (kind: ModelConfig['layers'][number], T: number, kLen: number, decode: boolean): Cost => {
    const rows = B * T
    const mlp = addCosts(
      linearCost(rows, D, c.mlpHidden, dtype),
      linearCost(rows, D, c.mlpHidden, dtype),
      linearCost(rows, c.mlpHidden, D, dtype),
    )
    if (kind === 'gdn') {
      const g = gdnLayerConfig(c)
      const [H, Dk, Dv, K] = [g.numHeads, g.headKDim, g.headVDim, g.convSize]
      const proj = addCosts(
        linearCost(rows, D, 2 * H * Dk + 2 * H * Dv + 2 * H, dtype),
        linearCost(rows, H * Dv, D, dtype),
        { flops: 2 * rows * (2 * H * Dk + H * Dv) * K, bytes: 0 },
      )
      const rule = decode
        ? { flops: 7 * B * H * Dk * Dv, bytes: 2 * B * H * Dk * Dv * 4 }
        : gatedDeltaRuleCost(
            { batch: B, heads: H, seqLen: T, keyDim: Dk, valueDim: Dv, chunkSize: g.chunkSize },
            dtype,
          )
      return addCosts(proj, rule, mlp)
    }
    const a = attentionLayerConfig(c, kind)
    const [H, Hk, Dh] = [a.numHeads, a.numKvHeads, a.headDim]
    const proj = addCosts(linearCost(rows, D, (H + 2 * Hk) * Dh, dtype), linearCost(rows, H * Dh, D, dtype))
    const attn = attentionCost(
      {
        batch: B,
        qHeads: H,
        kvHeads: Hk,
        qLen: T,
        kLen,
        headDim: Dh,
        causal: !decode,
        window: kind === 'full' || decode ? 0 : coreWindow(a.window),
        sinks: kind === 'full' || decode ? 0 : a.sinks,
        extraKeysPerQuery: kind === 'lte' && !decode ? retained : undefined,
      },
      dtype,
    )
    let scorer: Cost = { flops: 0, bytes: 0 }
    if (kind === 'lte') {
      const s = a.scorer
      for (let l = 0; l < s.layers; l++) {
        const cin = l === 0 ? D : s.hidden
        const cout = l === s.layers - 1 ? Hk : s.hidden
        scorer = addCosts(scorer, {
          flops: 2 * rows * cin * cout * s.kernelSize,
          bytes: cin * cout * s.kernelSize * elt,
        })
      }
    }
    return addCosts(proj, attn, scorer, mlp)
  }

  const T = shape.seqLen
  const head = linearCost(B * T, D, c.vocabSize, dtype)
  const forward = addCosts(head, ...c.layers.map((k) => layerCost(k, T, T, false)))
  const decodeStep = (L: number): Cost =>
    addCosts(
      linearCost(B, D, c.vocabSize, dtype),
      ...c.layers.map((k) => {
        const kLen =
          k === 'full' ? L + 1 : Math.min(L, slotCount(attentionLayerConfig(c, k === 'gdn' ? 'swa' : k))) + 1
        return layerCost(k, 1, kLen, true)
      }),
    )
  const cacheBytes = (L: number): number =>
    c.layers.reduce((n, k) => {
      if (k === 'gdn') {
        const g = gdnLayerConfig(c)
        return (
          n +
          B *
            (g.numHeads * g.headKDim * g.headVDim * 4 +
              (g.convSize - 1) * g.numHeads * (2 * g.headKDim + g.headVDim) * elt)
        )
      }
      const a = attentionLayerConfig(c, k)
      if (k === 'full') return n + B * a.numKvHeads * L * 2 * a.headDim * elt
      const slots = slotCount(a)
      const scorerBuf =
        k === 'lte'
          ? B * (2 * layerReach(a.scorer) + 1) * (D + (a.scorer.layers - 1) * a.scorer.hidden) * elt
          : 0
      return n + B * a.numKvHeads * slots * (2 * a.headDim * elt + 4 + elt) + scorerBuf
    }, 0)
  return {
    params,
    forward,
    forwardBackward: { flops: 3 * forward.flops, bytes: 2 * forward.bytes },
    decodeStep,
    cacheBytes,
  }
}
