/**
 * @attnkit/core: tensors, the backend contract and kernel registry, functional ops with
 * autograd, the CPU reference backend, seeded RNG, safetensors and the cost model.
 */
import type { Backend, BackendProvider } from './backend.js'
import { type BackendStatus, ENGINE, type MemoryReport } from './engine.js'

/** Makes a backend available (backend packages call this on import). */
export function registerBackend(provider: BackendProvider): void {
  ENGINE.registerBackend(provider)
}

/** Activates a backend by name (starting it if needed) or adopts a backend instance. */
export function setBackend(nameOrBackend: string | Backend): Promise<Backend> {
  return ENGINE.setBackend(nameOrBackend)
}

/** The active backend (the CPU reference when none was chosen). */
export function getBackend(): Backend {
  return ENGINE.getBackend()
}

/** A started backend by name (starts it when needed). */
export function backend(name: string): Promise<Backend> {
  return ENGINE.backend(name)
}

/**
 * Chooses the best available backend by priority (cuda > webgpu > cpu) unless one is active;
 * ATTNKIT_BACKEND=<name> forces one. Backends that fail are listed with their reasons.
 */
export function ready(): Promise<Backend> {
  return ENGINE.ready()
}

export function listBackends(): BackendStatus[] {
  return ENGINE.listBackends()
}

/** Live tensors, buffers, bytes and peak bytes on a backend (the active one by default). */
export function memory(backendName?: string): MemoryReport {
  return ENGINE.memory(backendName)
}

export function resetPeakMemory(backendName?: string): void {
  ENGINE.resetPeakMemory(backendName)
}

export function disposeBackend(name: string): void {
  ENGINE.disposeBackend(name)
}

/** Runs a registered kernel by name (how mechanisms call their fused kernels). */
export function runKernel(
  kernelName: string,
  inputs: Parameters<typeof ENGINE.runKernel>[1],
  attrs: object = {},
): import('./tensor.js').Tensor[] {
  return ENGINE.runKernel(kernelName, inputs, attrs)
}

export { keyVisible } from './attention-mask.js'
export {
  grad,
  type ValueAndGrad,
  type ValueAndGradWithAux,
  valueAndGrad,
  valueAndGradWithAux,
} from './autograd.js'
export type {
  Backend,
  BackendInfo,
  BackendMemory,
  BackendProvider,
  DataId,
  DeviceTiming,
  ProgramSpec,
  TensorInfo,
} from './backend.js'
export * from './cost.js'
export { CpuBackend, CpuData, gemmPacked, registerCpuKernels } from './cpu/index.js'
export * from './dtype.js'
export type { BackendStatus, KernelInputTensors, MemoryReport } from './engine.js'
export * from './errors.js'
export * from './kernel-contract.js'
export * from './ops/index.js'
export * as ops from './ops/index.js'
export {
  type CoreKernelArgs,
  type GradContext,
  type GradientConfig,
  type GradResult,
  getGradient,
  getKernel,
  hasKernel,
  type KernelArgs,
  type KernelConfig,
  KernelNotFoundError,
  type KernelResult,
  listKernels,
  registerCoreKernel,
  registerGradient,
  registerKernel,
  registerNonDifferentiable,
  unregisterKernel,
} from './registry.js'
export { philox4x32, type RandomOptions, Rng } from './rng.js'
export * from './safetensors.js'
export { dispose, keep, tidy } from './scope.js'
export * from './shape.js'
export {
  flattenTree,
  isTensor,
  mapTree,
  type NestedArray,
  Tensor,
  type TensorOwner,
  type TensorTree,
} from './tensor.js'
