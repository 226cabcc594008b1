import {
  type Backend,
  type Cost,
  type DType,
  type Rng,
  slice,
  type Tensor,
  type TensorTree,
} from '@attnkit/core'
import type { Dims } from '../schema.js'
import type { MechanismAdapter, Workload } from './adapter.js'
import { disposeAll, gradientWorkload, requireFunctions } from './common.js'
import { attentionLabel } from './dense.js'

// The parts of @attnkit/tpa's API the adapter uses (checked at load time).
interface TpaConfig {
  dModel: number
  heads: number
  headDim: number
  variant?: string
  kvHeads?: number
  dtype?: DType
}
interface TpaCache {
  layout: { size: number }
  append(records: Tensor): void
  flush(): void
  dispose(): void
}
interface TpaModule {
  init(config: TpaConfig, rng: Rng, opts?: { backend?: Backend }): TensorTree
  forward(params: TensorTree, x: Tensor, opts?: { config?: TpaConfig }): Tensor
  createCache(config: TpaConfig, opts: { batch: number; maxLen: number; backend?: Backend }): TpaCache
  decode(params: TensorTree, cache: TpaCache, xt: Tensor): Tensor
  cost(
    config: TpaConfig,
    opts: { seqLen: number; batch?: number; dtype?: DType },
  ): { forward: Cost; decodeStep: Cost; kvCache: { bytes: { tpa: number } } }
}

const PKG = '@attnkit/tpa'
/** Decode steps a cell may take after its cache is filled (warm-up plus timed runs). */
const DECODE_ROOM = 256
/** Records appended per flush while filling a cache (as a running decode's store would hold them). */
const FILL_BLOCK = 2048

const VARIANTS: { name: string; description: string; config: (heads: number) => Partial<TpaConfig> }[] = [
  {
    name: 'tpa',
    description: 'T6 TPA: contextual Q/K/V factors, ranks 6/2/2',
    config: () => ({ variant: 'tpa' }),
  },
  {
    name: 'tpa-kvonly',
    description: 'plain Q projection, contextual K/V factors',
    config: () => ({ variant: 'tpa-kvonly' }),
  },
  {
    name: 'mha',
    description: 'multi-head attention as the special case A = h I',
    config: () => ({ variant: 'mha' }),
  },
  {
    name: 'gqa4',
    description: 'grouped-query attention, heads / 4 key/value heads',
    config: (h) => ({ variant: 'gqa', kvHeads: Math.max(1, h / 4) }),
  },
  {
    name: 'mqa',
    description: 'multi-query attention (one key/value head)',
    config: () => ({ variant: 'mqa' }),
  },
]

export function tpaAdapter(mod: Record<string, unknown>): MechanismAdapter {
  const tpa = requireFunctions<TpaModule>(mod, PKG, ['init', 'forward', 'createCache', 'decode', 'cost'])
  const config = (variant: string, d: Dims, dtype?: DType): TpaConfig => {
    const v = VARIANTS.find((x) => x.name === variant)
    if (!v)
      throw new Error(
        `tpa: unknown variant '${variant}' (expected ${VARIANTS.map((x) => x.name).join(', ')})`,
      )
    return {
      dModel: d.heads * d.headDim,
      heads: d.heads,
      headDim: d.headDim,
      ...v.config(d.heads),
      ...(dtype ? { dtype } : {}),
    }
  }
  return {
    name: 'tpa',
    description: 'a Tensor Product Attention layer (@attnkit/tpa) with its factorised KV cache',
    variants: VARIANTS.map(({ name, description }) => ({ name, description })),
    modes: ['forward', 'forward+backward', 'decode'],
    requiredDims: ['batch', 'heads', 'seqLen', 'headDim'],
    label: attentionLabel,
    // Heads and head dim stay: they choose the fused kernels' code paths.
    checkDims: (d, mode) => ({
      batch: 1,
      heads: d.heads,
      seqLen: Math.min(d.seqLen, mode === 'decode' ? 512 : mode === 'forward' ? 256 : 128),
      headDim: d.headDim,
    }),
    cost(d, variant, mode, dtype) {
      const c = tpa.cost(config(variant, d, dtype), { seqLen: d.seqLen, batch: d.batch, dtype })
      if (mode === 'decode') return c.decodeStep
      // The package gives no training estimate: the usual 3x forward FLOPs, 2x bytes.
      return mode === 'forward+backward'
        ? { flops: 3 * c.forward.flops, bytes: 2 * c.forward.bytes }
        : c.forward
    },
    note: (_d, _v, mode) =>
      mode === 'decode'
        ? 'cache filled with seqLen random factor records (as a running decode holds them); the step projects the new token, appends it and attends in factor space'
        : mode === 'forward+backward'
          ? 'cost: 3x the forward FLOPs and 2x its bytes (no training estimate from the package)'
          : undefined,
    // The CPU reference's decode (batched products of tiny factor matrices) ran 9-19x slower than
    // the cost model's rates on the H100 host's CPU (paper preset, 2026-11-23).
    cpuSlowdown: (mode) => (mode === 'decode' ? 15 : 1),
    kvCacheBytes: (d, variant, dtype, context) =>
      tpa.cost(config(variant, d, dtype), { seqLen: context, batch: d.batch, dtype }).kvCache.bytes.tpa,
    toleranceFactor: () => 16,
    async setup(ctx, d, variant, mode): Promise<Workload> {
      const c = config(variant, d, ctx.dtype)
      const params = await ctx.initOnCpu(() => tpa.init({ ...c, dtype: 'float32' }, ctx.rng))
      const shape = [d.batch, d.seqLen, c.dModel]
      if (mode === 'forward') {
        const x = ctx.normal(shape)
        return {
          run: () => ({ y: tpa.forward(params, x, { config: c }) }),
          dispose: () => disposeAll(params, x),
        }
      }
      if (mode === 'forward+backward') {
        const x = ctx.normal(shape)
        const w = ctx.normal(shape)
        return gradientWorkload(
          { params, x },
          (p) => tpa.forward(p.params, p.x, { config: c }),
          w,
          () => disposeAll(params, x),
        )
      }
      const cache = tpa.createCache(c, {
        batch: d.batch,
        maxLen: d.seqLen + DECODE_ROOM,
        backend: ctx.backend,
      })
      try {
        const block = ctx.normal([d.batch, Math.min(FILL_BLOCK, d.seqLen), cache.layout.size])
        for (let filled = 0; filled < d.seqLen; filled += block.shape[1]) {
          const n = Math.min(block.shape[1], d.seqLen - filled)
          if (n === block.shape[1]) cache.append(block)
          else {
            const part = slice(block, [0, 0, 0], [d.batch, n, cache.layout.size])
            cache.append(part)
            part.dispose()
          }
          cache.flush()
        }
        block.dispose()
      } catch (e) {
        cache.dispose()
        disposeAll(params)
        throw e
      }
      const xt = ctx.normal([d.batch, c.dModel])
      return {
        run: () => ({ y: tpa.decode(params, cache, xt) }),
        dispose: () => {
          cache.dispose()
          disposeAll(params, xt)
        },
      }
    },
  }
}
