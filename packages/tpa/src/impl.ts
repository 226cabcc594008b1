import { ArgumentError, type Backend, type DType, hasKernel } from '@attnkit/core'
import { ensureKernelsRegistered, fusedDTypes } from './kernels/register.js'

/** 'fused': the package's own kernel (error if the backend has none); 'portable': core ops only. */
export type Impl = 'auto' | 'fused' | 'portable'

export function assertImpl(impl: unknown, op: string): Impl {
  if (impl === undefined) return 'auto'
  if (impl !== 'auto' && impl !== 'fused' && impl !== 'portable')
    throw new ArgumentError(`${op}: 'impl' expected 'auto', 'fused' or 'portable', got ${String(impl)}`)
  return impl
}

/**
 * Whether to run `kernelName` fused on `backend`. `whyNot` adds shape limits of the kernel
 * (returns a reason, or null when it fits). With impl 'fused' an unusable kernel is an error
 * that says why; with 'auto' it quietly takes the portable path.
 */
export function useFused(
  kernelName: string,
  backend: Backend,
  impl: Impl,
  dtype: DType,
  whyNot?: () => string | null,
): boolean {
  if (impl === 'portable') return false
  ensureKernelsRegistered()
  let reason: string | null = null
  if (!hasKernel(kernelName, backend.name))
    reason = `no '${kernelName}' kernel for backend '${backend.name}' (fused kernels exist for webgpu and cuda; registerFusedKernels adds other names)`
  else if (typeof backend.runProgram !== 'function')
    reason = `backend '${backend.name}' cannot run programs (no runProgram)`
  else if (!fusedDTypes(backend.name).includes(dtype))
    reason = `the ${backend.name} kernels take ${fusedDTypes(backend.name).join(', ')}, not ${dtype}`
  else reason = whyNot?.() ?? null
  if (reason && impl === 'fused') throw new ArgumentError(`tpa: impl 'fused' requested but ${reason}`)
  return reason === null
}
