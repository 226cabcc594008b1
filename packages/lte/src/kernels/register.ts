import { type Backend, hasKernel } from '@attnkit/core'
import { registerCpuGdnKernels } from './cpu-gdn.js'
import { registerDecodeAttentionKernels } from './decode-attention.js'
import { registerGpuGdnKernels } from './gpu-gdn.js'
import { registerGdnGradient } from './gradients.js'

let registered = false

/**
 * Registers this package's kernels with core's registry (once). Called lazily by the ops that
 * use them, so importing the package has no side effects.
 */
export function ensureKernelsRegistered(): void {
  if (registered) return
  registered = true
  registerGdnGradient()
  registerCpuGdnKernels()
  registerGpuGdnKernels()
  registerDecodeAttentionKernels()
}

/** True when `kernelName` can run on `backend`: registered for it and, for GPU programs, runnable. */
export function kernelAvailable(kernelName: string, backend: Backend): boolean {
  ensureKernelsRegistered()
  if (!hasKernel(kernelName, backend.name)) return false
  return backend.name === 'cpu' || typeof backend.runProgram === 'function'
}
