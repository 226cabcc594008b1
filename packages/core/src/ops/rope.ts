import { ENGINE } from '../engine.js'
import { argumentError, fmtShape, ShapeError } from '../errors.js'
import type { RopeAttrs } from '../kernel-contract.js'
import { registerGradient } from '../registry.js'
import type { Tensor } from '../tensor.js'
import { broadcastTo } from './reduce.js'
import { reshape } from './shape-ops.js'
import { assertDType, assertFloat, assertTensor, run1 } from './validate.js'

export interface RopeOptions {
  /** Frequency base (10000 in most models). */
  base?: number
  /** Leading features of the last axis that rotate (even); default all. */
  rotaryDim?: number
}

/**
 * Brings positions to the [B, H, T] int32 layout kernels take. Accepts [T], [B, T] or
 * [B|1, H|1, T] (int32).
 */
export function positionsFor(
  op: string,
  arg: string,
  positions: Tensor,
  B: number,
  H: number,
  T: number,
): Tensor {
  assertTensor(op, arg, positions)
  assertDType(op, arg, positions, 'int32')
  const s = positions.shape
  let as3: Tensor
  if (s.length === 1 && s[0] === T) as3 = reshape(positions, [1, 1, T])
  else if (s.length === 2 && (s[0] === B || s[0] === 1) && s[1] === T) as3 = reshape(positions, [s[0], 1, T])
  else if (s.length === 3 && (s[0] === B || s[0] === 1) && (s[1] === H || s[1] === 1) && s[2] === T) {
    as3 = reshape(positions, s)
  } else {
    throw new ShapeError(
      `${op}: argument '${arg}' expected shape [${T}], [${B}, ${T}] or [${B}, ${H}, ${T}] (int32), got ${fmtShape(s)}`,
    )
  }
  if (as3.shape[0] === B && as3.shape[1] === H) return as3
  const full = broadcastTo(as3, [B, H, T])
  as3.dispose()
  return full
}

/** Default positions 0..T-1 shaped [1, 1, T] (broadcast by positionsFor). */
export function defaultPositions(T: number, like: Tensor, offset = 0): Tensor {
  const values = new Int32Array(T)
  for (let i = 0; i < T; i++) values[i] = offset + i
  return ENGINE.fromHost(values, [T], 'int32', like.backend)
}

/**
 * Rotary position embedding (rotate-half / GPT-NeoX layout) with explicit positions.
 * x: [B, H, T, D] or [B, T, D]; positions int32: [T], [B, T] or [B, H, T].
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
  assertTensor('rope', 'x', x)
  assertFloat('rope', 'x', x)
  if (x.rank !== 3 && x.rank !== 4)
    throw new ShapeError(
      `rope: argument 'x' expected shape [B, H, T, D] or [B, T, D], got ${fmtShape(x.shape)}`,
    )
  const x4 = x.rank === 4 ? x : reshape(x, [x.shape[0], 1, x.shape[1], x.shape[2]])
  const [B, H, T, D] = x4.shape
  const rotaryDim = opts.rotaryDim ?? D
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim > D || rotaryDim % 2 !== 0) {
    throw argumentError('rope', 'rotaryDim', `an even integer in [2, ${D}]`, rotaryDim)
  }
  const base = opts.base ?? 10000
  if (!(base > 1)) throw argumentError('rope', 'base', 'a number > 1', base)
  const pos = positionsFor('rope', 'positions', positions, B, H, T)
  const attrs: RopeAttrs = { base, rotaryDim, inverse: false }
  const y = run1('rope', { x: x4, positions: pos }, attrs)
  pos.dispose()
  if (x4 === x) return y
  x4.dispose()
  const out = reshape(y, x.shape)
  y.dispose()
  return out
}

registerGradient<RopeAttrs>({
  kernelName: 'rope',
  saveInputs: ['positions'],
  nonDifferentiableInputs: ['positions'],
  gradFunc: ({ dys, inputs, attrs }) => ({
    x: run1(
      'rope',
      { x: dys[0], positions: inputs.positions as Tensor },
      { ...attrs, inverse: !attrs.inverse },
    ),
  }),
})
