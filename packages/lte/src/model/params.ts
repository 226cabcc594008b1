import {
  type Backend,
  cast,
  type HostTensor,
  isTensor,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  type Tensor,
  tensor,
} from '@attnkit/core'
import type { ParamDType } from '../nn/init.js'
import type { ModelConfig } from './config.js'
import { attentionLayerConfig, gdnLayerConfig } from './config.js'
import type { ModelParams } from './model.js'

/** Flattens a parameter tree to PyTorch-style names: nested keys and array indices joined by '.'. */
export function flattenParams(
  tree: unknown,
  prefix = '',
  out: Record<string, Tensor> = {},
): Record<string, Tensor> {
  if (isTensor(tree)) out[prefix] = tree
  else if (Array.isArray(tree))
    tree.forEach((v, i) => {
      flattenParams(v, prefix ? `${prefix}.${i}` : String(i), out)
    })
  else if (tree && typeof tree === 'object')
    for (const [k, v] of Object.entries(tree)) flattenParams(v, prefix ? `${prefix}.${k}` : k, out)
  return out
}

/** Every parameter of a model: its name, shape and what it is (the README's table). */
export function parameterShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>()
  const D = c.dModel
  m.set('model.embeddings.weight', [c.vocabSize, D])
  c.layers.forEach((kind, i) => {
    const p = `model.layers.${i}`
    m.set(`${p}.attn_norm.weight`, [D])
    if (kind === 'gdn') {
      const g = gdnLayerConfig(c)
      const [H, Dk, Dv, K] = [g.numHeads, g.headKDim, g.headVDim, g.convSize]
      m.set(`${p}.attn.q_proj.weight`, [H * Dk, D])
      m.set(`${p}.attn.k_proj.weight`, [H * Dk, D])
      m.set(`${p}.attn.v_proj.weight`, [H * Dv, D])
      m.set(`${p}.attn.a_proj.weight`, [H, D])
      m.set(`${p}.attn.b_proj.weight`, [H, D])
      m.set(`${p}.attn.A_log`, [H])
      m.set(`${p}.attn.dt_bias`, [H])
      m.set(`${p}.attn.q_conv1d.weight`, [H * Dk, 1, K])
      m.set(`${p}.attn.k_conv1d.weight`, [H * Dk, 1, K])
      m.set(`${p}.attn.v_conv1d.weight`, [H * Dv, 1, K])
      m.set(`${p}.attn.g_proj.weight`, [H * Dv, D])
      m.set(`${p}.attn.o_norm.weight`, [Dv])
      m.set(`${p}.attn.o_proj.weight`, [D, H * Dv])
    } else {
      const a = attentionLayerConfig(c, kind)
      const [H, Hk, Dh] = [a.numHeads, a.numKvHeads, a.headDim]
      m.set(`${p}.attn.q_proj.weight`, [H * Dh, D])
      m.set(`${p}.attn.k_proj.weight`, [Hk * Dh, D])
      m.set(`${p}.attn.v_proj.weight`, [Hk * Dh, D])
      m.set(`${p}.attn.o_proj.weight`, [D, H * Dh])
      if (kind === 'lte') {
        const s = a.scorer
        for (let l = 0; l < s.layers; l++) {
          const cin = l === 0 ? D : s.hidden
          const cout = l === s.layers - 1 ? Hk : s.hidden
          m.set(`${p}.attn.lte_scorer.convs.${l}.weight`, [cout, cin, s.kernelSize])
          m.set(`${p}.attn.lte_scorer.convs.${l}.bias`, [cout])
        }
      }
    }
    m.set(`${p}.mlp_norm.weight`, [D])
    m.set(`${p}.mlp.gate_proj.weight`, [c.mlpHidden, D])
    m.set(`${p}.mlp.up_proj.weight`, [c.mlpHidden, D])
    m.set(`${p}.mlp.down_proj.weight`, [D, c.mlpHidden])
  })
  m.set('model.norm.weight', [D])
  if (!c.tieEmbeddings) m.set('lm_head.weight', [c.vocabSize, D])
  return m
}

/** Serialises parameters to safetensors bytes (names from flattenParams; the config in metadata). */
export async function saveParams(c: ModelConfig, p: ModelParams): Promise<Uint8Array> {
  return serializeSafetensors(flattenParams(p), { format: 'pt', attnkit_lte_config: JSON.stringify(c) })
}

export interface LoadOptions {
  backend?: Backend
  /** Convert every tensor to this dtype (default: keep the file's float dtype). */
  dtype?: ParamDType
}

/**
 * Loads parameters for `c` from safetensors bytes (e.g. a PyTorch state dict saved with
 * safetensors.torch.save_file). Every expected name must be present with its exact shape; unknown
 * names are an error (so a mismatched config is caught, not silently ignored).
 */
export function loadParams(c: ModelConfig, bytes: Uint8Array, opts: LoadOptions = {}): ModelParams {
  const expected = parameterShapes(c)
  const parsed = parseSafetensors(bytes)
  const problems: string[] = []
  for (const [name, shape] of expected) {
    const t = parsed.tensors.get(name)
    if (!t) problems.push(`missing '${name}' [${shape}]`)
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      problems.push(`'${name}' has shape [${t.shape}], expected [${shape}]`)
    else if (!['float32', 'float64', 'float16', 'bfloat16'].includes(t.dtype))
      problems.push(`'${name}' has dtype ${t.dtype}, expected a float dtype`)
  }
  for (const name of parsed.tensors.keys()) if (!expected.has(name)) problems.push(`unexpected '${name}'`)
  if (problems.length) {
    const shown = problems.slice(0, 8).join('; ')
    throw new SafetensorsError(
      `loadParams: the file does not match model '${c.name}' (${problems.length} problem(s)): ${shown}${problems.length > 8 ? '; ...' : ''}`,
    )
  }
  const flat: Record<string, Tensor> = {}
  for (const [name, t] of parsed.tensors) flat[name] = upload(t, opts)
  return unflatten(flat) as ModelParams
}

function upload(t: HostTensor, opts: LoadOptions): Tensor {
  const x = tensor(t.values, t.shape, { dtype: t.dtype, backend: opts.backend })
  if (!opts.dtype || opts.dtype === t.dtype) return x
  const y = cast(x, opts.dtype)
  x.dispose()
  return y
}

/** Rebuilds the tree from dotted names; all-numeric keys become arrays. */
function unflatten(flat: Record<string, Tensor>): unknown {
  const root: Record<string, unknown> = {}
  for (const [name, t] of Object.entries(flat)) {
    const parts = name.split('.')
    let node = root
    parts.forEach((part, i) => {
      if (i === parts.length - 1) node[part] = t
      else node = (node[part] ??= {}) as Record<string, unknown>
    })
  }
  const arrays = (n: unknown): unknown => {
    if (isTensor(n) || !n || typeof n !== 'object') return n
    const entries = Object.entries(n as Record<string, unknown>).map(([k, v]) => [k, arrays(v)] as const)
    if (entries.length && entries.every(([k]) => /^\d+$/.test(k))) {
      const out: unknown[] = []
      for (const [k, v] of entries) out[Number(k)] = v
      return out
    }
    return Object.fromEntries(entries)
  }
  return arrays(root)
}
