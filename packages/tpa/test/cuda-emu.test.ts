import { afterAll, describe } from 'vitest'
import { registerFusedKernels, type TpaConfig } from '../src/index.js'
import { CudaEmuBackend, EMU_NAME, gxxAvailable } from './emu/cuda-emu-backend.js'
import { fusedSuite } from './fused-suite.js'

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
    ])
  },
)
