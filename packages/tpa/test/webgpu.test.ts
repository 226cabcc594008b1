import { describe } from 'vitest'
import type { TpaConfig } from '../src/index.js'
import { fusedSuite } from './fused-suite.js'
import { tryBackend } from './gpu-helpers.js'

const { gpu, reason } = await tryBackend('webgpu')
if (!gpu) console.log(`skipping WebGPU tests: ${reason}`)

// Small shapes: lavapipe runs the kernels on the CPU.
const CONFIGS: TpaConfig[] = [
  { variant: 'tpa', dModel: 16, heads: 4, headDim: 8 },
  { variant: 'tpa', dModel: 16, heads: 3, headDim: 8, qRank: 2, kRank: 3, vRank: 1 },
  { variant: 'tpa-kvonly', dModel: 16, heads: 4, headDim: 16 },
  { variant: 'mha', dModel: 16, heads: 4, headDim: 8 },
  { variant: 'gqa', dModel: 16, heads: 4, kvHeads: 2, headDim: 8 },
]

describe.skipIf(!gpu)('WebGPU fused kernels match the portable path (lavapipe here)', () => {
  fusedSuite(gpu, CONFIGS, ['float32'])
})
