import {
  add,
  argmax,
  cast,
  crossEntropy,
  type DType,
  embedding,
  flattenTree,
  linear,
  mapTree,
  mul,
  type Rng,
  rmsNorm,
  scalar,
  silu,
  slice,
  sum,
  type Tensor,
  type TensorTree,
  tensor,
  tidy,
} from '@attnkit/core'
import { IGNORE } from './data/niah.js'
import { cacheBytes, createMixer, type Mixer, type MixerCache, type MixerSpec } from './layers.js'

/**
 * A decoder-only language model: tied token embedding -> blocks, each
 *   x += mixer(rmsNorm(x)); x += swiglu(rmsNorm(x))
 * -> rmsNorm -> logits = h E^T. Only the mixers differ between the mechanisms compared.
 */
export interface ModelConfig {
  /** Preset name or free text (goes into logs and checkpoints). */
  name: string
  vocabSize: number
  dModel: number
  /** SwiGLU hidden width. */
  mlpHidden: number
  normEps: number
  /** One mixer per block. */
  layers: MixerSpec[]
}

export type BlockParams = {
  attnNorm: Tensor
  mixer: TensorTree
  mlpNorm: Tensor
  mlp: { gate: Tensor; up: Tensor; down: Tensor }
}

export type ModelParams = {
  /** [vocabSize, dModel], also the output projection (tied). */
  embed: Tensor
  blocks: BlockParams[]
  norm: Tensor
}

export interface ForwardContext {
  training: boolean
  /** Compute dtype: params are cast to it inside the differentiated function (masters stay float32). */
  dtype: DType
}

export function validateModelConfig(c: ModelConfig): void {
  const bad = (arg: string, expected: string, got: unknown) => {
    throw new Error(
      `model config '${c.name}': argument '${arg}' expected ${expected}, got ${JSON.stringify(got)}`,
    )
  }
  for (const k of ['vocabSize', 'dModel', 'mlpHidden'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1) bad(k, 'an integer >= 1', c[k])
  if (!(c.normEps > 0)) bad('normEps', 'a number > 0', c.normEps)
  if (!Array.isArray(c.layers) || c.layers.length === 0)
    bad('layers', 'a non-empty array of mixer specs', c.layers)
}

/** Casts every float tensor of a tree (non-tensor leaves, such as a MoSA layer's config, are kept). */
export function castTree<T>(tree: T, dtype: DType): T {
  return mapTree(tree, (t) => (t.dtype === dtype ? t : cast(t, dtype))) as T
}

export class Model {
  private constructor(
    readonly config: ModelConfig,
    readonly mixers: Mixer[],
  ) {}

  static async create(config: ModelConfig): Promise<Model> {
    validateModelConfig(config)
    return new Model(config, await Promise.all(config.layers.map(createMixer)))
  }

  /** Float32 parameters (GPT-2 style: N(0, 0.02), residual outputs scaled by 1/sqrt(2 layers)). */
  init(rng: Rng): ModelParams {
    const { dModel: D, mlpHidden: F, vocabSize: V } = this.config
    const outStd = 0.02 / Math.sqrt(2 * this.mixers.length)
    const ones = () => tensor(new Float32Array(D).fill(1), [D])
    const blocks = this.mixers.map((m, i) => {
      const r = rng.fork(i + 1)
      return {
        attnNorm: ones(),
        mixer: m.init(r.fork(0), D, outStd),
        mlpNorm: ones(),
        mlp: {
          gate: r.normal([F, D], 0, 0.02),
          up: r.normal([F, D], 0, 0.02),
          down: r.normal([D, F], 0, outStd),
        },
      }
    })
    return { embed: rng.fork(0).normal([V, D], 0, 0.02), blocks, norm: ones() }
  }

  paramCount(params: ModelParams): number {
    return flattenTree(params).reduce((n, t) => n + t.size, 0)
  }

  private block(b: BlockParams, m: Mixer, x: Tensor, ctx: ForwardContext): { x: Tensor; penalty?: Tensor } {
    const eps = this.config.normEps
    const r = m.forward(b.mixer, rmsNorm(x, b.attnNorm, eps), ctx)
    const x1 = add(x, r.y)
    const h = rmsNorm(x1, b.mlpNorm, eps)
    return { x: add(x1, mlp(b.mlp, h)), penalty: r.penalty }
  }

  /**
   * tokens int32 [B, T] -> final normed hidden states [B, T, dModel] and the sum of the LTE
   * layers' penalties (float32 scalar; 0 without LTE layers). Params in the compute dtype;
   * rows are gathered from `lookup` and then cast, so with the float32 master table the
   * embedding's gradient (a scatter-add over every token) accumulates in float32.
   */
  hidden(
    params: ModelParams,
    tokens: Tensor,
    ctx: ForwardContext,
    lookup: Tensor = params.embed,
  ): { h: Tensor; penalty: Tensor } {
    return tidy(() => {
      let x = embedding(lookup, tokens)
      if (x.dtype !== ctx.dtype) x = cast(x, ctx.dtype)
      let penalty = scalar(0, 'float32')
      this.mixers.forEach((m, i) => {
        const r = this.block(params.blocks[i], m, x, ctx)
        x = r.x
        if (r.penalty) penalty = add(penalty, cast(r.penalty, 'float32'))
      })
      return { h: rmsNorm(x, params.norm, this.config.normEps), penalty }
    })
  }

  /** Float32 logits of hidden states (the tied output projection). */
  logits(params: ModelParams, h: Tensor): Tensor {
    return tidy(() => cast(linear(h, params.embed), 'float32'))
  }

  /**
   * Next-token cross-entropy, float32: the mean over targets that are not IGNORE, or with
   * `weights` (float32 [B, T]) the weighted sum; plus, when training, the LTE penalty.
   * `masters` are the float32 parameters: the cast to the compute dtype happens here, inside
   * whatever differentiates this, so gradients come back in float32.
   */
  loss(masters: ModelParams, inputs: Tensor, targets: Tensor, ctx: ForwardContext, weights?: Tensor): Tensor {
    return tidy(() => {
      const p = castTree(masters, ctx.dtype)
      const { h, penalty } = this.hidden(p, inputs, ctx, masters.embed)
      const logits = this.logits(p, h)
      const ce = weights
        ? sum(mul(crossEntropy(logits, targets, { ignoreIndex: IGNORE, reduction: 'none' }), weights))
        : crossEntropy(logits, targets, { ignoreIndex: IGNORE })
      return ctx.training ? add(ce, penalty) : ce
    })
  }

  /**
   * Positions from..T-1 only (they alone go through the output projection): argmax int32
   * [B, T - from] and the mean cross-entropy against targets[:, from:] (IGNORE skipped).
   */
  predict(
    params: ModelParams,
    inputs: Tensor,
    targets: Tensor,
    from: number,
    ctx: ForwardContext,
  ): { argmax: Tensor; loss: Tensor } {
    return tidy(() => {
      const p = castTree(params, ctx.dtype)
      const { h } = this.hidden(p, inputs, ctx, params.embed)
      const [B, T, D] = h.shape
      const logits = this.logits(p, slice(h, [0, from, 0], [B, T - from, D]))
      const tail = slice(targets, [0, from], [B, T - from])
      return { argmax: argmax(logits, -1), loss: crossEntropy(logits, tail, { ignoreIndex: IGNORE }) }
    })
  }

  /** Whether every mixer can decode token by token ('step') or at least fill a cache ('prefill'). */
  decodeSupport(): { step: boolean; prefill: boolean; missing: string[] } {
    const step = this.mixers.every((m) => m.createCache && m.step)
    const prefill = this.mixers.every((m) => m.createCache && m.prefill)
    const missing = this.mixers.filter((m) => !(m.createCache && (m.step || m.prefill))).map((m) => m.label)
    return { step, prefill, missing }
  }

  createCache(batch: number, maxLen: number, dtype: DType): ModelCache {
    const caches: MixerCache[] = []
    try {
      for (const m of this.mixers) {
        if (!m.createCache) throw new Error(`decode: the ${m.label} layer has no decode cache in this bench`)
        caches.push(m.createCache(batch, maxLen, dtype))
      }
    } catch (e) {
      for (const c of caches) c.dispose()
      throw e
    }
    return new ModelCache(caches)
  }

  private cached(
    params: ModelParams,
    cache: ModelCache,
    tokens: Tensor,
    run: (m: Mixer, p: TensorTree, c: MixerCache, x: Tensor) => Tensor,
  ): Tensor {
    const eps = this.config.normEps
    let x = embedding(params.embed, tokens)
    this.mixers.forEach((m, i) => {
      const b = params.blocks[i]
      const h = rmsNorm(x, b.attnNorm, eps)
      const y = run(m, b.mixer, cache.layers[i], h)
      const next = tidy(() => {
        const x1 = add(x, y)
        return add(x1, mlp(b.mlp, rmsNorm(x1, b.mlpNorm, eps)))
      })
      for (const t of [x, h, y]) t.dispose()
      x = next
    })
    const out = tidy(() => rmsNorm(x, params.norm, eps))
    x.dispose()
    return out
  }

  /** tokens int32 [B, T] through the caches at once; returns final hidden states [B, T, D]. */
  prefill(params: ModelParams, cache: ModelCache, tokens: Tensor): Tensor {
    return this.cached(params, cache, tokens, (m, p, c, x) => {
      if (!m.prefill) throw new Error(`prefill: the ${m.label} layer has no prefill in this bench`)
      return m.prefill(p, c, x)
    })
  }

  /** tokens int32 [B, 1] -> final hidden states [B, 1, D]; every cache advances one token. */
  step(params: ModelParams, cache: ModelCache, tokens: Tensor): Tensor {
    return this.cached(params, cache, tokens, (m, p, c, x) => {
      if (!m.step) throw new Error(`decode: the ${m.label} layer cannot decode token by token in this bench`)
      return m.step(p, c, x)
    })
  }
}

/** The decode state of every layer. */
export class ModelCache {
  constructor(readonly layers: MixerCache[]) {}
  bytes(): number {
    return this.layers.reduce((n, c) => n + cacheBytes(c), 0)
  }
  dispose(): void {
    for (const c of this.layers) c.dispose()
  }
}

function mlp(p: BlockParams['mlp'], x: Tensor): Tensor {
  return tidy(() => linear(mul(silu(linear(x, p.gate)), linear(x, p.up)), p.down))
}

/** A host int32 array as a tensor [rows, cols]. */
export function tokensTensor(values: Int32Array, rows: number, cols: number): Tensor {
  return tensor(values, [rows, cols], 'int32')
}
