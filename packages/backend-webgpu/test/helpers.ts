import { type Backend, backend } from '@attnkit/core'
import type { WebGPUBackend } from '../src/index.js'
import '../src/index.js'

/**
 * Starts the WebGPU backend once per test file. Without an adapter the tests skip with the
 * backend's own one-line reason (which says what to install).
 */
export async function startWebGPU(): Promise<{
  gpu: WebGPUBackend | undefined
  cpu: Backend
  reason: string
}> {
  const cpu = await backend('cpu')
  try {
    const gpu = (await backend('webgpu')) as WebGPUBackend
    return { gpu, cpu, reason: '' }
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0]
    console.warn(`skipping WebGPU tests: ${reason}`)
    return { gpu: undefined, cpu, reason }
  }
}
