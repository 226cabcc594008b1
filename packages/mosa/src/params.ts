import {
  ArgumentError,
  type Backend,
  cast,
  fmtShape,
  loadSafetensors,
  type Rng,
  SafetensorsError,
  ShapeError,
  serializeSafetensors,
  type Tensor,
} from '@attnkit/core'
import { type MosaConfig, resolveConfig } from './config.js'

/** Query, key, value and output projections of a group of heads (PyTorch Linear layout [out, in]). */
export type HeadProjections = {
  /** [heads * headDim, dModel]: rows h*headDim .. (h+1)*headDim-1 belong to head h. */
  q: Tensor
  k: Tensor
  v: Tensor
  /** [dModel, heads * headDim]: columns h*headDim .. (h+1)*headDim-1 belong to head h. */
  o: Tensor
}

/** Key under which init and loadParams attach the config to the parameters. */
export const MOSA_CONFIG: unique symbol = Symbol.for('attnkit.mosa.config')

/**
 * A MoSA layer's parameters: a plain object of tensors (what valueAndGrad differentiates). init
 * and loadParams attach the config under the MOSA_CONFIG symbol, which core's tree helpers do not
 * see; a params object rebuilt elsewhere (e.g. by an optimiser) gets it back with withConfig.
 */
export type MosaParams = {
  readonly [MOSA_CONFIG]?: MosaConfig
  /** [sparseHeads, dModel]: row h is MoSA head h's router vector; scores = sigmoid(x W^T). */
  router?: Tensor
  sparse?: HeadProjections
  dense?: HeadProjections
}

/** The config of `params` (the explicit one if given), or an error saying how to provide it. */
export function configOf(params: MosaParams, op = 'mosa', config?: MosaConfig): MosaConfig {
  const found = config ?? params?.[MOSA_CONFIG]
  if (!found) {
    throw new ArgumentError(
      `${op}: argument 'params' expected MosaParams carrying their config (from init or loadParams, or withConfig(config, tensors)), got ${params === null || typeof params !== 'object' ? String(params) : `an object with keys ${Object.keys(params).join(', ')} and no config`}`,
    )
  }
  return found
}

/** Parameters with `config` attached (e.g. after an optimiser built new tensors). */
export function withConfig(config: MosaConfig, tensors: Omit<MosaParams, typeof MOSA_CONFIG>): MosaParams {
  resolveConfig(config)
  return { ...tensors, [MOSA_CONFIG]: structuredClone(config) }
}

export interface ParamSpec {
  /** Name in safetensors files (before any prefix). */
  name: string
  /** Where it lives in MosaParams. */
  path: readonly ['router'] | readonly ['sparse' | 'dense', 'q' | 'k' | 'v' | 'o']
  shape: number[]
  description: string
}

/** Every parameter of a config: safetensors name, place in MosaParams, shape, meaning. */
export function paramSpecs(config: MosaConfig): ParamSpec[] {
  const c = resolveConfig(config)
  const specs: ParamSpec[] = []
  const groups: ['sparse' | 'dense', number][] = [
    ['dense', c.denseHeads],
    ['sparse', c.sparseHeads],
  ]
  if (c.sparseHeads > 0) {
    specs.push({
      name: 'router.weight',
      path: ['router'],
      shape: [c.sparseHeads, c.dModel],
      description: 'router vectors, one row per MoSA head: scores r = sigmoid(x @ W.T)',
    })
  }
  for (const [group, heads] of groups) {
    if (heads === 0) continue
    const width = heads * c.headDim
    for (const m of ['q', 'k', 'v'] as const) {
      specs.push({
        name: `${group}.${m}.weight`,
        path: [group, m],
        shape: [width, c.dModel],
        description: `${group} ${m.toUpperCase()} projection, [heads*headDim, dModel]; rows h*headDim.. are head h`,
      })
    }
    specs.push({
      name: `${group}.o.weight`,
      path: [group, 'o'],
      shape: [c.dModel, width],
      description: `${group} output projection, [dModel, heads*headDim]; columns h*headDim.. are head h`,
    })
  }
  return specs
}

function getAt(params: MosaParams, path: ParamSpec['path']): Tensor | undefined {
  if (path[0] === 'router') return params.router
  return params[path[0]]?.[path[1]]
}

function build(config: MosaConfig, entries: [ParamSpec, Tensor][]): MosaParams {
  const out: { router?: Tensor; sparse?: HeadProjections; dense?: HeadProjections } = {}
  for (const [spec, t] of entries) {
    if (spec.path[0] === 'router') out.router = t
    else {
      const group = (out[spec.path[0]] ??= {} as HeadProjections)
      group[spec.path[1]] = t
    }
  }
  return withConfig(config, out)
}

/**
 * Fresh parameters, uniform in +-1/sqrt(fan_in) like PyTorch's nn.Linear default, drawn from
 * `rng` in the order of paramSpecs (so the same seed gives the same layer on every backend).
 */
export function init(config: MosaConfig, rng: Rng, opts: { backend?: Backend } = {}): MosaParams {
  const c = resolveConfig(config)
  return build(
    config,
    paramSpecs(config).map((s) => {
      const bound = 1 / Math.sqrt(s.shape[1])
      return [s, rng.uniform(s.shape, -bound, bound, { dtype: c.dtype, backend: opts.backend })]
    }),
  )
}

/** Checks that `params` holds every tensor of its config with the right shape; returns the config. */
export function checkParams(params: MosaParams, op = 'mosa', config?: MosaConfig): MosaConfig {
  const cfg = configOf(params, op, config)
  for (const s of paramSpecs(cfg)) {
    const t = getAt(params, s.path)
    if (!t) throw new ShapeError(`${op}: parameter '${s.path.join('.')}' (${s.name}) is missing`)
    if (t.rank !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new ShapeError(
        `${op}: parameter '${s.path.join('.')}' (${s.name}) expected shape ${fmtShape(s.shape)}, got ${fmtShape(t.shape)}`,
      )
    }
  }
  return cfg
}

/**
 * The tensors as a flat {name: tensor} map, names as in paramSpecs (with an optional prefix).
 * Works on gradients too (they have the parameters' structure but no config).
 */
export function namedParams(params: MosaParams, prefix = ''): Record<string, Tensor> {
  const out: Record<string, Tensor> = {}
  if (params.router) out[`${prefix}router.weight`] = params.router
  for (const group of ['dense', 'sparse'] as const) {
    const g = params[group]
    if (g) for (const m of ['q', 'k', 'v', 'o'] as const) out[`${prefix}${group}.${m}.weight`] = g[m]
  }
  return out
}

/** Metadata key under which saveParams stores the config (JSON). */
export const CONFIG_METADATA_KEY = 'attnkit.mosa.config'

/**
 * Serialises the parameters to safetensors bytes (names as in the README's table); the config
 * goes into the header metadata as JSON, so loadParams can rebuild the layer from the file alone.
 */
export function saveParams(
  params: MosaParams,
  opts: { prefix?: string; metadata?: Record<string, string> } = {},
): Promise<Uint8Array> {
  const config = checkParams(params, 'saveParams')
  return serializeSafetensors(namedParams(params, opts.prefix ?? ''), {
    ...opts.metadata,
    [CONFIG_METADATA_KEY]: JSON.stringify(config),
  })
}

/**
 * Loads parameters from safetensors bytes (e.g. a PyTorch state_dict saved with
 * safetensors.torch.save_file). Tensors of other names are ignored; a missing or misshapen one
 * is an error naming it. Tensors are cast to the config's dtype when they differ. The config is
 * `opts.config`, else the one saveParams stored in the metadata.
 */
export function loadParams(
  bytes: Uint8Array,
  opts: { config?: MosaConfig; prefix?: string; backend?: Backend } = {},
): MosaParams {
  const prefix = opts.prefix ?? ''
  const { tensors, metadata } = loadSafetensors(bytes, { backend: opts.backend })
  let config = opts.config
  if (!config) {
    const stored = metadata[CONFIG_METADATA_KEY]
    if (!stored) {
      for (const t of Object.values(tensors)) t.dispose()
      throw new ArgumentError(
        `loadParams: argument 'opts.config' expected a MosaConfig (the file has no '${CONFIG_METADATA_KEY}' metadata), got undefined`,
      )
    }
    config = JSON.parse(stored) as MosaConfig
  }
  const c = resolveConfig(config)
  const entries: [ParamSpec, Tensor][] = []
  const used = new Set<string>()
  try {
    for (const s of paramSpecs(config)) {
      const t = tensors[prefix + s.name]
      if (!t) {
        const names = Object.keys(tensors).slice(0, 8).join(', ')
        throw new SafetensorsError(
          `loadParams: tensor '${prefix + s.name}' ${fmtShape(s.shape)} is missing (file has: ${names}${Object.keys(tensors).length > 8 ? ', ...' : ''})`,
        )
      }
      if (t.rank !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
        throw new SafetensorsError(
          `loadParams: tensor '${prefix + s.name}' expected shape ${fmtShape(s.shape)} (${s.description}), got ${fmtShape(t.shape)}`,
        )
      }
      used.add(prefix + s.name)
      entries.push([s, t])
    }
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose()
    throw e
  }
  for (const [name, t] of Object.entries(tensors)) if (!used.has(name)) t.dispose()
  return build(
    config,
    entries.map(([s, t]) => {
      if (t.dtype === c.dtype) return [s, t]
      const converted = cast(t, c.dtype)
      t.dispose()
      return [s, converted]
    }),
  )
}
