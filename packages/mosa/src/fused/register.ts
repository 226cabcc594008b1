import { registerKernel } from '@attnkit/core'
import {
  mosaAttendQueries,
  mosaCudaSharedBytes,
  mosaCudaSource,
  mosaCudaThreads,
} from '../kernels/mosa.cu.js'
import { mosaWgslSource } from '../kernels/mosa.wgsl.js'
import { cudaTiles, wgslTiles } from '../kernels/tiles.js'
import { registerFusedGradients } from './gradients.js'
import { cudaKernelVariant, kernelConfigs, type Language } from './programs.js'

// One source string per head dim and variant, handed to every launch as the same object (the
// backend looks its hash up by the string; a fresh copy costs a comparison of ~60 KB a launch).
const cudaSources = new Map<string, string>()

export const CUDA: Language = {
  language: 'cuda',
  backendName: 'cuda',
  source: (D) => {
    const key = `${D}${JSON.stringify(cudaKernelVariant)}`
    let source = cudaSources.get(key)
    if (source === undefined) {
      source = mosaCudaSource(D, { ...cudaKernelVariant })
      cudaSources.set(key, source)
    }
    return source
  },
  moduleTag: () =>
    (cudaKernelVariant.fragmentUnroll === 2 ? '' : `-u${cudaKernelVariant.fragmentUnroll}`) +
    (cudaKernelVariant.dqBlocksUnroll === 0 ? '' : `-dqbu${cudaKernelVariant.dqBlocksUnroll}`) +
    (cudaKernelVariant.batchedRowLoads ? '' : '-rowloop') +
    (cudaKernelVariant.splitStage ? '' : '-splituse') +
    (cudaKernelVariant.registerAttend ? '' : '-smemattend') +
    (cudaKernelVariant.attendKeyTile === 32 ? '' : `-akt${cudaKernelVariant.attendKeyTile}`) +
    (cudaKernelVariant.attendMinBlocks === 0 ? '' : `-amb${cudaKernelVariant.attendMinBlocks}`) +
    (cudaKernelVariant.attendSplitQ ? '' : '-qraw'),
  sharedBytes: (D, entry) => mosaCudaSharedBytes(D, entry, cudaKernelVariant),
  maxHeadDim: 128,
  tiles: cudaTiles,
  block: [256, 1, 1],
  entryBlock: (_D, entry) => [mosaCudaThreads(entry, cudaKernelVariant), 1, 1],
  attendQueries: (D) => mosaAttendQueries(D, cudaKernelVariant),
  entry: (name) => name,
}

export const WGSL: Language = {
  language: 'wgsl',
  backendName: 'webgpu',
  source: mosaWgslSource,
  maxHeadDim: 64,
  tiles: wgslTiles,
  entry: (name) => name,
}

export const LANGUAGES: readonly Language[] = [CUDA, WGSL]

let registered = false

/**
 * Registers the fused kernels for the CUDA and WebGPU backends, and their gradients, once. Only
 * registry entries are made: no backend package is imported, and a backend that is never started
 * never sees them.
 */
export function ensureFusedKernels(): void {
  if (registered) return
  registered = true
  for (const lang of LANGUAGES) for (const k of kernelConfigs(lang)) registerKernel(k)
  registerFusedGradients()
}
