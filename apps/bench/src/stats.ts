/** Linear-interpolated quantile (q in [0, 1]) of unsorted samples. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) throw new Error('quantile: no samples')
  const s = [...samples].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
}

export const median = (samples: readonly number[]): number => quantile(samples, 0.5)
