import { type DType, dispose, Rng, runKernel, tensor, toBackend } from '@attnkit/core'
import { afterAll, describe, expect, it } from 'vitest'
import {
  DECODE_COMBINE_KERNEL,
  recordLayout,
  registerFusedKernels,
  resolveConfig,
  type TpaConfig,
} from '../src/index.js'
import type { DecodeShape } from '../src/kernels/plan.js'
import { CudaEmuBackend, EMU_NAME, gxxAvailable } from './emu/cuda-emu-backend.js'
import { fusedSuite } from './fused-suite.js'
import { maxAbs, maxAbsDiff } from './reference.js'

const emu = gxxAvailable() ? new CudaEmuBackend() : undefined
if (!emu) console.log('skipping the emulated CUDA kernel tests: g++ is not on PATH')
else registerFusedKernels(EMU_NAME, 'cuda')

// Shapes that reach every CUDA code path: the FMA kernel with contextual and fixed A, ranks that
// differ, vector and scalar loads; the tensor-core kernel with R = 2 and R = 4.
const CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 16, heads: 16, headDim: 32 },
  { variant: 'tpa', dModel: 16, heads: 16, headDim: 32, qRank: 2, kRank: 4, vRank: 4 },
  { variant: 'tpa-kvonly', dModel: 16, heads: 4, headDim: 64, kRank: 3, vRank: 1 },
  { variant: 'gqa', dModel: 16, heads: 4, kvHeads: 2, headDim: 32 },
]

describe.skipIf(!emu)(
  'CUDA kernels, emulated on the CPU (g++, threads as fibers), match the portable path',
  () => {
    afterAll(() => emu?.dispose())
    fusedSuite(emu, CONFIGS, ['float32', 'float16', 'bfloat16'], { store: 37, tail: 5 }, [
      {
        name: 'tensor cores, many splits',
        tuning: { targetBlocks: 16, minTokensPerSplit: 8, tensorCores: true },
      },
      // The emulated GPU reports 4 SMs: 8 blocks for the 2 batch rows, 4 splits each.
      {
        name: 'splits from the SM count (2 blocks per SM)',
        tuning: { blocksPerSm: 2, minTokensPerSplit: 1, tensorCores: true },
      },
    ])

    // A context no tile size divides (307 tokens, the last split short): 10 splits per row of
    // the tensor-core kernel (tiles of 32), and the SM-derived plan (12 blocks on the emulated
    // 4 SMs, so 6 wanted per row, 5 after rounding to tiles) through both kernels.
    describe('a long uneven context', () => {
      fusedSuite(emu, [CONFIGS[0], CONFIGS[3]], ['float32', 'float16'], { store: 301, tail: 6 }, [
        {
          name: 'tensor cores, ten splits',
          tuning: { targetBlocks: 40, minTokensPerSplit: 1, tensorCores: true },
        },
        {
          name: 'splits from the SM count (3 blocks per SM)',
          tuning: { blocksPerSm: 3, minTokensPerSplit: 1, tensorCores: false },
        },
      ])
    })

    // The merge alone, on made-up partials: more splits than its 64 split groups and its 256
    // threads, so every thread loops, plus an empty split (max -1e30, sum 0) that must weigh nothing.
    describe('tpa.decodeCombine merges any number of splits', () => {
      for (const dtype of ['float32', 'float16'] as DType[])
        for (const headDim of [32, 64])
          for (const splits of [1, 7, 64, 65, 300])
            it(`${splits} splits, d_h ${headDim}, ${dtype}`, async () => {
              const batch = 3
              const heads = 4
              const outScale = 0.5
              const rng = new Rng(splits * headDim)
              const o = Float32Array.from(rng.normalArray(batch * splits * heads * headDim))
              const ml = new Float32Array(batch * splits * heads * 2)
              const uniform = rng.uniformArray(ml.length)
              for (let k = 0; k < ml.length / 2; k++) {
                const empty = splits > 1 && k % 11 === 3
                // log2-domain maxima in [-6, 6), sums in [0.5, 3)
                ml[2 * k] = empty ? -1e30 : -6 + 12 * uniform[2 * k]
                ml[2 * k + 1] = empty ? 0 : 0.5 + 2.5 * uniform[2 * k + 1]
              }
              const want = mergeSplits(o, ml, { batch, splits, heads, headDim, outScale })
              const partO = await toBackend(tensor(o, [batch, splits, heads, headDim]), emu!)
              const partML = await toBackend(tensor(ml, [batch, splits, heads, 2]), emu!)
              const config = resolveConfig({ variant: 'tpa', dModel: 16, heads, headDim, dtype })
              const shape: DecodeShape = {
                batch,
                heads,
                headDim,
                kRank: config.k.rank,
                vRank: config.v.rank,
                layout: recordLayout(config),
                storeCap: 1,
                tailCap: 1,
                storeLen: 1,
                tailLen: 0,
                dtype,
              }
              const [got] = runKernel(DECODE_COMBINE_KERNEL, { partO, partML }, { shape, splits, outScale })
              expect(got.dtype).toBe(dtype)
              const g = await got.data()
              const tol = dtype === 'float32' ? 1e-6 : 1e-3
              expect(maxAbsDiff(g, want) / maxAbs(want)).toBeLessThan(tol)
              dispose([partO, partML, got])
            })
    })
  },
)

/** The split merge on the host (float64): outScale * sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s. */
function mergeSplits(
  o: Float32Array,
  ml: Float32Array,
  s: { batch: number; splits: number; heads: number; headDim: number; outScale: number },
): Float64Array {
  const out = new Float64Array(s.batch * s.heads * s.headDim)
  for (let b = 0; b < s.batch; b++)
    for (let i = 0; i < s.heads; i++) {
      const k = (split: number) => (b * s.splits + split) * s.heads + i
      let m = -Infinity
      for (let p = 0; p < s.splits; p++) m = Math.max(m, ml[2 * k(p)])
      let l = 0
      for (let p = 0; p < s.splits; p++) l += 2 ** (ml[2 * k(p)] - m) * ml[2 * k(p) + 1]
      for (let d = 0; d < s.headDim; d++) {
        let acc = 0
        for (let p = 0; p < s.splits; p++) acc += 2 ** (ml[2 * k(p)] - m) * o[k(p) * s.headDim + d]
        out[(b * s.heads + i) * s.headDim + d] = (s.outScale * acc) / l
      }
    }
  return out
}
