import { type Backend, dispose, type Rng, ShapeError, type Tensor } from '@attnkit/core'
import { type FactorSpec, type ResolvedTpaConfig, resolveConfig, type TpaConfig } from './config.js'

/**
 * The weights of one TPA layer, keyed by name. Every one is a linear weight stored [out, in]
 * as PyTorch's nn.Linear stores it (y = x W^T), without bias. Which keys exist depends on the
 * variant (see `paramSpecs`).
 */
export type TpaParams = Record<string, Tensor>

const CONFIG = Symbol('attnkit.tpa.config')

/**
 * Remembers the config a params object was made for, as a non-enumerable symbol property, so
 * forward(params, x) needs no config argument; tensor-tree helpers (valueAndGrad, dispose,
 * mapTree) never see it.
 */
export function attachConfig<P extends TpaParams>(params: P, config: ResolvedTpaConfig): P {
  Object.defineProperty(params, CONFIG, { value: config, enumerable: false, configurable: true })
  return params
}

/** The config init() or loadParams() attached to params, if any. */
export function configOf(params: TpaParams): ResolvedTpaConfig | undefined {
  return (params as { [CONFIG]?: ResolvedTpaConfig })[CONFIG]
}

export interface ParamSpec {
  /** Key in the params object; the safetensors name is `${prefix}${key}.weight`. */
  key: string
  shape: [number, number]
  /** What the output features are, in order (the layout a PyTorch module must match). */
  layout: string
}

function factorSpecs(which: 'q' | 'k' | 'v', f: FactorSpec, c: ResolvedTpaConfig): ParamSpec[] {
  const { heads: h, headDim: d, dModel } = c
  const X = which.toUpperCase()
  if (f.kind === 'contextual') {
    return [
      {
        key: `W_A_${which}`,
        shape: [h * f.rank, dModel],
        layout: `A_${X}: out feature (head i, rank r) at i*${f.rank} + r, viewed [${h}, ${f.rank}]`,
      },
      {
        key: `W_B_${which}`,
        shape: [f.rank * d, dModel],
        layout: `B_${X}: out feature (rank r, dim j) at r*${d} + j, viewed [${f.rank}, ${d}]`,
      },
    ]
  }
  return [
    {
      key: `W_${which}`,
      shape: [f.rank * d, dModel],
      layout: `${X} heads: out feature (head g, dim j) at g*${d} + j, viewed [${f.rank}, ${d}]`,
    },
  ]
}

/** Names, shapes and layouts of a config's weights (the README's parameter table). */
export function paramSpecs(config: TpaConfig | ResolvedTpaConfig): ParamSpec[] {
  const c = resolveConfig(config)
  return [
    ...factorSpecs('q', c.q, c),
    ...factorSpecs('k', c.k, c),
    ...factorSpecs('v', c.v, c),
    {
      key: 'c_proj',
      shape: [c.dModel, c.heads * c.headDim],
      layout: `output projection; in feature (head i, dim j) at i*${c.headDim} + j`,
    },
  ]
}

export interface InitOptions {
  /** Backend to create the weights on (default: the active one). */
  backend?: Backend
}

/**
 * Random weights, uniform in +-1/sqrt(in) (nn.Linear's default bound). The T6 code zero-inits
 * c_proj; we do not, so a fresh layer's output depends on every weight (tests need that).
 */
export function init(config: TpaConfig | ResolvedTpaConfig, rng: Rng, opts: InitOptions = {}): TpaParams {
  const c = resolveConfig(config)
  const params: TpaParams = {}
  try {
    for (const s of paramSpecs(c)) {
      const bound = 1 / Math.sqrt(s.shape[1])
      params[s.key] = rng.uniform(s.shape, -bound, bound, { dtype: c.dtype, backend: opts.backend })
    }
  } catch (e) {
    dispose(params)
    throw e
  }
  return attachConfig(params, c)
}

/** Throws naming the first missing or mis-shaped weight. */
export function assertParams(config: ResolvedTpaConfig, params: TpaParams, op: string): void {
  if (params === null || typeof params !== 'object')
    throw new ShapeError(`${op}: argument 'params' expected an object of tensors, got ${String(params)}`)
  for (const s of paramSpecs(config)) {
    const t = params[s.key]
    if (!t || typeof t !== 'object' || !('shape' in t))
      throw new ShapeError(
        `${op}: params.${s.key} is missing (variant '${config.variant}' needs ${paramSpecs(config)
          .map((p) => p.key)
          .join(', ')})`,
      )
    if (t.shape.length !== 2 || t.shape[0] !== s.shape[0] || t.shape[1] !== s.shape[1])
      throw new ShapeError(
        `${op}: params.${s.key} expected shape [${s.shape.join(', ')}], got [${t.shape.join(', ')}]`,
      )
  }
}
