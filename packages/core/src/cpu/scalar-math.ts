/** Scalar maths the CPU reference needs beyond Math (accurate to float64 rounding). */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI)

/** erf(x): Taylor series for |x| < 3, continued fraction for erfc beyond (~1e-15 relative). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x
  const ax = Math.abs(x)
  if (ax < 3) {
    const x2 = x * x
    let term = x
    let total = x
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n
      const add = term / (2 * n + 1)
      total += add
      if (Math.abs(add) < 1e-17 * Math.abs(total)) break
    }
    return TWO_OVER_SQRT_PI * total
  }
  if (ax > 6) return Math.sign(x)
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))) via Lentz.
  const tiny = 1e-300
  let f = ax
  let c = ax
  let d = 0
  for (let n = 1; n < 200; n++) {
    const an = n / 2
    d = ax + an * d
    d = d === 0 ? tiny : d
    c = ax + an / c
    c = c === 0 ? tiny : c
    d = 1 / d
    const delta = c * d
    f *= delta
    if (Math.abs(delta - 1) < 1e-16) break
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f
  return Math.sign(x) * (1 - erfc)
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))
}

/** log(1 + exp(x)) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))
}

export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * Math.SQRT1_2))
}

/** Round half to even, as torch.round and WGSL round do. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}
