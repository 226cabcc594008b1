/**
 * Timing helpers for benchmarks (the H100 script in bench/ and the shared bench app): the
 * chunkwise GDN kernel's forward+backward throughput, and a model's decode latency and memory at
 * a given context length.
 */
import {
  attention,
  type Backend,
  type Cost,
  concat,
  dispose,
  full,
  gatedDeltaRuleCost,
  getBackend,
  greaterEqual,
  memory,
  ones,
  Rng,
  resetPeakMemory,
  runKernel,
  sigmoid,
  backend as startedBackend,
  type Tensor,
  tensor,
  tidy,
} from '@attnkit/core'
import { slotCount } from './attention/decode-cache.js'
import { fusedDecodeAttention } from './kernels/decode-attention.js'
import { KERNELS } from './kernels/names.js'
import { ensureKernelsRegistered } from './kernels/register.js'
import type { LteModel } from './model/api.js'
import { attentionLayerConfig, gdnLayerConfig } from './model/config.js'
import { cacheBytes, type ModelCache } from './model/model.js'
import { l2Normalize } from './nn/functional.js'

export interface TimingStats {
  medianMs: number
  minMs: number
  maxMs: number
  runs: number
  source: 'device' | 'host'
}

/** Times `fn` (which launches device work) `iters` times after `warmup` runs; disposes what it returns. */
export async function timeRuns(
  backend: Backend,
  fn: () => unknown,
  opts: { warmup?: number; iters?: number } = {},
): Promise<TimingStats> {
  const once = async () => {
    let out: unknown
    const t = await backend.time(() => {
      out = fn()
    })
    dispose(out)
    return t
  }
  for (let i = 0; i < (opts.warmup ?? 2); i++) await once()
  const times: number[] = []
  let source: 'device' | 'host' = 'host'
  for (let i = 0; i < (opts.iters ?? 5); i++) {
    const t = await once()
    times.push(t.deviceMs)
    source = t.source
  }
  times.sort((a, b) => a - b)
  return {
    medianMs: times[Math.floor(times.length / 2)],
    minMs: times[0],
    maxMs: times.at(-1)!,
    runs: times.length,
    source,
  }
}

export interface GdnBenchShape {
  batch: number
  heads: number
  seqLen: number
  /** Dk = Dv. */
  headDim: number
  chunkSize?: number
}

/** Random GDN kernel inputs on the active backend: unit-norm q/k, decays in (0.55, 0.95), beta in (0, 1). */
export function gdnBenchInputs(s: GdnBenchShape, rng: Rng) {
  const shape = [s.batch, s.heads, s.seqLen, s.headDim]
  return tidy(() => ({
    q: l2Normalize(rng.normal(shape)),
    k: l2Normalize(rng.normal(shape)),
    v: rng.normal(shape),
    g: rng.uniform([s.batch, s.heads, s.seqLen], -0.6, -0.05),
    beta: sigmoid(rng.normal([s.batch, s.heads, s.seqLen])),
    dout: rng.normal(shape),
  }))
}

export interface GdnBenchResult {
  shape: GdnBenchShape
  kernel: 'fused' | 'portable'
  timing: TimingStats
  /** batch x seqLen / median time. */
  tokensPerSecond: number
  cost: Cost
  tflops: number
}

/**
 * Forward + backward of the chunkwise gated delta rule. 'fused': this package's kernels
 * (forward then the explicit chunkwise backward, as autograd would run them); 'portable':
 * core's gatedDeltaRule forward and gatedDeltaRuleBackward on the same backend.
 */
export async function benchGdnForwardBackward(
  backend: Backend,
  s: GdnBenchShape,
  kernel: 'fused' | 'portable',
  rng: Rng,
  opts: { warmup?: number; iters?: number } = {},
): Promise<GdnBenchResult> {
  ensureKernelsRegistered()
  const x = gdnBenchInputs(s, rng)
  const attrs = { scale: 1 / Math.sqrt(s.headDim), chunkSize: s.chunkSize ?? 64 }
  const [fwd, bwd] =
    kernel === 'fused'
      ? [KERNELS.gdnForward, KERNELS.gdnBackward]
      : ['gatedDeltaRule', 'gatedDeltaRuleBackward']
  const coreAttrs = kernel === 'fused' ? attrs : { ...attrs, mode: 'chunked' }
  try {
    const timing = await timeRuns(
      backend,
      () => {
        const outs = runKernel(fwd, { q: x.q, k: x.k, v: x.v, g: x.g, beta: x.beta }, coreAttrs)
        const grads = runKernel(
          bwd,
          { q: x.q, k: x.k, v: x.v, g: x.g, beta: x.beta, dout: x.dout },
          coreAttrs,
        )
        return [outs, grads]
      },
      opts,
    )
    const f = gatedDeltaRuleCost(
      {
        batch: s.batch,
        heads: s.heads,
        seqLen: s.seqLen,
        keyDim: s.headDim,
        valueDim: s.headDim,
        chunkSize: attrs.chunkSize,
      },
      'float32',
    )
    const cost = { flops: 3 * f.flops, bytes: 2 * f.bytes }
    return {
      shape: s,
      kernel,
      timing,
      tokensPerSecond: (s.batch * s.seqLen) / (timing.medianMs / 1000),
      cost,
      tflops: cost.flops / (timing.medianMs / 1000) / 1e12,
    }
  } finally {
    dispose(x)
  }
}

/**
 * A decode cache in the state it would have after `contextLen` tokens, filled with random
 * values: GDN states, every sink / ring / pool slot that context would occupy (scores above the
 * threshold), full-attention keys and values for all `contextLen` tokens. A decode step's cost
 * and the cache's size do not depend on the values, so this measures decode at long contexts
 * without running `contextLen` steps first. For benchmarks only: the values are not a model's.
 */
export function syntheticDecodeCache(
  model: LteModel,
  opts: {
    batch: number
    contextLen: number
    rng: Rng
    /**
     * 'random' (default): normal draws made on the host. 'constant': filled on the device
     * (0.01), for caches of many GiB where drawing on the host would take minutes.
     */
    values?: 'random' | 'constant'
  },
): ModelCache {
  const c = model.config
  const { batch: B, contextLen: L, rng } = opts
  const draw = (shape: readonly number[], std = 1) =>
    opts.values === 'constant' ? full([...shape], 0.01) : rng.normal([...shape], 0, std)
  const cache = model.createCache({ batch: B })
  cache.layers.forEach((entry) => {
    if (entry.kind === 'gdn') {
      const g = gdnLayerConfig(c)
      const st = entry.state
      dispose([st.S, st.convQ, st.convK, st.convV])
      st.S = draw([B, g.numHeads, g.headKDim, g.headVDim], 0.1)
      st.convQ = draw(st.convQ.shape)
      st.convK = draw(st.convK.shape)
      st.convV = draw(st.convV.shape)
      return
    }
    const a = attentionLayerConfig(c, entry.kind)
    const ac = entry.cache
    ac.position = L
    if (entry.kind === 'full') {
      ac.keys = draw([B, a.numKvHeads, L, a.headDim])
      ac.values = draw([B, a.numKvHeads, L, a.headDim])
      return
    }
    const N = slotCount(a)
    const pos = new Int32Array(B * a.numKvHeads * N).fill(-1)
    const score = new Float32Array(B * a.numKvHeads * N).fill(-1)
    const poolStart = a.sinks + a.window
    const u = rng.uniformArray(B * a.numKvHeads * N)
    for (let bh = 0; bh < B * a.numKvHeads; bh++) {
      for (let j = 0; j < Math.min(a.sinks, L); j++) pos[bh * N + j] = j
      for (let j = Math.max(a.sinks, L - a.window); j < L; j++) {
        const slot = a.sinks + ((j - a.sinks) % a.window)
        pos[bh * N + slot] = j
        score[bh * N + slot] = 0.5 + 0.5 * u[bh * N + slot]
      }
      const candidates = Math.max(0, L - a.window - a.sinks)
      const P = entry.kind === 'lte' ? Math.min(a.poolSize, candidates) : 0
      for (let p = 0; p < P; p++) {
        pos[bh * N + poolStart + p] = a.sinks + Math.floor(((p + 0.5) * candidates) / P)
        score[bh * N + poolStart + p] = 0.5 + 0.5 * u[bh * N + poolStart + p]
      }
    }
    const s = ac.slots!
    dispose([s.k, s.v, s.pos, s.score])
    ac.slots = {
      k: draw([B, a.numKvHeads, N, a.headDim]),
      v: draw([B, a.numKvHeads, N, a.headDim]),
      pos: tensor(pos, [B, a.numKvHeads, N], { dtype: 'int32' }),
      score: tensor(score, [B, a.numKvHeads, N]),
    }
    if (ac.scorer) {
      const bufs = ac.scorer.buffers
      ac.scorer.buffers = bufs.map((b) => draw(b.shape))
      dispose(bufs)
    }
  })
  cache.position = L
  return cache
}

export interface DecodeBenchResult {
  contextLen: number
  timing: TimingStats
  /** Bytes the decode cache holds at this context. */
  cacheBytes: number
  /** Bytes live on the backend (params + cache + anything else) after the steps. */
  liveBytes: number
  /** Peak live bytes during the timed steps. */
  peakBytes: number
}

/**
 * Decode latency at a context: times single decode steps (the cache advances each step; a step
 * at context L costs the same as at L + iters for every cache here within the measured noise).
 */
export async function benchDecode(
  backend: Backend,
  model: LteModel,
  params: Parameters<LteModel['decode']>[0],
  cache: ModelCache,
  opts: { warmup?: number; iters?: number; vocabToken?: number } = {},
): Promise<DecodeBenchResult> {
  const L = cache.position
  const token = full([cache.batch], opts.vocabToken ?? 1, 'int32')
  resetPeakMemory(backend.name)
  const timing = await timeRuns(backend, () => model.decode(params, cache, token), opts)
  token.dispose()
  const m = memory(backend.name)
  return {
    contextLen: L,
    timing,
    cacheBytes: cacheBytes(cache),
    liveBytes: m.liveBytes,
    peakBytes: m.peakBytes,
  }
}

/** Max |got - ref| / max(1, max |ref|). */
async function relativeError(ref: Tensor, got: Tensor): Promise<number> {
  const x = await ref.data()
  const y = await got.data()
  let err = 0
  let scale = 0
  for (let i = 0; i < x.length; i++) {
    err = Math.max(err, Math.abs(Number(x[i]) - Number(y[i])))
    scale = Math.max(scale, Math.abs(Number(x[i])))
  }
  return err / Math.max(1, scale)
}

/**
 * Runs the fused chunkwise GDN forward and backward on `backend` (float32) and the CPU reference
 * (float64) on the same random inputs, with an initial state and a final-state gradient; returns
 * the max-normalised error of each output.
 */
export async function checkFusedGdn(
  backend: Backend,
  s: GdnBenchShape,
  seed = 1,
): Promise<Record<string, number>> {
  ensureKernelsRegistered()
  const { batch: B, heads: H, seqLen: T, headDim: D } = s
  const rng = new Rng(seed)
  const k = rng.normalArray(B * H * T * D)
  for (let r = 0; r < B * H * T; r++) {
    let n = 0
    for (let i = 0; i < D; i++) n += k[r * D + i] ** 2
    for (let i = 0; i < D; i++) k[r * D + i] /= Math.sqrt(n)
  }
  const host: Record<string, [Float64Array, number[]]> = {
    q: [rng.normalArray(B * H * T * D), [B, H, T, D]],
    k: [k, [B, H, T, D]],
    v: [rng.normalArray(B * H * T * D), [B, H, T, D]],
    g: [rng.uniformArray(B * H * T).map((u) => -0.05 - 0.5 * u), [B, H, T]],
    beta: [rng.normalArray(B * H * T).map((z) => 1 / (1 + Math.exp(-2 * z))), [B, H, T]],
    state: [rng.normalArray(B * H * D * D), [B, H, D, D]],
    dout: [rng.normalArray(B * H * T * D), [B, H, T, D]],
    dFinalState: [rng.normalArray(B * H * D * D), [B, H, D, D]],
  }
  const upload = (dtype: 'float32' | 'float64', on?: Backend) =>
    Object.fromEntries(
      Object.entries(host).map(([n, [v, shape]]) => [n, tensor(v, shape, { dtype, backend: on })]),
    )
  const cpu = getBackend().name === 'cpu' ? getBackend() : await startedBackend('cpu')
  const ref = upload('float64', cpu)
  const got = upload('float32', backend)
  const attrs = { scale: 1 / Math.sqrt(D), chunkSize: s.chunkSize ?? 64 }
  const run = (x: Record<string, Tensor>) => [
    ...runKernel(KERNELS.gdnForward, { q: x.q, k: x.k, v: x.v, g: x.g, beta: x.beta, state: x.state }, attrs),
    ...runKernel(KERNELS.gdnBackward, x, attrs),
  ]
  const a = run(ref)
  const b = run(got)
  const names = ['out', 'finalState', 'dq', 'dk', 'dv', 'dg', 'dbeta', 'dstate']
  const errors: Record<string, number> = {}
  for (let i = 0; i < names.length; i++) errors[names[i]] = await relativeError(a[i], b[i])
  dispose([ref, got, a, b])
  return errors
}

/** The fused LTE decode attention on `backend` vs core's keep-mask attention on the CPU (float64). */
export async function checkFusedDecodeAttention(
  backend: Backend,
  s: { batch: number; heads: number; kvHeads: number; slots: number; headDim: number },
  seed = 2,
): Promise<number> {
  ensureKernelsRegistered()
  const { batch: B, heads: H, kvHeads: Hk, slots: N, headDim: D } = s
  const rng = new Rng(seed)
  const u = rng.uniformArray(B * Hk * N)
  const host = {
    q: [rng.normalArray(B * H * D), [B, H, 1, D]],
    k: [rng.normalArray(B * Hk * N * D), [B, Hk, N, D]],
    v: [rng.normalArray(B * Hk * N * D), [B, Hk, N, D]],
    kNew: [rng.normalArray(B * Hk * D), [B, Hk, 1, D]],
    vNew: [rng.normalArray(B * Hk * D), [B, Hk, 1, D]],
  } as const
  const pos = Int32Array.from(u, (x, i) => (x < 0.3 ? -1 : i % N))
  const cpu = await startedBackend('cpu')
  const on = (dtype: 'float32' | 'float64', b: Backend) =>
    ({
      ...Object.fromEntries(
        Object.entries(host).map(([n, [v, shape]]) => [n, tensor(v, [...shape], { dtype, backend: b })]),
      ),
      pos: tensor(pos, [B, Hk, N], { dtype: 'int32', backend: b }),
    }) as Record<'q' | 'k' | 'v' | 'kNew' | 'vNew' | 'pos', Tensor>
  const ref = on('float64', cpu)
  const got = on('float32', backend)
  const expected = tidy(() => {
    const keep = concat([greaterEqual(ref.pos, 0), ones([B, Hk, 1], { dtype: 'bool', backend: cpu })], 2)
    return attention(ref.q, concat([ref.k, ref.kNew], 2), concat([ref.v, ref.vNew], 2), { keep })
  })
  const out = fusedDecodeAttention(got.q, got.k, got.v, got.pos, got.kNew, got.vNew)
  const err = await relativeError(expected, out)
  dispose([ref, got, expected, out])
  return err
}
