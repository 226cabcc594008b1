import { ArgumentError, add, DTypeError, fmtShape, ShapeError, type Tensor, tidy } from '@attnkit/core'
import { type MosaConfig, type ResolvedConfig, resolveConfig, selectedTokens } from './config.js'
import { fusedDenseAttention, fusedSupport, sparseHeadsFused } from './fused/layer.js'
import { checkParams, type MosaParams } from './params.js'
import { denseHeads, sparseHeadsPortable } from './portable.js'
import { routerLogits, selectedScores, selectTokens } from './routing.js'

/**
 * Which implementation of the MoSA heads runs: 'fused' (the package's own kernels, CUDA or
 * WebGPU; an error where they cannot run), 'portable' (core ops only, every backend) or 'auto'
 * (fused where available, else portable).
 */
export type MosaPath = 'auto' | 'fused' | 'portable'

export interface ForwardOptions {
  /** Default 'auto'. */
  path?: MosaPath
  /** The layer's config when `params` do not carry it (see MosaParams). */
  config?: MosaConfig
}

export interface ForwardResult {
  /** Layer output [B, T, dModel]. */
  y: Tensor
  /** MoSA heads' selected positions, int32 [B, Hs, k] ascending (undefined without MoSA heads). */
  indices?: Tensor
  /** Their router scores sigmoid(x . w_r), [B, Hs, k]. */
  scores?: Tensor
  /** The implementation that ran, and why when 'auto' fell back to the portable one. */
  path: 'fused' | 'portable'
  fallbackReason?: string
}

export function checkInput(c: ResolvedConfig, params: MosaParams, x: Tensor, op: string): void {
  if (x === null || typeof x !== 'object' || !('shape' in x)) {
    throw new ArgumentError(`${op}: argument 'x' expected a Tensor [B, T, ${c.dModel}], got ${String(x)}`)
  }
  x.assertAlive(`${op} (argument 'x')`)
  if (x.rank !== 3 || x.shape[2] !== c.dModel || x.shape[1] < 1) {
    throw new ShapeError(`${op}: argument 'x' expected shape [B, T, ${c.dModel}], got ${fmtShape(x.shape)}`)
  }
  const ref = params.router ?? params.dense?.q
  if (ref && ref.dtype !== x.dtype) {
    throw new DTypeError(
      `${op}: argument 'x' expected dtype ${ref.dtype} (the parameters' dtype), got ${x.dtype}`,
    )
  }
}

/**
 * The full-sequence MoSA layer (training and prefill): dense causal heads plus MoSA heads, each
 * selecting its top T/sparsity tokens. Returns y [B, T, dModel] plus the routing decisions.
 */
export function forwardWithRouting(params: MosaParams, x: Tensor, opts: ForwardOptions = {}): ForwardResult {
  const c = resolveConfig(checkParams(params, 'mosa.forward', opts.config))
  checkInput(c, params, x, 'mosa.forward')
  const path = opts.path ?? 'auto'
  if (path !== 'auto' && path !== 'fused' && path !== 'portable') {
    throw new ArgumentError(
      `mosa.forward: argument 'opts.path' expected 'auto', 'fused' or 'portable', got ${JSON.stringify(path)}`,
    )
  }
  // A layer of dense heads only takes the fused path where its attention has a fused kernel
  // (float32 on CUDA, where core's float32 attention is a SIMT kernel); otherwise nothing of it
  // is fused and it reports the portable path.
  const fusable = c.sparseHeads > 0 || fusedDenseAttention(c, x) !== undefined
  const support = fusable && path !== 'portable' ? fusedSupport(c, x) : undefined
  if (path === 'fused' && support && !support.ok) {
    throw new ArgumentError(`mosa.forward: path 'fused' cannot run here: ${support.reason}`)
  }
  let useFused = support?.ok === true
  let fallbackReason = support && !support.ok ? support.reason : undefined
  if (useFused && path === 'auto' && x.dtype !== 'float32') {
    const [B, T] = x.shape
    const why = portableFor16Bit(c, B, T, x.backend.info().maxTensorBytes, x.backend.name)
    if (why) {
      useFused = false
      fallbackReason = why
    }
  }
  const parts = tidy(() => {
    let y: Tensor | undefined
    let indices: Tensor | undefined
    let scores: Tensor | undefined
    if (c.denseHeads > 0)
      y = denseHeads(c, params.dense!, x, undefined, useFused ? fusedDenseAttention(c, x) : undefined)
    if (c.sparseHeads > 0) {
      const k = selectedTokens(x.shape[1], c.sparsity)
      const logits = routerLogits(x, params.router!)
      let ys: Tensor
      if (useFused) {
        ;({ y: ys, indices, scores } = sparseHeadsFused(c, params.sparse!, x, logits, k))
      } else {
        indices = selectTokens(logits, k)
        scores = selectedScores(logits, indices)
        ys = sparseHeadsPortable(c, params.sparse!, x, indices, scores)
      }
      y = y ? add(y, ys) : ys
    }
    return { y: y!, indices, scores }
  })
  return {
    ...parts,
    path: useFused ? 'fused' : 'portable',
    fallbackReason: useFused ? undefined : fallbackReason,
  }
}

/** Bytes of the portable path's largest tensor: its scatter's [B·Hs·k, dModel] int32 row indices. */
export function portableLargestBytes(c: ResolvedConfig, batch: number, seqLen: number): number {
  return batch * c.sparseHeads * selectedTokens(seqLen, c.sparsity) * c.dModel * 4
}

/**
 * On CUDA, 16-bit layers take the portable path only while its largest tensor is at most this
 * many bytes. H100, bfloat16, forward+backward (README): the bench layers at T = 1024 (largest
 * tensor 16-17 MB) ran 1.9-2.3 ms portable against 2.8-3.6 ms fused, at T = 8192 (247-381 MB)
 * 14.1-17.1 ms portable against 11.6-12.0 ms fused, in a third of the memory; the crossover lies
 * between, and this threshold is set between the two measured sizes, not at a measured crossover.
 */
export const CUDA_16BIT_PORTABLE_MAX_BYTES = 64 * 2 ** 20

/**
 * Why 'auto' runs a 16-bit layer's MoSA heads on the portable path (null: it takes the fused
 * kernels). The fused kernels compute in float32 on cast copies; the portable path's projections
 * run in 16 bits on tensor cores. It is preferred wherever its largest tensor fits in one buffer
 * of the backend (WebGPU: 2 GiB, which the paper's T = 8192 layers pass) and, on CUDA, only while
 * that tensor is at most CUDA_16BIT_PORTABLE_MAX_BYTES (short sequences): past it the fused
 * kernels are faster and smaller on the H100.
 */
export function portableFor16Bit(
  c: ResolvedConfig,
  batch: number,
  seqLen: number,
  maxTensorBytes: number | undefined,
  backendName?: string,
): string | null {
  const need = portableLargestBytes(c, batch, seqLen)
  if (maxTensorBytes !== undefined && need > maxTensorBytes) return null
  if (backendName === 'cuda' && need > CUDA_16BIT_PORTABLE_MAX_BYTES) return null
  return `16-bit layers take the portable path where it fits (its projections run in 16 bits; the fused kernels compute in float32): its largest tensor, ${need} bytes, fits ${maxTensorBytes === undefined ? 'this backend' : `this backend's ${maxTensorBytes}-byte limit`}${backendName === 'cuda' ? ` and is at most ${CUDA_16BIT_PORTABLE_MAX_BYTES} bytes (CUDA: the fused kernels are faster past that)` : ''}`
}

/** The MoSA layer's output [B, T, dModel] (see forwardWithRouting). */
export function forward(params: MosaParams, x: Tensor, opts: ForwardOptions = {}): Tensor {
  const r = forwardWithRouting(params, x, opts)
  r.indices?.dispose()
  r.scores?.dispose()
  return r.y
}
