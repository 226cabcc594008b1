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
  cellBudgetMs: 1500,
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
      variants: ['s8'],
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 256, 64)],
    },
    {
      mechanism: 'mosa',
      variants: ['s8'],
      modes: ['decode'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 1024, 64)],
    },
    {
      mechanism: 'tpa',
      variants: ['tpa'],
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 256, 64)],
    },
    {
      mechanism: 'tpa',
      variants: ['tpa'],
      modes: ['decode'],
      dtypes: ['float32'],
      dims: [attn(1, 8, 2048, 64)],
    },
    { mechanism: 'gdn', modes: ['forward'], dtypes: ['float32'], dims: [attn(1, 4, 256, 64)] },
    { mechanism: 'gdn', modes: ['forward+backward'], dtypes: ['float32'], dims: [attn(1, 4, 128, 64)] },
    { mechanism: 'gdn', modes: ['decode'], dtypes: ['float32'], dims: [attn(1, 4, 2048, 64)] },
    {
      mechanism: 'lalte',
      variants: ['lalte'],
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32'],
      dims: [attn(1, 2, 128, 32)],
    },
    {
      mechanism: 'lalte',
      variants: ['lalte'],
      modes: ['decode'],
      dtypes: ['float32'],
      dims: [attn(1, 2, 1024, 32)],
    },
  ],
}

const PAPER_CONTEXTS = [4096, 32768, 131072]
const seqs = (ts: number[], batch: number, heads: number, headDim: number): Dims[] =>
  ts.map((t) => attn(batch, heads, t, headDim))

/** The papers' shapes, GPU-sized; cells too large for the CPU are skipped on it, saying so. */
const PAPER: Preset = {
  name: 'paper',
  description:
    "the papers' shapes: dense/MoSA T=1024 and 8192 (head dim 64, sparsity 4/8/16), TPA, laLTE and GDN decode at 4K/32K/128K, GDN T=4K/16K (head dim 128)",
  warmup: 2,
  repeats: 10,
  minRepeats: 3,
  cellBudgetMs: 1000,
  groups: [
    {
      mechanism: 'matmul',
      modes: ['forward'],
      dtypes: ['float32', 'float16'],
      dims: [{ m: 4096, n: 4096, k: 4096 }],
      headline: 'matmul 4096^3',
    },
    // MoSA (Piekos et al.): T=1024 and 8192, head dim 64, sparsity 4/8/16 against the dense layer.
    {
      mechanism: 'dense',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float32', 'float16'],
      dims: seqs([1024, 8192], 4, 16, 64),
    },
    {
      mechanism: 'mosa',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float16'],
      dims: seqs([1024, 8192], 4, 16, 64),
    },
    // TPA (T6): 16 heads of 64 decoding at 4K/32K/128K; the dense (MHA) cache as the baseline.
    { mechanism: 'dense', modes: ['decode'], dtypes: ['float16'], dims: seqs(PAPER_CONTEXTS, 1, 16, 64) },
    {
      mechanism: 'tpa',
      variants: ['tpa', 'mha', 'gqa4', 'mqa'],
      modes: ['decode'],
      dtypes: ['float16'],
      dims: seqs(PAPER_CONTEXTS, 1, 16, 64),
    },
    {
      mechanism: 'tpa',
      variants: ['tpa', 'mha'],
      modes: ['forward', 'forward+backward'],
      dtypes: ['float16'],
      dims: seqs([1024], 4, 16, 64),
    },
    // Gated DeltaNet / laLTE (He & Garner): head dim 128, T=4K/16K; decode at 4K/32K/128K.
    {
      mechanism: 'gdn',
      modes: ['forward', 'forward+backward'],
      dtypes: ['float16'],
      dims: seqs([4096, 16384], 1, 16, 128),
    },
    { mechanism: 'gdn', modes: ['decode'], dtypes: ['float16'], dims: seqs(PAPER_CONTEXTS, 1, 16, 128) },
    { mechanism: 'lalte', modes: ['decode'], dtypes: ['float16'], dims: seqs(PAPER_CONTEXTS, 1, 16, 128) },
    { mechanism: 'lalte', modes: ['forward'], dtypes: ['float16'], dims: seqs([4096], 1, 16, 128) },
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
  cellBudgetMs: 1000,
  fitMs: 2000,
  groups: [
    {
      mechanism: 'dense',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 64),
      sweep: true,
    },
    {
      mechanism: 'mosa',
      variants: ['dense', 's8'],
      modes: ['forward'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 64),
      sweep: true,
    },
    {
      mechanism: 'tpa',
      variants: ['tpa'],
      modes: ['forward'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 64),
      sweep: true,
    },
    {
      mechanism: 'gdn',
      modes: ['forward'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 128),
      sweep: true,
    },
    {
      mechanism: 'lalte',
      variants: ['lalte'],
      modes: ['forward'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 128),
      sweep: true,
    },
    {
      mechanism: 'dense',
      modes: ['decode'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 64),
      sweep: true,
    },
    {
      mechanism: 'tpa',
      variants: ['tpa', 'mha'],
      modes: ['decode'],
      dtypes: ['float16'],
      dims: seqs(SCALING_T, 1, 16, 64),
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
