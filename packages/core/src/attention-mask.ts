import type { AttentionAttrs } from './kernel-contract.js'

/**
 * The visibility rule of the attention primitive, as one function every backend mirrors:
 * a key is selected when no selector is set (window 0, no keep mask) or when it is in the
 * window, a sink, or kept; it is visible when selected and (if causal) not after the query.
 */
export function keyVisible(
  qPos: number,
  kPos: number,
  keep: boolean | undefined,
  attrs: Pick<AttentionAttrs, 'causal' | 'window' | 'sinks'>,
): boolean {
  if (attrs.causal && kPos > qPos) return false
  const hasSelector = attrs.window > 0 || keep !== undefined
  if (!hasSelector) return true
  if (attrs.window > 0 && Math.abs(qPos - kPos) < attrs.window) return true
  if (kPos < attrs.sinks) return true
  return keep === true
}
