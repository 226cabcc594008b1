import { registerKernel } from '@attnkit/core'
import { mosaCudaSource } from '../kernels/mosa.cu.js'
import { cudaTiles } from '../kernels/tiles.js'
import { registerFusedGradients } from './gradients.js'
import { kernelConfigs, type Language } from './programs.js'

export const CUDA: Language = {
  language: 'cuda',
  backendName: 'cuda',
  source: mosaCudaSource,
  tiles: cudaTiles,
  block: [256, 1, 1],
  entry: (name) => name,
}

let registered = false

/**
 * Registers the fused kernels for the CUDA and WebGPU backends, and their gradients, once. Only
 * registry entries are made: no backend package is imported, and a backend that is never started
 * never sees them.
 */
export function ensureFusedKernels(): void {
  if (registered) return
  registered = true
  for (const lang of [CUDA]) for (const k of kernelConfigs(lang)) registerKernel(k)
  registerFusedGradients()
}
