import {
  arange,
  attention,
  broadcastTo,
  expandDims,
  gather,
  matmul,
  mul,
  reshape,
  rope,
  scatterAdd,
  type Tensor,
  tidy,
  transpose,
  zeros,
} from '@attnkit/core'
import type { ResolvedConfig } from './config.js'
import type { HeadProjections } from './params.js'
import { flatRowIndices } from './routing.js'

/** Per-head weights [H, D, C] from a stacked projection [H*D, C] (a view, no copy). */
export function perHeadIn(w: Tensor, heads: number): Tensor {
  return reshape(w, [heads, w.shape[0] / heads, w.shape[1]])
}

/** Per-head output weights [H, C, D] from the stacked [C, H*D] (one transpose). */
export function perHeadOut(w: Tensor, heads: number): Tensor {
  return transpose(reshape(w, [w.shape[0], heads, w.shape[1] / heads]), [1, 0, 2])
}

/**
 * The MoSA heads' contribution to the layer output, [B, T, C], composed of core ops only
 * (runs on every backend). `indices` int32 [B, Hs, k] ascending, `scores` [B, Hs, k].
 *
 * gather rows -> per-head Q, K, V -> RoPE at original positions -> attention causal by original
 * position -> rows times router score -> per-head output projection -> scatter-add.
 */
export function sparseHeadsPortable(
  c: ResolvedConfig,
  w: HeadProjections,
  x: Tensor,
  indices: Tensor,
  scores: Tensor,
): Tensor {
  return tidy(() => {
    const [B, T, C] = x.shape
    const [, Hs, k] = indices.shape
    const rows = flatRowIndices(indices, T)
    const xs = gather(reshape(x, [B * T, C]), rows, 0) // [B, Hs, k, C]
    const project = (wm: Tensor) => matmul(xs, perHeadIn(wm, Hs), { transposeB: true }) // [B, Hs, k, D]
    let q = project(w.q)
    let kk = project(w.k)
    const v = project(w.v)
    if (c.ropeBase > 0) {
      q = rope(q, indices, { base: c.ropeBase })
      kk = rope(kk, indices, { base: c.ropeBase })
    }
    const o = attention(q, kk, v, { causal: true, qPositions: indices, kPositions: indices })
    const scaled = mul(o, expandDims(scores, 3))
    const yh = matmul(scaled, perHeadOut(w.o, Hs), { transposeB: true }) // [B, Hs, k, C]
    const n = B * Hs * k
    const target = broadcastTo(reshape(rows, [n, 1]), [n, C])
    const y = scatterAdd(
      zeros([B * T, C], { dtype: x.dtype, backend: x.backend }),
      target,
      reshape(yh, [n, C]),
      0,
    )
    return reshape(y, [B, T, C])
  })
}

/**
 * Ordinary causal multi-head attention of the dense heads, [B, T, C]. `attend` replaces core's
 * causal `attention` on [B, H, T, D] (the fused path passes its own kernel).
 */
export function denseHeads(
  c: ResolvedConfig,
  w: HeadProjections,
  x: Tensor,
  positions?: Tensor,
  attend?: (q: Tensor, k: Tensor, v: Tensor) => Tensor,
): Tensor {
  return tidy(() => {
    const [B, T] = x.shape
    const H = c.denseHeads
    const D = c.headDim
    const split = (t: Tensor) => transpose(reshape(t, [B, T, H, D]), [0, 2, 1, 3])
    const lin = (wm: Tensor) => split(matmul(x, wm, { transposeB: true }))
    let q = lin(w.q)
    let kk = lin(w.k)
    const v = lin(w.v)
    if (c.ropeBase > 0) {
      const pos = positions ?? arangeLike(T, x)
      q = rope(q, pos, { base: c.ropeBase })
      kk = rope(kk, pos, { base: c.ropeBase })
    }
    const o = attend ? attend(q, kk, v) : attention(q, kk, v, { causal: true })
    const merged = reshape(transpose(o, [0, 2, 1, 3]), [B, T, H * D])
    return matmul(merged, w.o, { transposeB: true })
  })
}

function arangeLike(T: number, like: Tensor): Tensor {
  return arange(0, T, 1, { backend: like.backend })
}
