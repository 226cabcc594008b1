import {
  type BenchResults,
  CELL_STATUSES,
  type CellResult,
  RESULTS_SCHEMA,
  RESULTS_VERSION,
} from '../src/schema.js'

/** A timed, checked cell with the given median; other fields plausible. */
export function cell(over: Partial<CellResult> & { medianMs?: number } = {}): CellResult {
  const { medianMs = 2, ...rest } = over
  const dims = rest.dims ?? { batch: 1, heads: 8, seqLen: 512, headDim: 64 }
  const base: CellResult = {
    key: '',
    mechanism: 'dense',
    variant: 'causal',
    backend: 'cpu',
    mode: 'forward',
    dtype: 'float32',
    dims,
    label: `B${dims.batch} H${dims.heads} T${dims.seqLen} D${dims.headDim}`,
    status: 'ok',
    correctness: {
      reference: 'cpu-float64',
      dims,
      computeDType: 'float32',
      maxRelError: 1e-7,
      tolerance: 1.2e-4,
      passed: true,
      outputs: ['out'],
      worstOutput: 'out',
    },
    timing: {
      source: 'host',
      warmup: 1,
      repeats: 3,
      medianMs,
      p10Ms: medianMs * 0.9,
      p90Ms: medianMs * 1.1,
      minMs: medianMs * 0.9,
      maxMs: medianMs * 1.2,
      wallMedianMs: medianMs,
      samplesMs: [medianMs * 0.9, medianMs, medianMs * 1.2],
    },
    cost: { flops: 1e9, bytes: 1e6 },
    throughput: {
      flopsPerSecond: 1e12 / medianMs,
      bytesPerSecond: 1e9 / medianMs,
      flopsFractionOfPeak: 0.5,
      bytesFractionOfPeak: null,
    },
    peakBytes: 4 << 20,
    kvCacheBytes: 2 << 20,
    warnings: [],
    ...rest,
  }
  const d = Object.entries(base.dims)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  base.key = `${base.mechanism}/${base.variant}/${base.backend}/${base.mode}/${base.dtype}/${d}`
  return base
}

export function results(cells: CellResult[]): BenchResults {
  const counts = Object.fromEntries(CELL_STATUSES.map((s) => [s, cells.filter((c) => c.status === s).length]))
  return {
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    createdAt: '2025-01-01T00:00:00.000Z',
    durationS: 1.5,
    command: ['attnkit-bench', 'run'],
    preset: 'smoke',
    seed: 1,
    machine: {
      hostname: 'h',
      os: 'Linux',
      arch: 'x64',
      cpu: 'cpu',
      cpuCount: 2,
      memoryBytes: 1 << 30,
      node: '24.0.0',
    },
    packages: { '@attnkit/core': '0.1.0' },
    git: { commit: null, dirty: null },
    backends: [{ name: 'cpu', status: 'ok', device: 'CPU' }],
    mechanisms: [{ name: 'dense', status: 'ok', variants: ['causal'] }],
    cells,
    kvCache: [
      {
        mechanism: 'dense',
        variant: 'causal',
        dtype: 'float32',
        dims: { batch: 1, heads: 8, seqLen: 512, headDim: 64 },
        points: [
          { context: 1024, bytes: 4 << 20 },
          { context: 2048, bytes: 8 << 20 },
        ],
      },
    ],
    summary: { total: cells.length, ...counts } as BenchResults['summary'],
    notes: ['a note'],
  }
}
