import {
  addCosts,
  attention,
  attentionBackwardCost,
  attentionCost,
  type DType,
  kvCacheBytes,
  mul,
  sum,
  type Tensor,
  tidy,
  valueAndGrad,
} from '@attnkit/core'
import type { Dims, Mode } from '../schema.js'
import type { MechanismAdapter, Workload } from './adapter.js'

const attentionShape = (d: Dims, mode: Mode) => ({
  batch: d.batch,
  qHeads: d.heads,
  kvHeads: d.heads,
  qLen: mode === 'decode' ? 1 : d.seqLen,
  kLen: d.seqLen,
  headDim: d.headDim,
  causal: true,
})

export const attentionLabel = (d: Dims): string => `B${d.batch} H${d.heads} T${d.seqLen} D${d.headDim}`

/**
 * Dense causal multi-head attention through core's fused attention op. Decode is one new
 * query against a cache of seqLen keys (the cache is preallocated, so no append is timed).
 */
export const denseAdapter: MechanismAdapter = {
  name: 'dense',
  description: "causal multi-head attention (core's fused attention op)",
  variants: [{ name: 'causal', description: 'causal softmax attention, all heads dense' }],
  modes: ['forward', 'forward+backward', 'decode'],
  requiredDims: ['batch', 'heads', 'seqLen', 'headDim'],
  label: attentionLabel,
  checkDims: (d, mode) => ({
    batch: 1,
    heads: Math.min(d.heads, 2),
    seqLen: Math.min(d.seqLen, mode === 'decode' ? 1024 : mode === 'forward' ? 256 : 128),
    headDim: d.headDim,
  }),
  cost(d, _variant, mode, dtype: DType) {
    const s = attentionShape(d, mode)
    const f = attentionCost(s, dtype)
    return mode === 'forward+backward' ? addCosts(f, attentionBackwardCost(s, dtype)) : f
  },
  kvCacheBytes: (d, _variant, dtype, context) =>
    d.batch * kvCacheBytes(context, 2 * d.heads * d.headDim, dtype),
  setup(ctx, d, _variant, mode): Workload {
    const { batch: B, heads: H, seqLen: T, headDim: D } = d
    const q = ctx.normal([B, H, mode === 'decode' ? 1 : T, D])
    const k = ctx.normal([B, H, T, D])
    const v = ctx.normal([B, H, T, D])
    const owned: Tensor[] = [q, k, v]
    if (mode === 'forward')
      return { run: () => ({ out: attention(q, k, v, { causal: true }) }), dispose: () => free(owned) }
    if (mode === 'decode')
      return { run: () => ({ out: attention(q, k, v, { causal: true }) }), dispose: () => free(owned) }
    // A random cotangent, so every gradient entry is exercised with a different weight.
    const w = ctx.normal([B, H, T, D])
    owned.push(w)
    const lossAndGrads = valueAndGrad((p: { q: Tensor; k: Tensor; v: Tensor }) =>
      sum(mul(attention(p.q, p.k, p.v, { causal: true }), w)),
    )
    return {
      run: () =>
        tidy(() => {
          const { grads } = lossAndGrads({ q, k, v })
          return { dq: grads.q, dk: grads.k, dv: grads.v }
        }),
      dispose: () => free(owned),
    }
  },
}

function free(ts: Tensor[]): void {
  for (const t of ts) t.dispose()
}
