/**
 * MoSA written directly from its definition as a plain per-head loop over float64 host arrays:
 * the oracle the package's forward is tested against. Deliberately naive: no batching of heads,
 * no shared code with src/.
 */
import type { MosaConfig, MosaParams } from '../src/index.js'

export interface HostParams {
  router?: Float64Array
  sparse?: { q: Float64Array; k: Float64Array; v: Float64Array; o: Float64Array }
  dense?: { q: Float64Array; k: Float64Array; v: Float64Array; o: Float64Array }
}

export function hostParams(p: MosaParams): HostParams {
  const h = (t: { dataSync(): ArrayLike<number> }) => Float64Array.from(t.dataSync())
  const group = (g: MosaParams['dense']) => (g ? { q: h(g.q), k: h(g.k), v: h(g.v), o: h(g.o) } : undefined)
  return { router: p.router ? h(p.router) : undefined, sparse: group(p.sparse), dense: group(p.dense) }
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z))

/** q = W_h x for head h of a stacked [H*D, C] weight. */
function projectRow(w: Float64Array, h: number, D: number, C: number, x: Float64Array, xo: number): number[] {
  const out: number[] = []
  for (let d = 0; d < D; d++) {
    let s = 0
    for (let c = 0; c < C; c++) s += w[(h * D + d) * C + c] * x[xo + c]
    out.push(s)
  }
  return out
}

function ropeRow(v: number[], pos: number, base: number): number[] {
  if (base === 0) return v
  const D = v.length
  const half = D / 2
  const out = v.slice()
  for (let i = 0; i < half; i++) {
    const theta = pos * base ** ((-2 * i) / D)
    out[i] = v[i] * Math.cos(theta) - v[i + half] * Math.sin(theta)
    out[i + half] = v[i + half] * Math.cos(theta) + v[i] * Math.sin(theta)
  }
  return out
}

/** Causal softmax attention of tokens at `positions` (query i sees keys with position <= its own). */
function attend(q: number[][], k: number[][], v: number[][], positions: number[]): number[][] {
  const D = q[0].length
  return q.map((qi, i) => {
    const logits: number[] = []
    const vis: number[] = []
    for (let j = 0; j < k.length; j++) {
      if (positions[j] > positions[i]) continue
      let s = 0
      for (let d = 0; d < D; d++) s += qi[d] * k[j][d]
      logits.push(s / Math.sqrt(D))
      vis.push(j)
    }
    const m = Math.max(...logits)
    const e = logits.map((s) => Math.exp(s - m))
    const z = e.reduce((a, b) => a + b, 0)
    const o = new Array(v[0].length).fill(0)
    vis.forEach((j, n) => {
      for (let d = 0; d < o.length; d++) o[d] += (e[n] / z) * v[j][d]
    })
    return o
  })
}

/** Adds head h's output rows (o_i times W_o's head-h columns) to y at the given positions. */
function addOutput(
  y: Float64Array,
  b: number,
  T: number,
  C: number,
  wo: Float64Array,
  H: number,
  h: number,
  o: number[][],
  positions: number[],
): void {
  const D = o[0].length
  o.forEach((row, i) => {
    const t = positions[i]
    for (let c = 0; c < C; c++) {
      let s = 0
      for (let d = 0; d < D; d++) s += wo[c * H * D + h * D + d] * row[d]
      y[(b * T + t) * C + c] += s
    }
  })
}

export interface ReferenceResult {
  y: Float64Array
  /** Selected positions per [b][h], ascending. */
  selected: number[][][]
}

/** y [B, T, C] of the MoSA layer for x [B, T, C] (host float64). */
export function referenceForward(
  config: MosaConfig,
  p: HostParams,
  x: Float64Array,
  B: number,
  T: number,
): ReferenceResult {
  const C = config.dModel
  const D = config.headDim
  const base =
    config.rope === false ? 0 : typeof config.rope === 'object' ? (config.rope.base ?? 10000) : 10000
  const y = new Float64Array(B * T * C)
  const selected: number[][][] = []
  const k = Math.min(T, Math.max(1, Math.floor(T / config.sparsity)))
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < config.denseHeads; h++) {
      const g = p.dense!
      const positions = Array.from({ length: T }, (_, t) => t)
      const q = positions.map((t) => ropeRow(projectRow(g.q, h, D, C, x, (b * T + t) * C), t, base))
      const kk = positions.map((t) => ropeRow(projectRow(g.k, h, D, C, x, (b * T + t) * C), t, base))
      const v = positions.map((t) => projectRow(g.v, h, D, C, x, (b * T + t) * C))
      addOutput(y, b, T, C, g.o, config.denseHeads, h, attend(q, kk, v, positions), positions)
    }
    const perHead: number[][] = []
    for (let h = 0; h < config.sparseHeads; h++) {
      const g = p.sparse!
      // Router: r_t = sigmoid(w_h . x_t); expert choice: the head takes its top-k tokens.
      const r = Array.from({ length: T }, (_, t) => {
        let s = 0
        for (let c = 0; c < C; c++) s += p.router![h * C + c] * x[(b * T + t) * C + c]
        return sigmoid(s)
      })
      const byScore = Array.from({ length: T }, (_, t) => t).sort((i, j) => r[j] - r[i] || i - j)
      const positions = byScore.slice(0, k).sort((i, j) => i - j)
      perHead.push(positions)
      const q = positions.map((t) => ropeRow(projectRow(g.q, h, D, C, x, (b * T + t) * C), t, base))
      const kk = positions.map((t) => ropeRow(projectRow(g.k, h, D, C, x, (b * T + t) * C), t, base))
      const v = positions.map((t) => projectRow(g.v, h, D, C, x, (b * T + t) * C))
      const o = attend(q, kk, v, positions).map((row, i) => row.map((e) => e * r[positions[i]]))
      addOutput(y, b, T, C, g.o, config.sparseHeads, h, o, positions)
    }
    selected.push(perHead)
  }
  return { y, selected }
}
