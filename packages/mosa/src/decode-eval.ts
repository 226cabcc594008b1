import { ArgumentError, byteSize, slice, type Tensor, tidy } from '@attnkit/core'
import { resolveConfig } from './config.js'
import { createCache, decodeWithInfo, disposeCache, type MosaCache, prefill } from './decode.js'
import { forward, forwardWithRouting, type MosaPath } from './forward.js'
import { configOf, type MosaParams } from './params.js'

export interface DecodeEvaluation {
  prefillLen: number
  totalLen: number
  /** Fraction of (sequence, head, decoded token) triples the threshold admitted. */
  admissionRate: number
  /** Fraction of the same triples the full forward's top-k selected (about 1/sparsity). */
  forwardSelectionRate: number
  /** Admission against the full forward's selection: precision, recall, and decisions that agree. */
  selection: { precision: number; recall: number; agreement: number }
  /** ||y_decode - y|| / ||y|| over the decoded rows, y from the forward over the whole sequence. */
  relErrorVsFullForward: number
  /** The same against the forward over each prefix x[:, :t+1], row t (what a causal model sees). */
  relErrorVsPrefixForward: number
  /** Bytes of the cache's tensors after the last token. */
  cacheBytes: number
  cacheBytesPerToken: number
  /** A dense MHA cache with the same number of heads (K and V of every token), per token. */
  denseMhaBytesPerToken: number
}

async function host(t: Tensor): Promise<Float64Array> {
  const v = Float64Array.from(await t.data())
  t.dispose()
  return v
}

function relError(a: Float64Array, b: Float64Array): number {
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  return Math.sqrt(num / (den || 1))
}

function cacheBytes(cache: MosaCache): number {
  let n = 0
  for (const t of [cache.denseK, cache.denseV, cache.sparseK, cache.sparseV, cache.scores, cache.positions]) {
    if (t) n += t.size * byteSize(t.dtype)
  }
  return n
}

/**
 * Measures the threshold decode against the full forward: prefill x[:, :prefillLen], decode the
 * rest token by token, and compare admissions and outputs (see DecodeEvaluation). Async because
 * it reads results back (WebGPU has no synchronous read).
 */
export async function evaluateDecode(
  params: MosaParams,
  x: Tensor,
  opts: { prefillLen: number; capacity?: number; path?: MosaPath; prefixForward?: boolean },
): Promise<DecodeEvaluation> {
  const config = configOf(params, 'evaluateDecode')
  const c = resolveConfig(config)
  const [B, L, C] = x.shape
  const P = opts.prefillLen
  if (!Number.isInteger(P) || P < 1 || P >= L) {
    throw new ArgumentError(
      `evaluateDecode: argument 'prefillLen' expected an integer in [1, ${L - 1}], got ${P}`,
    )
  }
  const Hs = c.sparseHeads
  const full = forwardWithRouting(params, x, { path: opts.path, config })
  const yFull = await host(full.y)
  const selectedFull = new Uint8Array(B * Hs * L)
  if (full.indices) {
    const idx = await host(full.indices)
    const k = idx.length / (B * Hs)
    for (let bh = 0; bh < B * Hs; bh++) for (let j = 0; j < k; j++) selectedFull[bh * L + idx[bh * k + j]] = 1
  }
  full.scores?.dispose()

  const cache = createCache(config, {
    batch: B,
    maxLen: L,
    capacity: opts.capacity,
    backend: x.backend,
  })
  let yDec: Float64Array
  const admitted = new Uint8Array(B * Hs * L)
  try {
    const prompt = slice(x, [0, 0, 0], [B, P, C])
    prefill(params, cache, prompt, { path: opts.path }).dispose()
    prompt.dispose()
    yDec = new Float64Array(B * (L - P) * C)
    for (let t = P; t < L; t++) {
      const xt = slice(x, [0, t, 0], [B, 1, C])
      const r = decodeWithInfo(params, cache, xt)
      xt.dispose()
      const y = await host(r.y)
      for (let b = 0; b < B; b++) yDec.set(y.subarray(b * C, (b + 1) * C), (b * (L - P) + (t - P)) * C)
      if (r.admitted) {
        const a = await host(r.admitted)
        for (let bh = 0; bh < B * Hs; bh++) admitted[bh * L + t] = a[bh]
      }
    }
  } catch (e) {
    disposeCache(cache)
    throw e
  }
  const bytes = cacheBytes(cache)
  disposeCache(cache)

  const rows = (y: Float64Array, T: number, from: number) => {
    const out = new Float64Array(B * (L - P) * C)
    for (let b = 0; b < B; b++) {
      out.set(y.subarray((b * T + from) * C, (b * T + from + (L - P)) * C), b * (L - P) * C)
    }
    return out
  }
  let relErrorVsPrefixForward = Number.NaN
  if (opts.prefixForward !== false) {
    const yPrefix = new Float64Array(B * (L - P) * C)
    for (let t = P; t < L; t++) {
      const y = await host(
        tidy(() => forward(params, slice(x, [0, 0, 0], [B, t + 1, C]), { path: opts.path, config })),
      )
      for (let b = 0; b < B; b++)
        yPrefix.set(y.subarray((b * (t + 1) + t) * C, (b * (t + 1) + t + 1) * C), (b * (L - P) + t - P) * C)
    }
    relErrorVsPrefixForward = relError(yDec, yPrefix)
  }
  let tp = 0
  let fp = 0
  let fn = 0
  let agree = 0
  let n = 0
  for (let bh = 0; bh < B * Hs; bh++) {
    for (let t = P; t < L; t++) {
      const a = admitted[bh * L + t]
      const s = selectedFull[bh * L + t]
      if (a && s) tp++
      else if (a) fp++
      else if (s) fn++
      if (a === s) agree++
      n++
    }
  }
  const elem = byteSize(c.dtype)
  return {
    prefillLen: P,
    totalLen: L,
    admissionRate: n ? (tp + fp) / n : 0,
    forwardSelectionRate: n ? (tp + fn) / n : 0,
    selection: {
      precision: tp + fp ? tp / (tp + fp) : 1,
      recall: tp + fn ? tp / (tp + fn) : 1,
      agreement: n ? agree / n : 1,
    },
    relErrorVsFullForward: relError(yDec, rows(yFull, L, P)),
    relErrorVsPrefixForward,
    cacheBytes: bytes,
    cacheBytesPerToken: bytes / (B * L),
    denseMhaBytesPerToken: 2 * (c.denseHeads + c.sparseHeads) * c.headDim * elem,
  }
}
