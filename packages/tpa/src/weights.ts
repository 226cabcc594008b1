import {
  ArgumentError,
  type Backend,
  dispose,
  type HostTensor,
  parseSafetensors,
  SafetensorsError,
  serializeHostTensors,
  tensor,
} from '@attnkit/core'
import { type ResolvedTpaConfig, resolveConfig, type TpaConfig } from './config.js'
import { attachConfig, configOf, paramSpecs, type TpaParams } from './params.js'

/** safetensors metadata key holding the layer's config as JSON. */
export const CONFIG_METADATA_KEY = 'attnkit.tpa.config'

export interface WeightNameOptions {
  /** Prepended to every tensor name, e.g. 'model.layers.0.attn.' (default ''). */
  prefix?: string
  /** Per-key overrides of the tensor name (without prefix), e.g. { W_q: 'q_proj.weight' }. */
  names?: Record<string, string>
}

export interface LoadOptions extends WeightNameOptions {
  /** The layer's config; default: the one saveParams wrote into the file's metadata. */
  config?: TpaConfig | ResolvedTpaConfig
  /** Backend to create the weights on (default: the active one). */
  backend?: Backend
}

export interface SaveOptions extends WeightNameOptions {
  /** Default: the config init() / loadParams() attached to params. */
  config?: TpaConfig | ResolvedTpaConfig
  /** Extra string metadata to store. */
  metadata?: Record<string, string>
}

/** The safetensors name of each param key: `${prefix}${key}.weight` unless overridden. */
export function tensorNames(
  config: TpaConfig | ResolvedTpaConfig,
  opts: WeightNameOptions = {},
): Record<string, string> {
  const out: Record<string, string> = {}
  for (const s of paramSpecs(config))
    out[s.key] = `${opts.prefix ?? ''}${opts.names?.[s.key] ?? `${s.key}.weight`}`
  return out
}

function configToJson(c: ResolvedTpaConfig): string {
  const plain: TpaConfig = {
    variant: c.variant,
    dModel: c.dModel,
    heads: c.heads,
    headDim: c.headDim,
    dtype: c.dtype,
    rope: c.rope ? { ...c.rope } : false,
  }
  if (c.variant === 'tpa') plain.qRank = c.q.rank
  if (c.variant === 'tpa' || c.variant === 'tpa-kvonly') {
    plain.kRank = c.k.rank
    plain.vRank = c.v.rank
  }
  if (c.variant === 'gqa') plain.kvHeads = c.k.rank
  return JSON.stringify(plain)
}

/**
 * Reads a layer's weights from safetensors bytes (other tensors in the file are ignored, so a
 * whole model's file works with a prefix). Shapes are checked against the config; values are
 * converted to the config's dtype.
 */
export function loadParams(bytes: Uint8Array, opts: LoadOptions = {}): TpaParams {
  const parsed = parseSafetensors(bytes)
  let config: TpaConfig | ResolvedTpaConfig | undefined = opts.config
  if (!config) {
    const json = parsed.metadata[CONFIG_METADATA_KEY]
    if (!json)
      throw new ArgumentError(
        `tpa.loadParams: no config: pass opts.config (the file has no '${CONFIG_METADATA_KEY}' metadata)`,
      )
    config = JSON.parse(json) as TpaConfig
  }
  const c = resolveConfig(config)
  const names = tensorNames(c, opts)
  const params: TpaParams = {}
  try {
    for (const s of paramSpecs(c)) {
      const name = names[s.key]
      const t = parsed.tensors.get(name)
      if (!t) {
        const have = [...parsed.tensors.keys()].slice(0, 12).join(', ')
        throw new SafetensorsError(
          `tpa.loadParams: tensor '${name}' (params.${s.key}) is missing; the file has: ${have}`,
        )
      }
      if (t.shape.length !== 2 || t.shape[0] !== s.shape[0] || t.shape[1] !== s.shape[1])
        throw new SafetensorsError(
          `tpa.loadParams: tensor '${name}' expected shape [${s.shape.join(', ')}] ([out, in]; ${s.layout}), got [${t.shape.join(', ')}]`,
        )
      params[s.key] = tensor(t.values, s.shape, { dtype: c.dtype, backend: opts.backend })
    }
  } catch (e) {
    dispose(params)
    throw e
  }
  return attachConfig(params, c)
}

/** Serialises a layer's weights (and its config, as metadata) to safetensors bytes. */
export async function saveParams(params: TpaParams, opts: SaveOptions = {}): Promise<Uint8Array> {
  const cfg = opts.config ?? configOf(params)
  if (!cfg)
    throw new ArgumentError(
      'tpa.saveParams: no config: pass opts.config, or params made by init() / loadParams()',
    )
  const c = resolveConfig(cfg)
  const names = tensorNames(c, opts)
  const host = new Map<string, HostTensor>()
  for (const s of paramSpecs(c)) {
    const t = params[s.key]
    if (!t) throw new ArgumentError(`tpa.saveParams: params.${s.key} is missing`)
    if (t.shape[0] !== s.shape[0] || t.shape[1] !== s.shape[1])
      throw new ArgumentError(
        `tpa.saveParams: params.${s.key} expected shape [${s.shape.join(', ')}], got [${t.shape.join(', ')}]`,
      )
    host.set(names[s.key], { dtype: t.dtype, shape: [...t.shape], values: await t.data() })
  }
  return serializeHostTensors(host, { ...opts.metadata, [CONFIG_METADATA_KEY]: configToJson(c) })
}
