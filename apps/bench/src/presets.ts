import type { DType } from '@attnkit/core'
import { UsageError } from './args.js'
import type { Dims, Mode } from './schema.js'

/** A block of cells: one mechanism x its variants x modes x dtypes x dims. */
export interface CellGroup {
  mechanism: string
  /** Variant names; all of the mechanism's variants when omitted. */
  variants?: string[]
  modes: Mode[]
  dtypes: DType[]
  dims: Dims[]
  /** Marks the foundation's headline numbers, printed first. */
  headline?: string
  /**
   * Scaling sweep: dims are in increasing size; on each backend the sweep stops after the first
   * size that does not fit (an error, a skip, or a run slower than the preset's fitMs).
   */
  sweep?: boolean
}

export interface Preset {
  name: string
  description: string
  warmup: number
  /** Timed runs per cell, at most... */
  repeats: number
  /** ...and at least, when a cell's time budget runs out first. */
  minRepeats: number
  /** Stop adding timed runs once this much time was spent on a cell (after minRepeats). */
  cellBudgetMs: number
  /** Sweeps: a run slower than this does not "fit"; the sweep stops after it. */
  fitMs?: number
  groups: CellGroup[]
}

const attn = (batch: number, heads: number, seqLen: number, headDim: number): Dims => ({
  batch,
  heads,
  seqLen,
  headDim,
})

const doublings = (from: number, to: number): number[] => {
  const out: number[] = []
  for (let t = from; t <= to; t *= 2) out.push(t)
  return out
}

const SMOKE: Preset = {
  name: 'smoke',
  description:
    'seconds on the CPU reference: the GEMM rate, dense attention, and each mechanism at a small size',
  warmup: 1,
  repeats: 5,
  minRepeats: 3,
  cellBudgetMs: 2000,
  groups: [
    {
      mechanism: 'matmul',
      modes: ['forward'],
      dtypes: ['float32'],
      dims: [{ m: 1024, n: 1024, k: 1024 }],
      headline: 'matmul 1024^3 float32',
    },
    {
      mechanism: 'dense',
      modes: ['forward'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 512, 64)],
      headline: 'dense causal attention forward, batch 1, heads 8, seq 512, head dim 64, float32',
    },
    { mechanism: 'dense', modes: ['forward+backward'], dtypes: ['float32'], dims: [attn(1, 8, 256, 64)] },
    { mechanism: 'dense', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 8, 2048, 64)] },
    {
      mechanism: 'mosa',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 256, 64)],
    },
    { mechanism: 'mosa', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 8, 1024, 64)] },
    {
      mechanism: 'tpa',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 256, 64)],
    },
    { mechanism: 'tpa', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 8, 2048, 64)] },
    {
      mechanism: 'gdn',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 4, 256, 64)],
    },
    { mechanism: 'gdn', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 4, 2048, 64)] },
    {
      mechanism: 'lalte',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 4, 256, 64)],
    },
    { mechanism: 'lalte', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 4, 2048, 64)] },
  ],
}

const PAPER_CONTEXTS = [4096, 32768, 131072]

/** The papers' shapes, GPU-sized; cells too large for the CPU are skipped on it, saying so. */
const PAPER: Preset = {
  name: 'paper',
  description:
    "the papers' shapes: MoSA/dense T=1024 and 8192 (head dim 64, sparsity 4/8/16), TPA and laLTE decode at 4K/32K/128K, GDN T=4K/16K (head dim 128)",
  warmup: 2,
  repeats: 10,
  minRepeats: 3,
  cellBudgetMs: 1500,
  groups: [
    {
      mechanism: 'matmul',
      modes: ['forward'],
      dtypes: ['float32', 'float16'],
      dims: [{ m: 4096, n: 4096, k: 4096 }],
      headline: 'matmul 4096^3',
    },
    {
      mechanism: 'dense',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32', 'float16'],
      dims: [attn(8, 16, 1024, 64), attn(1, 16, 8192, 64)],
    },
    {
      mechanism: 'mosa',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32', 'float16'],
      dims: [attn(8, 16, 1024, 64), attn(1, 16, 8192, 64)],
    },
    {
      mechanism: 'dense',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: PAPER_CONTEXTS.map((t) => attn(1, 16, t, 64)),
    },
    {
      mechanism: 'tpa',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: PAPER_CONTEXTS.map((t) => attn(1, 16, t, 64)),
    },
    {
      mechanism: 'tpa',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float16'],
      dims: [attn(8, 16, 1024, 64)],
    },
    {
      mechanism: 'gdn',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32', 'float16'],
      dims: [attn(1, 16, 4096, 128), attn(1, 16, 16384, 128)],
    },
    {
      mechanism: 'gdn',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: PAPER_CONTEXTS.map((t) => attn(1, 16, t, 128)),
    },
    {
      mechanism: 'lalte',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: PAPER_CONTEXTS.map((t) => attn(1, 16, t, 128)),
    },
    { mechanism: 'lalte', modes: ['forward'], dtypes: ['float16'], dims: [attn(1, 16, 4096, 128)] },
  ],
}

const SCALING_T = doublings(256, 131072)

/** T from 256 doubling to the largest that fits (memory, and fitMs per run), per backend. */
const SCALING: Preset = {
  name: 'scaling',
  description: 'sequence length from 256 doubling to the largest that fits (in memory, and 2 s per run)',
  warmup: 1,
  repeats: 5,
  minRepeats: 3,
  cellBudgetMs: 1500,
  fitMs: 2000,
  groups: [
    {
      mechanism: 'dense',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 64)),
      sweep: true,
    },
    {
      mechanism: 'mosa',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 64)),
      sweep: true,
    },
    {
      mechanism: 'tpa',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 64)),
      sweep: true,
    },
    {
      mechanism: 'gdn',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 128)),
      sweep: true,
    },
    {
      mechanism: 'lalte',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 128)),
      sweep: true,
    },
    {
      mechanism: 'dense',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 64)),
      sweep: true,
    },
    {
      mechanism: 'tpa',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 64)),
      sweep: true,
    },
    {
      mechanism: 'lalte',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: SCALING_T.map((t) => attn(1, 16, t, 128)),
      sweep: true,
    },
  ],
}

export const PRESETS: Record<string, Preset> = { smoke: SMOKE, paper: PAPER, scaling: SCALING }

export function getPreset(name: string): Preset {
  const p = PRESETS[name]
  if (!p)
    throw new UsageError(
      `--preset: unknown preset '${name}' (expected one of ${Object.keys(PRESETS).join(', ')})`,
    )
  return p
}
