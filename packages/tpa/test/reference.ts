/**
 * A float64 host reference written from the paper's equations, independent of the package's
 * tensor code: every Q, K, V is built as (1/R) sum_r a_r (outer) b_r from the linear maps of
 * x (with the constant one-hot A of the fixed factors), RoPE on the B rows, then per-head
 * causal softmax attention and the output projection.
 */
import type { FactorSpec, ResolvedTpaConfig } from '../src/index.js'

export type HostParams = Record<string, Float64Array>

/** y = W x for W [out, in] row-major. */
function matvec(W: Float64Array, x: Float64Array, out: number, inF: number): Float64Array {
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = 0
    for (let i = 0; i < inF; i++) s += W[o * inF + i] * x[i]
    y[o] = s
  }
  return y
}

export function ropeRow(row: Float64Array, pos: number, c: ResolvedTpaConfig): Float64Array {
  if (!c.rope) return row
  const { base, rotaryDim, direction } = c.rope
  const half = rotaryDim / 2
  const out = row.slice()
  for (let i = 0; i < half; i++) {
    const theta = direction * pos * base ** ((-2 * i) / rotaryDim)
    const x1 = row[i]
    const x2 = row[i + half]
    out[i] = x1 * Math.cos(theta) - x2 * Math.sin(theta)
    out[i + half] = x2 * Math.cos(theta) + x1 * Math.sin(theta)
  }
  return out
}

/** Head i's vector for one token, [h][d], built as explicit outer products. */
function heads(
  c: ResolvedTpaConfig,
  P: HostParams,
  which: 'q' | 'k' | 'v',
  spec: FactorSpec,
  x: Float64Array,
  pos: number,
  rope: boolean,
): Float64Array[] {
  const { heads: h, headDim: d, dModel } = c
  const R = spec.rank
  let A: Float64Array
  let Bf: Float64Array
  if (spec.kind === 'contextual') {
    A = matvec(P[`W_A_${which}`], x, h * R, dModel)
    Bf = matvec(P[`W_B_${which}`], x, R * d, dModel)
  } else {
    A = new Float64Array(h * R)
    for (let i = 0; i < h; i++) A[i * R + Math.floor(i / (h / R))] = R
    Bf = matvec(P[`W_${which}`], x, R * d, dModel)
  }
  const bRows: Float64Array[] = []
  for (let r = 0; r < R; r++) {
    const row = Bf.slice(r * d, (r + 1) * d)
    bRows.push(rope ? ropeRow(row, pos, c) : row)
  }
  const out: Float64Array[] = []
  for (let i = 0; i < h; i++) {
    const v = new Float64Array(d)
    for (let r = 0; r < R; r++) for (let j = 0; j < d; j++) v[j] += (A[i * R + r] * bRows[r][j]) / R
    out.push(v)
  }
  return out
}

export interface RefHeads {
  /** [b][t][head] -> d values */
  q: Float64Array[][][]
  k: Float64Array[][][]
  v: Float64Array[][][]
}

export function refHeads(
  c: ResolvedTpaConfig,
  P: HostParams,
  x: Float64Array,
  B: number,
  T: number,
  positions: number[],
  rope = true,
): RefHeads {
  const out: RefHeads = { q: [], k: [], v: [] }
  for (let b = 0; b < B; b++) {
    for (const w of ['q', 'k', 'v'] as const) out[w].push([])
    for (let t = 0; t < T; t++) {
      const xt = x.slice((b * T + t) * c.dModel, (b * T + t + 1) * c.dModel)
      out.q[b].push(heads(c, P, 'q', c.q, xt, positions[t], rope))
      out.k[b].push(heads(c, P, 'k', c.k, xt, positions[t], rope))
      out.v[b].push(heads(c, P, 'v', c.v, xt, positions[t], false))
    }
  }
  return out
}

/** The layer: [B, T, dModel] flattened. */
export function refForward(
  c: ResolvedTpaConfig,
  P: HostParams,
  x: Float64Array,
  B: number,
  T: number,
  opts: { positions?: number[]; causal?: boolean } = {},
): Float64Array {
  const positions = opts.positions ?? Array.from({ length: T }, (_, t) => t)
  const causal = opts.causal ?? true
  const { heads: h, headDim: d, dModel } = c
  const H = refHeads(c, P, x, B, T, positions)
  const y = new Float64Array(B * T * dModel)
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const concat = new Float64Array(h * d)
      for (let i = 0; i < h; i++) {
        const q = H.q[b][t][i]
        const scores: number[] = []
        const keys: number[] = []
        for (let u = 0; u < T; u++) {
          if (causal && positions[u] > positions[t]) continue
          let s = 0
          for (let j = 0; j < d; j++) s += q[j] * H.k[b][u][i][j]
          scores.push(s / Math.sqrt(d))
          keys.push(u)
        }
        const m = Math.max(...scores)
        const e = scores.map((s) => Math.exp(s - m))
        const z = e.reduce((a, v) => a + v, 0)
        keys.forEach((u, n) => {
          for (let j = 0; j < d; j++) concat[i * d + j] += (e[n] / z) * H.v[b][u][i][j]
        })
      }
      y.set(matvec(P.c_proj, concat, dModel, h * d), (b * T + t) * dModel)
    }
  }
  return y
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]))
  return m
}
