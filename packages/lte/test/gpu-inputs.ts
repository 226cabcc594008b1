import { type Backend, Rng, type Tensor, tensor } from '@attnkit/core'

/** Random GDN kernel inputs (unit-norm k, gates in realistic ranges) as host arrays. */
export function gdnHostInputs(seed: number, B: number, H: number, T: number, Dk: number, Dv: number) {
  const rng = new Rng(seed)
  const k = rng.normalArray(B * H * T * Dk)
  for (let r = 0; r < B * H * T; r++) {
    let n = 0
    for (let i = 0; i < Dk; i++) n += k[r * Dk + i] ** 2
    for (let i = 0; i < Dk; i++) k[r * Dk + i] /= Math.sqrt(n)
  }
  const g = rng.uniformArray(B * H * T).map((u) => -0.05 - 0.5 * u)
  const beta = rng.normalArray(B * H * T).map((z) => 1 / (1 + Math.exp(-2 * z)))
  const values = {
    q: rng.normalArray(B * H * T * Dk),
    k,
    v: rng.normalArray(B * H * T * Dv),
    g,
    beta,
    state: rng.normalArray(B * H * Dk * Dv),
    dout: rng.normalArray(B * H * T * Dv),
    dFinalState: rng.normalArray(B * H * Dk * Dv),
  }
  const shapes: Record<keyof typeof values, number[]> = {
    q: [B, H, T, Dk],
    k: [B, H, T, Dk],
    v: [B, H, T, Dv],
    g: [B, H, T],
    beta: [B, H, T],
    state: [B, H, Dk, Dv],
    dout: [B, H, T, Dv],
    dFinalState: [B, H, Dk, Dv],
  }
  return { values, shapes }
}

export type GdnTensors = Record<'q' | 'k' | 'v' | 'g' | 'beta' | 'state' | 'dout' | 'dFinalState', Tensor>

export function upload(
  host: ReturnType<typeof gdnHostInputs>,
  dtype: 'float32' | 'float64',
  backend?: Backend,
): GdnTensors {
  return Object.fromEntries(
    Object.entries(host.values).map(([n, v]) => [
      n,
      tensor(v, host.shapes[n as keyof typeof host.shapes], { dtype, backend }),
    ]),
  ) as GdnTensors
}

/** max |a - b| / max(1, max |a|), a the reference. */
export async function relErr(ref: Tensor, got: Tensor): Promise<number> {
  const x = await ref.data()
  const y = await got.data()
  let err = 0
  let scale = 0
  for (let j = 0; j < x.length; j++) {
    err = Math.max(err, Math.abs(Number(x[j]) - Number(y[j])))
    scale = Math.max(scale, Math.abs(Number(x[j])))
  }
  return err / Math.max(1, scale)
}
