import {
  add,
  arange,
  linear,
  reshape,
  sigmoid,
  stopGradient,
  type Tensor,
  takeAlongAxis,
  tidy,
  topk,
  transpose,
} from '@attnkit/core'

/**
 * Router logits of every MoSA head for every token, [B, Hs, T]: logits = x W_r^T, transposed so
 * that each head's scores are one contiguous row (what top-k and the fused select kernel read).
 */
export function routerLogits(x: Tensor, router: Tensor): Tensor {
  return tidy(() => transpose(linear(x, router), [0, 2, 1]))
}

/**
 * Expert-choice selection: each head's top-k tokens by router logit (sigmoid is monotonic, so
 * this is the top-k by score; ties keep the lower position), returned as int32 [B, Hs, k] in
 * ascending position order. Carries no gradient.
 */
export function selectTokens(logits: Tensor, k: number): Tensor {
  return tidy(() => {
    const { indices } = topk(stopGradient(logits), k)
    // A second top-k, smallest first, over the chosen positions sorts them by position.
    return topk(indices, k, { largest: false }).values
  })
}

/** Router scores of the selected tokens, sigmoid(logit), [B, Hs, k]; differentiable in the logits. */
export function selectedScores(logits: Tensor, indices: Tensor): Tensor {
  return tidy(() => sigmoid(takeAlongAxis(logits, indices, 2)))
}

/** Row indices into x reshaped to [B*T, C]: indices + b*T. */
export function flatRowIndices(indices: Tensor, seqLen: number): Tensor {
  const B = indices.shape[0]
  return tidy(() =>
    add(indices, reshape(arange(0, B * seqLen, seqLen, { backend: indices.backend }), [B, 1, 1])),
  )
}
