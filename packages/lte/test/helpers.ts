import type { Tensor } from '@attnkit/core'

/** Max |a - b| / max(1, max |b|): the max-normalised error used across the tests. */
export async function maxNormErr(a: Tensor, b: Tensor): Promise<number> {
  const x = await a.data()
  const y = await b.data()
  if (x.length !== y.length) throw new Error(`length mismatch ${x.length} vs ${y.length}`)
  let err = 0
  let scale = 0
  for (let i = 0; i < x.length; i++) {
    err = Math.max(err, Math.abs(Number(x[i]) - Number(y[i])))
    scale = Math.max(scale, Math.abs(Number(y[i])))
  }
  return err / Math.max(1, scale)
}
