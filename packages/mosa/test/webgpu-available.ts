import { type Backend, backend } from '@attnkit/core'

/** Starts the WebGPU backend if its package is built and a device is there; else says why not. */
export async function startWebgpu(): Promise<{ gpu?: Backend; reason?: string }> {
  try {
    await import('@attnkit/backend-webgpu')
  } catch (e) {
    return {
      reason: `@attnkit/backend-webgpu is not importable (unbuilt?): ${(e as Error).message.split('\n')[0]}`,
    }
  }
  try {
    return { gpu: await backend('webgpu') }
  } catch (e) {
    return { reason: `no WebGPU device: ${(e as Error).message.split('\n')[0]}` }
  }
}
