import { add, linear, mul, reshape, rsqrt, silu, sum, type Tensor, tidy, transpose } from '@attnkit/core'

/** x / sqrt(sum(x^2) + eps) over the last axis (the q/k normalisation of Gated DeltaNet). */
export function l2Normalize(x: Tensor, eps = 1e-6): Tensor {
  return tidy(() => mul(x, rsqrt(add(sum(mul(x, x), -1, { keepDims: true }), eps))))
}

/** [B, T, H * D] -> [B, H, T, D]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, HD] = x.shape
  return tidy(() => transpose(reshape(x, [B, T, heads, HD / heads]), [0, 2, 1, 3]))
}

/** [B, H, T, D] -> [B, T, H * D]. */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, D] = x.shape
  return tidy(() => reshape(transpose(x, [0, 2, 1, 3]), [B, T, H * D]))
}

/** [B, T, H] -> [B, H, T]. */
export function headsFirst(x: Tensor): Tensor {
  return transpose(x, [0, 2, 1])
}

export type SwiGluParams = {
  gate_proj: { weight: Tensor }
  up_proj: { weight: Tensor }
  down_proj: { weight: Tensor }
}

/** The SwiGLU MLP: down(silu(gate x) * up x), linear weights [out, in]. */
export function swiglu(p: SwiGluParams, x: Tensor): Tensor {
  return tidy(() =>
    linear(mul(silu(linear(x, p.gate_proj.weight)), linear(x, p.up_proj.weight)), p.down_proj.weight),
  )
}
