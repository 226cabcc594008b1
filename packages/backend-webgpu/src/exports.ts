export { type GpuBinding, GpuData, type Launch, WebGPUBackend, type WebGPUBackendOptions } from './backend.js'
export type { WebGPUOptions } from './create.js'
export { type DeviceOptions, OPTIONAL_FEATURES } from './device.js'
export { registerWebGPUKernels } from './kernels/index.js'
