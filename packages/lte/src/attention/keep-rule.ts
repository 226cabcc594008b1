/**
 * The keep rule of LTE sparse attention and its mapping onto core's attention selectors.
 *
 * Paper: token j is kept for query i when j < s (a sink), or j >= i - w (the sliding window),
 * or r_{j,h} > 0.5 (retained by the scorer); always causally (j <= i). The window therefore
 * spans w + 1 tokens (i - w .. i, the query itself included).
 *
 * Core's attention selects a key when |qPos - kPos| < window, or kPos < sinks, or keep[j].
 * With causal masking |i - j| < window means i - window < j <= i, so `window = w + 1` and
 * `sinks = s` reproduce the paper exactly, and keep = (r > threshold).
 */

/** Sinks, window and the score threshold of one LTE layer. */
export interface KeepRuleConfig {
  /** s: the first s tokens are always visible. */
  sinks: number
  /** w: the w tokens before the query (and the query) are always visible. */
  window: number
  /** Scores above this keep a token (0.5). */
  threshold: number
}

/** Core attention's `window` selector for the paper's w. */
export const coreWindow = (w: number): number => w + 1

/** The set definition, directly: is key j visible to query i given its score r_j? */
export function isKept(i: number, j: number, score: number, rule: KeepRuleConfig): boolean {
  if (j > i) return false
  return j < rule.sinks || j >= i - rule.window || score > rule.threshold
}

/** Structural (score-independent) part of the rule: sink or window, causal. */
export function isStructural(i: number, j: number, rule: Pick<KeepRuleConfig, 'sinks' | 'window'>): boolean {
  return j <= i && (j < rule.sinks || j >= i - rule.window)
}
