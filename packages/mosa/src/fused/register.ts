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
import { cudaKernelVariant, cudaLibraryKernelConfigs, kernelConfigs, type Language } from './programs.js'

/**
 * Sources built once per key: every launch passes its module's source to runProgram, and
 * rebuilding a 60 KB template (then having the backend hash a new string) at each of a layer
 * step's ~20 launches made T = 8192 steps host-bound.
 */
function memoized(build: (key: string) => string): (key: string) => string {
  const cache = new Map<string, string>()
  return (key) => {
    let s = cache.get(key)
    if (s === undefined) {
      s = build(key)
      cache.set(key, s)
    }
    return s
  }
}

const cudaSource = memoized((key) => {
  const { D, variant } = JSON.parse(key) as { D: number; variant: typeof cudaKernelVariant }
  return mosaCudaSource(D, variant)
})
const wgslSource = memoized((key) => {
  const { D, entry } = JSON.parse(key) as { D: number; entry: string }
  return mosaWgslSource(D, entry)
})

export const CUDA: Language = {
  language: 'cuda',
  backendName: 'cuda',
  source: (D) => cudaSource(JSON.stringify({ D, variant: cudaKernelVariant })),
  moduleTag: () =>
    (cudaKernelVariant.fragmentUnroll === 2 ? '' : `-u${cudaKernelVariant.fragmentUnroll}`) +
    (cudaKernelVariant.dqBlocksUnroll === 0 ? '' : `-dqbu${cudaKernelVariant.dqBlocksUnroll}`) +
    (cudaKernelVariant.batchedRowLoads ? '' : '-rowloop') +
    (cudaKernelVariant.splitStage ? '' : '-splituse') +
    (cudaKernelVariant.registerBackward ? '' : '-oldbwd') +
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
  source: (D, entry) => wgslSource(JSON.stringify({ D, entry })),
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
  for (const k of cudaLibraryKernelConfigs(CUDA)) registerKernel(k)
  registerFusedGradients()
}
