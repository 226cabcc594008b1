import {
  attention,
  type Backend,
  concat,
  greaterEqual,
  ones,
  Rng,
  type Tensor,
  tensor,
  tidy,
} from '@attnkit/core'

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

/** Random decode-attention inputs: some slots empty (pos -1), GQA with 2 query heads per KV head. */
export function decodeHostInputs(seed: number, B: number, H: number, Hk: number, N: number, D: number) {
  const rng = new Rng(seed)
  const u = rng.uniformArray(B * Hk * N)
  const pos = Int32Array.from(u, (x, i) => (x < 0.3 ? -1 : i % N))
  return {
    q: { v: rng.normalArray(B * H * D), shape: [B, H, 1, D] },
    k: { v: rng.normalArray(B * Hk * N * D), shape: [B, Hk, N, D] },
    v: { v: rng.normalArray(B * Hk * N * D), shape: [B, Hk, N, D] },
    pos: { v: pos, shape: [B, Hk, N] },
    kNew: { v: rng.normalArray(B * Hk * D), shape: [B, Hk, 1, D] },
    vNew: { v: rng.normalArray(B * Hk * D), shape: [B, Hk, 1, D] },
  }
}

export function uploadDecode(
  host: ReturnType<typeof decodeHostInputs>,
  dtype: 'float32' | 'float64',
  backend?: Backend,
) {
  const t = (name: keyof typeof host) =>
    tensor(host[name].v, host[name].shape, { dtype: name === 'pos' ? 'int32' : dtype, backend })
  return { q: t('q'), k: t('k'), v: t('v'), pos: t('pos'), kNew: t('kNew'), vNew: t('vNew') }
}

/** The portable equivalent: core attention over concat(slots, new) with keep = pos >= 0. */
export function portableDecodeAttention(x: ReturnType<typeof uploadDecode>): Tensor {
  return tidy(() => {
    const [B, Hk] = x.k.shape
    const keep = concat([greaterEqual(x.pos, 0), ones([B, Hk, 1], 'bool')], 2)
    return attention(x.q, concat([x.k, x.kNew], 2), concat([x.v, x.vNew], 2), { keep })
  })
}
