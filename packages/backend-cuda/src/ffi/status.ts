import { BackendError } from '@attnkit/core'

/** A CUDA, NVRTC or cuBLASLt call that returned a failure status. */
export class CudaCallError extends BackendError {
  override name = 'CudaCallError'
  constructor(
    readonly call: string,
    readonly code: number,
    readonly statusName: string,
    detail?: string,
  ) {
    super(`${call} failed: ${statusName} (${code})${detail ? `: ${detail}` : ''}`)
  }
}

export const CUDA_ERROR_OUT_OF_MEMORY = 2

export function isOutOfMemory(e: unknown): boolean {
  return e instanceof CudaCallError && e.call.startsWith('cuMemAlloc') && e.code === CUDA_ERROR_OUT_OF_MEMORY
}
