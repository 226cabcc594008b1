import { argumentError, fmtShape, ShapeError } from '../errors.js'
import { tidy } from '../scope.js'
import type { Tensor } from '../tensor.js'
import { cast, div, mul, neg, notEqual, where } from './elementwise.js'
import { takeAlongAxis } from './indexing.js'
import { mean, sum } from './reduce.js'
import { expandDims, reshape } from './shape-ops.js'
import { logSoftmax } from './softmax.js'
import { assertDType, assertFloat, assertTensor } from './validate.js'

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, not counted in the mean). */
  ignoreIndex?: number
  reduction?: 'mean' | 'sum' | 'none'
}

/**
 * Softmax cross-entropy: logits [..., V], int32 targets [...] -> scalar (mean over counted
 * targets) or per-target losses (reduction 'none').
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy'
  assertTensor(op, 'logits', logits)
  assertTensor(op, 'targets', targets)
  assertFloat(op, 'logits', logits)
  assertDType(op, 'targets', targets, 'int32')
  if (targets.rank !== logits.rank - 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new ShapeError(
      `${op}: argument 'targets' expected shape ${fmtShape(logits.shape.slice(0, -1))} (logits without the class axis), got ${fmtShape(targets.shape)}`,
    )
  }
  const reduction = opts.reduction ?? 'mean'
  if (!['mean', 'sum', 'none'].includes(reduction))
    throw argumentError(op, 'reduction', "'mean' | 'sum' | 'none'", reduction)
  return tidy(() => {
    const lsm = logSoftmax(logits)
    const ignore = opts.ignoreIndex
    const counted = ignore === undefined ? undefined : notEqual(targets, ignore)
    const safeTargets = counted ? where(counted, targets, 0) : targets
    const idx = expandDims(safeTargets, -1)
    const picked = reshape(takeAlongAxis(lsm, idx, -1), targets.shape)
    let losses = neg(picked)
    if (counted) losses = mul(losses, cast(counted, losses.dtype))
    if (reduction === 'none') return losses
    if (reduction === 'sum' || !counted) return reduction === 'sum' ? sum(losses) : mean(losses)
    const n = sum(cast(counted, losses.dtype))
    return div(sum(losses), n)
  })
}
