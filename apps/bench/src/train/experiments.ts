import { Rng } from '@attnkit/core'
import type { BrownCorpus } from './data/brown.js'
import { niahBatch } from './data/niah.js'
import { measureDecodeMemory } from './decode-memory.js'
import { defaultMlpHidden, type ModelName, type ModelOptions, modelConfig } from './models.js'
import { loadMosa, loadTpa } from './packages.js'
import type { DataConfig } from './tasks.js'
import { computeDType, OPTIM_DEFAULTS, type Precision, type TrainConfig, type Trainer } from './trainer.js'

/**
 * The papers' headline comparisons at a scale that fits one GPU in minutes ('full', sized for
 * an H100) or a CPU in seconds ('tiny', the smoke test: same code path, numbers meaningless).
 */
export const EXPERIMENT_NAMES = ['mosa-vs-dense', 'tpa-vs-mha', 'lalte-niah'] as const
export type ExperimentName = (typeof EXPERIMENT_NAMES)[number]
export type Scale = 'full' | 'tiny'

export interface PlanOverrides {
  steps?: number
  /** Training tokens per run (sets steps = ceil(tokens / (batch x seqLen))). */
  tokens?: number
  seed?: number
  precision?: Precision
  lr?: number
}

export interface ExperimentRun {
  id: string
  /** What the run stands for in the comparison. */
  role: string
  config: TrainConfig
}

export type Measurements = Record<string, number | string | boolean | null | object>

export interface MeasureContext {
  trainer: Trainer
  run: ExperimentRun
  corpus: BrownCorpus
  scale: Scale
}

export interface Experiment {
  name: ExperimentName
  title: string
  /** The paper's headline claim this compares at small scale. */
  claim: string
  /** Wall time the full-scale preset is sized for on one H100 (all runs, evaluations included). */
  budgetSeconds: number
  /** Per-run time cap at full scale with --steps/--tokens: a run that hits it stops early and is marked so. */
  runCapSeconds: number
  /**
   * Full scale without --steps/--tokens: all runs get the step count that fits trainSeconds
   * (see runSession). Absent: the shape's fixed step count (with runCapSeconds per run).
   */
  calibrate?: { trainSeconds: number; minSteps: number; maxSteps: number }
  plan(scale: Scale, o: PlanOverrides): Promise<ExperimentRun[]>
  /** Measurements after training (cache bytes, FLOPs, decode memory). */
  measure?(m: MeasureContext): Promise<Measurements>
}

interface Shape {
  model: ModelOptions
  batch: number
  seqLen: number
  steps: number
  /** Evaluations per run, evenly spaced, the last at the end (1: at the end only). */
  evalPoints: number
  evalBatches: number
}

const evalEvery = (steps: number, points: number): number => (points > 1 ? Math.ceil(steps / points) : 0)

function trainConfig(
  model: TrainConfig['model'],
  data: DataConfig,
  s: Shape,
  scale: Scale,
  o: PlanOverrides,
): TrainConfig {
  const steps = o.tokens ? Math.ceil(o.tokens / (s.batch * s.seqLen)) : (o.steps ?? s.steps)
  const lr = o.lr ?? (scale === 'full' ? 2e-3 : 3e-3)
  return {
    model,
    data,
    batch: s.batch,
    seqLen: s.seqLen,
    steps,
    optim: {
      ...OPTIM_DEFAULTS,
      lr,
      minLr: lr / 10,
      warmup: Math.min(OPTIM_DEFAULTS.warmup, Math.ceil(steps / 10)),
    },
    seed: o.seed ?? 0,
    precision: o.precision ?? 'fp32',
    evalEvery: evalEvery(steps, s.evalPoints),
    evalBatches: s.evalBatches,
  }
}

const BROWN: DataConfig = { kind: 'brown' }

/**
 * The config with another step count: the warm-up (10% of the steps, at most the default) and
 * the evaluations (as many, evenly spaced) follow.
 */
export function withSteps(c: TrainConfig, steps: number): TrainConfig {
  const warmup = Math.min(OPTIM_DEFAULTS.warmup, Math.ceil(steps / 10))
  const points = c.evalEvery > 0 ? Math.round(c.steps / c.evalEvery) : 1
  return { ...c, steps, evalEvery: evalEvery(steps, points), optim: { ...c.optim, warmup } }
}

// --- 1. MoSA vs dense at equal FLOPs --------------------------------------------------------

const MOSA_SHAPES: Record<Scale, Shape & { sparsities: number[] }> = {
  full: {
    model: { dModel: 256, layers: 4, headDim: 64, seqLen: 1024 },
    batch: 16,
    seqLen: 1024,
    steps: 400,
    evalPoints: 4,
    evalBatches: 8,
    sparsities: [8, 32],
  },
  tiny: {
    model: { dModel: 32, layers: 2, headDim: 16, seqLen: 64 },
    batch: 4,
    seqLen: 64,
    steps: 12,
    evalPoints: 2,
    evalBatches: 2,
    sparsities: [4],
  },
}

const mosaVsDense: Experiment = {
  name: 'mosa-vs-dense',
  title: 'MoSA vs dense attention at equal training FLOPs',
  claim:
    'MoSA (arXiv 2505.00315): at the same compute, replacing dense heads with many sparse expert-choice heads lowers perplexity (up to 27% in the paper).',
  budgetSeconds: 240,
  runCapSeconds: 75,
  calibrate: { trainSeconds: 150, minSteps: 100, maxSteps: 1200 },
  async plan(scale, o) {
    const s = MOSA_SHAPES[scale]
    const runs: ExperimentRun[] = [
      {
        id: 'dense',
        role: 'baseline: MoSA layer with only dense heads',
        config: trainConfig(await modelConfig('mosa-dense', s.model), BROWN, s, scale, o),
      },
    ]
    for (const sparsity of s.sparsities)
      runs.push({
        id: `mosa-s${sparsity}`,
        role: `1 dense head + FLOP-matched MoSA heads, sparsity ${sparsity}`,
        config: trainConfig(
          await modelConfig('mosa', { ...s.model, sparsity, keepDense: 1 }),
          BROWN,
          s,
          scale,
          o,
        ),
      })
    return runs
  },
  async measure({ run }) {
    const mosa = await loadMosa()
    const c = run.config
    const spec = c.model.layers[0]
    if (spec.kind !== 'mosa') throw new Error(`mosa-vs-dense: run ${run.id} has a ${spec.kind} layer`)
    const cost = mosa.cost(spec.config, { seqLen: c.seqLen })
    return {
      attentionTrainingGflopsPerSeq: (cost.trainingFlops * c.model.layers.length) / 1e9,
      sparseHeads: spec.config.sparseHeads,
      denseHeads: spec.config.denseHeads,
      tokensPerSparseHead: cost.k,
    }
  },
}

// --- 2. TPA vs MHA vs GQA at equal parameters -------------------------------------------------

const TPA_SHAPES: Record<Scale, Shape> = {
  full: {
    model: { dModel: 256, layers: 4, headDim: 32, seqLen: 512 },
    batch: 32,
    seqLen: 512,
    steps: 400,
    evalPoints: 4,
    evalBatches: 4,
  },
  tiny: {
    model: { dModel: 32, layers: 2, headDim: 8, seqLen: 64 },
    batch: 4,
    seqLen: 64,
    steps: 12,
    evalPoints: 2,
    evalBatches: 2,
  },
}

/** Parameters of a config without allocating it: layer weights from the package specs. */
async function paramCount(config: TrainConfig['model']): Promise<number> {
  const tpa = await loadTpa()
  const { dModel: D, mlpHidden: F, vocabSize: V } = config
  let n = V * D + D
  for (const l of config.layers) {
    if (l.kind !== 'tpa') throw new Error(`paramCount: expected TPA-package layers, got '${l.kind}'`)
    n += 2 * D + 3 * D * F
    for (const s of tpa.paramSpecs(l.config)) n += s.shape[0] * s.shape[1]
  }
  return n
}

const tpaVsMha: Experiment = {
  name: 'tpa-vs-mha',
  title: 'TPA vs MHA vs GQA at equal parameters',
  claim:
    'TPA (arXiv 2501.06425): factorising Q, K and V into contextual tensor products matches or beats MHA/GQA validation loss while its KV cache is several times smaller.',
  budgetSeconds: 240,
  runCapSeconds: 75,
  calibrate: { trainSeconds: 150, minSteps: 100, maxSteps: 1200 },
  async plan(scale, o) {
    const s = TPA_SHAPES[scale]
    const heads = s.model.dModel / s.model.headDim
    const base: [string, ModelName, string, Partial<ModelOptions>][] = [
      ['mha', 'mha', `MHA, ${heads} heads`, {}],
      ['gqa', 'gqa', `GQA, ${heads} query / ${heads / 4} KV heads`, { kvHeads: heads / 4 }],
      ['tpa', 'tpa', `TPA, ${heads} heads, ranks Q6 K2 V2`, { ranks: [6, 2, 2] }],
    ]
    const configs = await Promise.all(
      base.map(([, name, , extra]) => modelConfig(name, { ...s.model, ...extra })),
    )
    // Equal parameters: every model gets the MHA model's count, by widening its SwiGLU MLPs.
    const target = await paramCount(configs[0])
    const perUnit = 3 * s.model.dModel * s.model.layers
    const runs: ExperimentRun[] = []
    for (let i = 0; i < base.length; i++) {
      const c = configs[i]
      const mlpHidden = c.mlpHidden + Math.round((target - (await paramCount(c))) / perUnit)
      runs.push({
        id: base[i][0],
        role: `${base[i][2]}; SwiGLU width ${mlpHidden} (default ${defaultMlpHidden(s.model.dModel)}) for equal parameters`,
        config: trainConfig({ ...c, mlpHidden }, BROWN, s, scale, o),
      })
    }
    return runs
  },
  async measure({ trainer, run, corpus }) {
    const tpa = await loadTpa()
    const c = run.config
    const dtype = computeDType(c.precision)
    const spec = c.model.layers[0]
    if (spec.kind !== 'tpa') throw new Error(`tpa-vs-mha: run ${run.id} has a ${spec.kind} layer`)
    const rows = corpus.validation.subarray(0, c.seqLen)
    const mem = await measureDecodeMemory(trainer.model, trainer.params, {
      tokens: Int32Array.from(rows),
      batch: 1,
      length: c.seqLen,
      snapshots: [c.seqLen],
      dtype,
    })
    const modelled = tpa.cost({ ...spec.config, dtype }, { seqLen: c.seqLen, layers: c.model.layers.length })
    return {
      kvCacheBytesPerToken: mem.points[0].bytesPerSequence / c.seqLen,
      kvCacheBytesAtSeqLen: mem.points[0].bytesPerSequence,
      kvCacheBytesPerTokenModelled: modelled.kvCache.bytesPerToken.tpa * c.model.layers.length,
      mhaKvCacheBytesPerTokenModelled: modelled.kvCache.bytesPerToken.mha * c.model.layers.length,
      cacheDType: dtype,
    }
  },
}

// --- 3. laLTE vs GDN vs GDN+SWA vs full attention on S-NIAH -----------------------------------

const NIAH_SHAPES: Record<
  Scale,
  Shape & {
    lengths: number[]
    evalLengths: number[]
    evalSamples: number
    decodeBatch: number
    /**
     * Needles per training sample. 1 (S-NIAH itself): in CPU trials (d=64, 2 layers) two
     * needles per sample lowered the answer loss more slowly at equal answer tokens per step.
     */
    trainNeedles: number
    /** Fraction of the steps over which the training lengths open, shortest first (see DataConfig). */
    curriculum: number
  }
> = {
  // Steps fixed rather than calibrated: the length curriculum makes the first steps (the ones
  // calibration times) short, so they would underestimate the later, longer ones. On the H100
  // at this shape (8 x 1024 tokens per step, lengths to 4096) the runs took full 13, laLTE 51,
  // GDN 60 and GDN+SWA 36 ms per step: 2000 steps are ~320 s of training.
  full: {
    model: { dModel: 256, layers: 4, headDim: 64, seqLen: 4096, attentionEvery: 4 },
    batch: 8,
    seqLen: 1024,
    steps: 2000,
    evalPoints: 4,
    evalBatches: 0,
    lengths: [128, 256, 512, 1024, 2048, 4096],
    evalLengths: [1024, 2048, 4096],
    evalSamples: 64,
    decodeBatch: 2,
    trainNeedles: 1,
    curriculum: 0.5,
  },
  tiny: {
    model: {
      dModel: 32,
      layers: 4,
      headDim: 16,
      seqLen: 256,
      attentionEvery: 4,
      window: 16,
      sinks: 2,
      poolSize: 16,
    },
    batch: 2,
    seqLen: 256,
    steps: 8,
    evalPoints: 1,
    evalBatches: 0,
    lengths: [128, 256],
    evalLengths: [128, 256],
    evalSamples: 4,
    decodeBatch: 2,
    trainNeedles: 1,
    curriculum: 0.5,
  },
}

/**
 * Weight of the haystack's language-modelling loss beside the answer's (see DataConfig): 0,
 * as in CPU trials a weight of 0.5 slowed the answer's learning.
 */
const FILLER_WEIGHT = 0

/** Decoding the longest S-NIAH prompt token by token is the slow part of measuring decode memory. */
const DECODE_CAP_SECONDS = 25

const lalteNiah: Experiment = {
  name: 'lalte-niah',
  title: 'laLTE vs GDN vs GDN+SWA vs full attention: S-NIAH retrieval and decode memory',
  claim:
    'laLTE (arXiv 2510.20787): interleaving Gated DeltaNet with sparse attention whose learnable token eviction keeps a bounded set of past tokens restores retrieval that linear attention forgets, at constant memory per token; the paper reports gains over GDN and GDN+SWA on retrieval benchmarks including S-NIAH.',
  budgetSeconds: 540,
  runCapSeconds: 240,
  async plan(scale, o) {
    const s = NIAH_SHAPES[scale]
    const data: DataConfig = {
      kind: 'niah',
      lengths: s.lengths,
      evalLengths: s.evalLengths,
      evalSamples: s.evalSamples,
      keyLength: 5,
      valueDigits: 6,
      trainNeedles: s.trainNeedles,
      fillerWeight: FILLER_WEIGHT,
      curriculum: s.curriculum,
    }
    const runs: [string, ModelName, string][] = [
      ['lalte', 'lalte', 'laLTE: 3 GDN : 1 LTE sparse attention'],
      ['gdn', 'gdn', 'GDN only'],
      ['gdn-swa', 'gdn-swa', 'GDN + sink/sliding-window attention'],
      ['full', 'full', 'full attention transformer'],
    ]
    return Promise.all(
      runs.map(async ([id, name, role]) => ({
        id,
        role,
        config: trainConfig(await modelConfig(name, s.model), data, s, scale, o),
      })),
    )
  },
  async measure({ trainer, run, corpus, scale }) {
    const s = NIAH_SHAPES[scale]
    const c = run.config
    const L = Math.max(...s.evalLengths)
    const b = niahBatch(new Rng(7).fork(L), corpus.validation, s.decodeBatch, {
      length: L,
      keyLength: 5,
      valueDigits: 6,
    })
    const mem = await measureDecodeMemory(trainer.model, trainer.params, {
      tokens: b.inputs,
      batch: b.batch,
      length: L,
      snapshots: s.evalLengths,
      dtype: computeDType(c.precision),
      answer: { from: L - 6, targets: b.targets },
      maxSeconds: scale === 'full' ? DECODE_CAP_SECONDS : undefined,
    })
    return { decode: mem }
  },
}

export const EXPERIMENTS: Record<ExperimentName, Experiment> = {
  'mosa-vs-dense': mosaVsDense,
  'tpa-vs-mha': tpaVsMha,
  'lalte-niah': lalteNiah,
}
