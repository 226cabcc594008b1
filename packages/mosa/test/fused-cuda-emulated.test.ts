import { dispose, Rng, runKernel, setBackend, type Tensor, tensor } from '@attnkit/core'
import { beforeAll, describe, expect, it } from 'vitest'
import { cudaGemms, cudaLibraryGemms } from '../src/fused/library-gemms.js'
import {
  attendBackwardAtomic,
  attendBackwardDelta,
  cudaAttendBackward,
  cudaAttendSplit,
  cudaKernelVariant,
} from '../src/fused/programs.js'
import { ensureFusedKernels } from '../src/fused/register.js'
import { forwardWithRouting, KERNELS, type MosaConfig } from '../src/index.js'
import { EmulatedCudaBackend, emulatorUnavailable } from './cuda-emu/emulated-cuda.js'
import { expectFusedMatchesPortable } from './fused-check.js'
import { problem, relError } from './helpers.js'

/**
 * The fused forward attention alone (mosa_attend, or mosa_attend_part + combine) on random
 * q, k, v [B, H, K, D] against causal attention in float64: max-normalised errors of out and lse.
 */
async function attendErrors(B: number, H: number, K: number, D: number, seed: number) {
  ensureFusedKernels()
  const rng = new Rng(seed)
  const host = [0, 1, 2].map(() => Float64Array.from(Float32Array.from(rng.normalArray(B * H * K * D))))
  const [q, k, v] = host.map((a) => tensor(a, [B, H, K, D], 'float32'))
  const scale = 1 / Math.sqrt(D)
  const [out, lse] = runKernel(KERNELS.attend, { q, k, v }, { scale }) as Tensor[]
  const refOut = new Float64Array(B * H * K * D)
  const refLse = new Float64Array(B * H * K)
  const [qh, kh, vh] = host
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < K; i++) {
      const row = bh * K + i
      const s = new Float64Array(i + 1)
      let m = -Infinity
      for (let j = 0; j <= i; j++) {
        let dot = 0
        for (let d = 0; d < D; d++) dot += qh[row * D + d] * kh[(bh * K + j) * D + d]
        s[j] = dot * scale
        m = Math.max(m, s[j])
      }
      let l = 0
      for (let j = 0; j <= i; j++) {
        s[j] = Math.exp(s[j] - m)
        l += s[j]
      }
      refLse[row] = m + Math.log(l)
      for (let j = 0; j <= i; j++)
        for (let d = 0; d < D; d++) refOut[row * D + d] += (s[j] / l) * vh[(bh * K + j) * D + d]
    }
  const errors = {
    out: relError(Float64Array.from(await out.data()), refOut),
    lse: relError(Float64Array.from(await lse.data()), refLse),
  }
  dispose([q, k, v, out, lse])
  return errors
}

const missing = emulatorUnavailable()

describe.skipIf(missing)(
  `fused CUDA kernels, run on the CPU by the emulator${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    let emulator: EmulatedCudaBackend
    beforeAll(async () => {
      emulator = new EmulatedCudaBackend()
      await setBackend(emulator)
    })
    const base: MosaConfig = { dModel: 20, headDim: 32, denseHeads: 0, sparseHeads: 3, sparsity: 3 }

    // Rows that end mid-tile (K a multiple of neither the key tile nor the 64 or 128 queries of a
    // block) and head dims with one and two m-tiles per warp: a wrong key permutation in P . V, a
    // wrong diagonal or a missed row shows at once against the float64 reference. Each register
    // forward tuning (key tiles of 16, 32, 64; Q split once or per tile) and the earlier kernel,
    // whole and split over keys.
    it('forward attention kernel against float64: K = 150, 200, D = 32, 64, 128, whole and split, every variant', async () => {
      const saved = { tiles: cudaAttendSplit.tiles, variant: { ...cudaKernelVariant } }
      const variants: [Partial<typeof cudaKernelVariant>, number[]][] = [
        [{}, [32, 64, 128]],
        [{ attendSplitQ: false }, [64, 128]],
        [{ attendKeyTile: 16 }, [64]],
        [{ attendKeyTile: 64, attendSplitQ: false }, [32, 64]],
        [{ registerAttend: false }, [32, 64, 128]],
      ]
      const shapes = { 32: [2, 1, 200], 64: [1, 2, 150], 128: [1, 1, 150] } as Record<number, number[]>
      try {
        for (const [variant, dims] of variants)
          for (const D of dims)
            for (const tiles of [saved.tiles, 1]) {
              Object.assign(cudaKernelVariant, saved.variant, variant)
              cudaAttendSplit.tiles = tiles
              const [B, H, K] = shapes[D]
              const e = await attendErrors(B, H, K, D, K + D + tiles)
              const what = `${JSON.stringify(variant)}, K ${K}, D ${D}, split tiles ${tiles}: ${JSON.stringify(e)}`
              expect(e.out, what).toBeLessThan(2e-6)
              expect(e.lse, what).toBeLessThan(2e-6)
            }
      } finally {
        cudaAttendSplit.tiles = saved.tiles
        Object.assign(cudaKernelVariant, saved.variant)
      }
    })

    it('match the portable path: forward, selection and every gradient (batch 2)', async () => {
      await expectFusedMatchesPortable(base, 2, 40, 1)
    })

    it('several tiles (k = 100: 2 attention tiles; dModel 70 > 64 columns), RoPE off', async () => {
      await expectFusedMatchesPortable(
        { ...base, dModel: 70, sparseHeads: 2, sparsity: 2, rope: false },
        1,
        200,
        2,
      )
    })

    it('several GEMM row tiles (k = 300 > 128) and attention tiles (5 of 64), dModel 130 > 2 x 64', async () => {
      await expectFusedMatchesPortable({ ...base, dModel: 130, sparseHeads: 1, sparsity: 1 }, 1, 300, 7)
    })

    it('dense heads through the fused attention kernel (T = 150: 3 tiles), with MoSA heads', async () => {
      await expectFusedMatchesPortable({ ...base, denseHeads: 1, sparseHeads: 2, sparsity: 2 }, 2, 150, 8)
    })

    it('forward attention split over key ranges and merged (one key tile per part), dense and MoSA heads', async () => {
      const saved = cudaAttendSplit.tiles
      cudaAttendSplit.tiles = 1
      try {
        await expectFusedMatchesPortable({ ...base, denseHeads: 1, sparseHeads: 2, sparsity: 1 }, 1, 150, 9)
      } finally {
        cudaAttendSplit.tiles = saved
      }
    })

    // The next four: the earlier backward kernels (registerBackward off), still selectable.
    it('attention backward with dQ in its own blocks (no atomics), dense and MoSA heads', async () => {
      const saved = cudaAttendBackward.atomicDq
      cudaAttendBackward.atomicDq = false
      cudaKernelVariant.registerBackward = false
      try {
        await expectFusedMatchesPortable({ ...base, denseHeads: 1, sparseHeads: 2, sparsity: 1 }, 1, 150, 10)
      } finally {
        cudaAttendBackward.atomicDq = saved
        cudaKernelVariant.registerBackward = true
      }
    })

    it("backward per shape ('auto': dQ blocks for few long rows, here 3 tiles per row over 1)", async () => {
      const saved = cudaAttendSplit.tiles
      cudaAttendSplit.tiles = 1
      cudaKernelVariant.registerBackward = false
      try {
        expect(attendBackwardAtomic(3, 3)).toBe(false)
        expect(attendBackwardAtomic(1, 3)).toBe(true)
        expect(attendBackwardDelta(3, 3)).toBe(false)
        expect(attendBackwardDelta(3, 2000)).toBe(true)
        expect(attendBackwardDelta(1, 3)).toBe(false)
        await expectFusedMatchesPortable({ ...base, denseHeads: 1, sparseHeads: 2, sparsity: 1 }, 1, 150, 11)
      } finally {
        cudaAttendSplit.tiles = saved
        cudaKernelVariant.registerBackward = true
      }
    })

    // Head dim 64: the delta kernel's warp covers two elements per lane there (one at 32).
    it('attention backward with the row term dout . out per block and precomputed (both dQ variants, D = 64)', async () => {
      const saved = { ...cudaAttendBackward }
      cudaKernelVariant.registerBackward = false
      try {
        for (const precomputedDelta of [false, true])
          for (const atomicDq of [true, false]) {
            Object.assign(cudaAttendBackward, { precomputedDelta, atomicDq })
            await expectFusedMatchesPortable(
              { ...base, headDim: 64, denseHeads: 1, sparseHeads: 2, sparsity: 1 },
              1,
              150,
              12,
            )
          }
      } finally {
        Object.assign(cudaAttendBackward, saved)
        cudaKernelVariant.registerBackward = true
      }
    })

    // The register backward (mosa_attend_backward_rb): K = 150 (3 key tiles, the last of 22 keys; 5
    // query tiles of 32), D = 64; its query order inside each 8-step and its diagonal mask show in
    // dK, dV and dQ. Then each key tile's queries in chunks of one 64-query tile (the few-long-rows
    // split: dK and dV added atomically), and the earlier kernels beside it (registerBackward off).
    it('register backward: several key tiles, K not a multiple of 64, chunked query ranges, and the earlier kernels', async () => {
      const savedSplit = cudaAttendSplit.tiles
      const savedVariant = { ...cudaKernelVariant }
      const savedBackward = { ...cudaAttendBackward }
      const config: MosaConfig = { ...base, headDim: 64, denseHeads: 1, sparseHeads: 2, sparsity: 1 }
      try {
        emulator.entries.clear()
        await expectFusedMatchesPortable(config, 1, 150, 19)
        expect(emulator.entries.has('mosa_attend_backward_rb')).toBe(true)
        // delta from mosa_attend_delta instead of each block's own.
        cudaAttendBackward.precomputedDelta = true
        await expectFusedMatchesPortable(config, 1, 150, 22)
        cudaAttendBackward.precomputedDelta = savedBackward.precomputedDelta
        cudaAttendSplit.tiles = 1
        await expectFusedMatchesPortable(config, 1, 150, 20)
        cudaAttendSplit.tiles = savedSplit
        cudaKernelVariant.registerBackward = false
        emulator.entries.clear()
        await expectFusedMatchesPortable(config, 1, 150, 21)
        expect(emulator.entries.has('mosa_attend_backward_rb')).toBe(false)
      } finally {
        cudaAttendSplit.tiles = savedSplit
        Object.assign(cudaKernelVariant, savedVariant)
        Object.assign(cudaAttendBackward, savedBackward)
      }
    })

    it('attention tiles through the earlier row-loop loader (the bench A/B source variant)', async () => {
      const saved = cudaKernelVariant.batchedRowLoads
      cudaKernelVariant.batchedRowLoads = false
      try {
        await expectFusedMatchesPortable({ ...base, denseHeads: 1, sparseHeads: 2, sparsity: 2 }, 1, 150, 14)
      } finally {
        cudaKernelVariant.batchedRowLoads = saved
      }
    })

    it('the source variant with the fragment loop unrolled fully (its own module), dense and MoSA heads', async () => {
      const saved = cudaKernelVariant.fragmentUnroll
      cudaKernelVariant.fragmentUnroll = 0
      try {
        await expectFusedMatchesPortable(
          { ...base, headDim: 64, denseHeads: 1, sparseHeads: 2, sparsity: 2 },
          1,
          150,
          13,
        )
      } finally {
        cudaKernelVariant.fragmentUnroll = saved
      }
    })

    it('the earlier GEMM main loop (operands split at every use) and the dQ-block backward unrolled by 2 (bench A/B source variants)', async () => {
      const saved = { ...cudaKernelVariant }
      const savedBackward = { ...cudaAttendBackward }
      // dQ blocks for every head, so the variant's dQ-block kernel runs.
      Object.assign(cudaKernelVariant, { splitStage: false, dqBlocksUnroll: 2, registerBackward: false })
      cudaAttendBackward.atomicDq = false
      try {
        await expectFusedMatchesPortable(
          { ...base, headDim: 64, denseHeads: 1, sparseHeads: 2, sparsity: 2 },
          1,
          150,
          15,
        )
      } finally {
        Object.assign(cudaKernelVariant, saved)
        Object.assign(cudaAttendBackward, savedBackward)
      }
    })

    it("the library-GEMM route (gathered rows through the backend's matmul): batch 1, RoPE on and off, dense heads", async () => {
      const saved = { ...cudaGemms }
      try {
        expect(cudaLibraryGemms(cudaGemms.libraryMinRows)).toBe(true)
        expect(cudaLibraryGemms(cudaGemms.libraryMinRows - 1)).toBe(false)
        cudaGemms.route = 'library'
        // dModel 70: rows not a multiple of 4 floats (the gather's scalar path).
        await expectFusedMatchesPortable(
          { ...base, dModel: 70, denseHeads: 1, sparseHeads: 2, sparsity: 2 },
          1,
          150,
          16,
        )
        await expectFusedMatchesPortable({ ...base, headDim: 64, rope: false }, 1, 40, 17)
        for (const entry of [
          'mosa_gather_rows',
          'mosa_gather_rows_scaled',
          'mosa_unstack3_rope',
          'mosa_stack3',
          'mosa_stack3_unrope',
          'mosa_unstack3',
          'mosa_heads_to_columns',
        ])
          expect(emulator.entries.has(entry), entry).toBe(true)
      } finally {
        Object.assign(cudaGemms, saved)
      }
    })

    it('the library-GEMM route at batch 2 (weight gradients through the fused kernels there)', async () => {
      const saved = { ...cudaGemms }
      try {
        cudaGemms.route = 'library'
        await expectFusedMatchesPortable(base, 2, 40, 18)
      } finally {
        Object.assign(cudaGemms, saved)
      }
    })

    it('head dim 64, 96 (GEMM operands staged the earlier way there) and 128', async () => {
      await expectFusedMatchesPortable({ ...base, headDim: 64 }, 1, 30, 5)
      await expectFusedMatchesPortable({ ...base, headDim: 96 }, 1, 30, 19)
      await expectFusedMatchesPortable({ ...base, headDim: 128, sparsity: 2 }, 1, 40, 6)
    })

    it('a layer of dense heads only takes the fused attention (float32 on CUDA) and matches the portable path', async () => {
      const p = problem({ ...base, denseHeads: 2, sparseHeads: 0 }, 1, 70, 20)
      const fused = forwardWithRouting(p.params, p.x, { path: 'auto' })
      const portable = forwardWithRouting(p.params, p.x, { path: 'portable' })
      expect(fused.path).toBe('fused')
      expect(relError(await fused.y.data(), await portable.y.data())).toBeLessThan(2e-5)
      dispose([fused, portable, p.params, p.x])
    })

    it('k = T and k = 1', async () => {
      await expectFusedMatchesPortable({ ...base, sparsity: 1 }, 2, 17, 3)
      await expectFusedMatchesPortable({ ...base, sparsity: 100 }, 2, 17, 4)
    })
  },
)
