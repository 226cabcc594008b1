import { registerElementwiseKernels } from './elementwise.js'

const registered = new Set<string>()

/** Registers every WebGPU kernel of the op contract under a backend name (idempotent). */
export function registerWebGPUKernels(backendName = 'webgpu'): void {
  if (registered.has(backendName)) return
  registered.add(backendName)
  registerElementwiseKernels(backendName)
}
