import { readFileSync, renameSync } from 'node:fs'
import {
  dispose,
  flattenTree,
  isTensor,
  mapTree,
  parseSafetensors,
  Rng,
  readSafetensorsFile,
  type Tensor,
  writeSafetensorsFile,
} from '@attnkit/core'
import { Model, type ModelParams } from './model.js'
import type { Task } from './tasks.js'
import { type EvalRecord, makeOptimizer, type StepRecord, type TrainConfig, Trainer } from './trainer.js'

/**
 * A training checkpoint is one safetensors file: the float32 master parameters as
 * `params.<path>`, AdamW's moments as `adam.m.<path>` / `adam.v.<path>` (absent before the
 * first step), and the run (config, step, tokens, loss history, evaluations) as JSON in the
 * metadata key `attnkit.train`. Parameter paths are the params tree's keys joined by '.'
 * (e.g. `blocks.0.mixer.q`).
 */
export const CHECKPOINT_FORMAT = 'attnkit-train/1'
const META_KEY = 'attnkit.train'

interface CheckpointMeta {
  format: string
  config: TrainConfig
  step: number
  tokens: number
  history: StepRecord[]
  evals: EvalRecord[]
}

/**
 * Parameter paths ('blocks.0.mixer.q') in the order of core's flattenTree, which is the order
 * AdamW keeps its moments in: the same walk (tensors, arrays, plain objects; nothing else).
 */
export function paramNames(tree: unknown, prefix = '', out: string[] = []): string[] {
  if (isTensor(tree)) out.push(prefix)
  else if (Array.isArray(tree)) {
    for (const [i, t] of tree.entries()) paramNames(t, prefix ? `${prefix}.${i}` : String(i), out)
  } else if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype)
    for (const [k, v] of Object.entries(tree)) paramNames(v, prefix ? `${prefix}.${k}` : k, out)
  return out
}

/** What a checkpoint holds of a trainer. */
export type CheckpointSource = Pick<
  Trainer,
  'params' | 'optimizer' | 'config' | 'tokens' | 'history' | 'evals'
>

export async function saveCheckpoint(path: string, trainer: CheckpointSource): Promise<void> {
  const names = paramNames(trainer.params)
  const params = flattenTree(trainer.params)
  const { m, v, step } = trainer.optimizer.state()
  const tensors: Record<string, Tensor> = {}
  names.forEach((n, i) => {
    tensors[`params.${n}`] = params[i]
    if (m.length) {
      tensors[`adam.m.${n}`] = m[i]
      tensors[`adam.v.${n}`] = v[i]
    }
  })
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT,
    config: trainer.config,
    step,
    tokens: trainer.tokens,
    history: trainer.history,
    evals: trainer.evals,
  }
  // Write then rename, so an interrupted save never leaves a torn checkpoint behind.
  const tmp = `${path}.tmp`
  await writeSafetensorsFile(tmp, tensors, { [META_KEY]: JSON.stringify(meta) })
  renameSync(tmp, path)
}

/** The run stored in a checkpoint, without loading its tensors onto a backend. */
export function readCheckpointMeta(path: string): CheckpointMeta {
  const raw = parseSafetensors(new Uint8Array(readFileSync(path))).metadata[META_KEY]
  return parseMeta(path, raw)
}

function parseMeta(path: string, raw: string | undefined): CheckpointMeta {
  if (!raw)
    throw new Error(`checkpoint '${path}': no '${META_KEY}' metadata (not written by attnkit-bench train)`)
  const meta = JSON.parse(raw) as CheckpointMeta
  if (meta.format !== CHECKPOINT_FORMAT)
    throw new Error(`checkpoint '${path}': format expected '${CHECKPOINT_FORMAT}', got '${meta.format}'`)
  return meta
}

/**
 * Rebuilds a trainer from a checkpoint: same config (steps may be raised with `steps`), params,
 * optimiser moments and step, history. The next step then gives exactly the loss the original
 * run would have had (batches are a function of seed and step).
 */
export async function loadCheckpoint(
  path: string,
  makeTask: (config: TrainConfig) => Task,
  overrides: { steps?: number } = {},
): Promise<Trainer> {
  const { tensors, metadata } = await readSafetensorsFile(path)
  const used = new Set<string>()
  const take = (name: string, like: Tensor): Tensor => {
    const t = tensors[name]
    if (!t) throw new Error(`checkpoint '${path}': tensor '${name}' is missing`)
    if (t.dtype !== like.dtype || t.shape.join() !== like.shape.join())
      throw new Error(
        `checkpoint '${path}': tensor '${name}' expected ${like.dtype} [${like.shape.join(', ')}], got ${t.dtype} [${t.shape.join(', ')}]`,
      )
    used.add(name)
    return t
  }
  let fresh: ModelParams | undefined
  try {
    const meta = parseMeta(path, metadata[META_KEY])
    const config: TrainConfig = { ...meta.config, steps: overrides.steps ?? meta.config.steps }
    const model = await Model.create(config.model)
    // A fresh init gives the tree's structure and every tensor's shape and dtype.
    fresh = model.init(new Rng(config.seed))
    const names = paramNames(fresh)
    const templates = flattenTree(fresh)
    const loaded = names.map((n, i) => take(`params.${n}`, templates[i]))
    let k = 0
    const params = mapTree(fresh, () => loaded[k++]) as ModelParams
    const optimizer = makeOptimizer(config)
    if (meta.step > 0) {
      const m = names.map((n, i) => take(`adam.m.${n}`, templates[i]))
      const v = names.map((n, i) => take(`adam.v.${n}`, templates[i]))
      optimizer.loadState({ m, v, step: meta.step })
    }
    const trainer = new Trainer(config, model, params, optimizer, makeTask(config))
    trainer.tokens = meta.tokens
    trainer.history = meta.history
    trainer.evals = meta.evals
    return trainer
  } catch (e) {
    for (const n of used) tensors[n].dispose()
    throw e
  } finally {
    dispose(fresh)
    for (const [n, t] of Object.entries(tensors)) if (!used.has(n)) t.dispose()
  }
}
