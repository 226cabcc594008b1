export { type GatedDeltaOptions, gatedDelta, type KernelChoice } from './gdn/delta-rule.js'
export { KERNELS } from './kernels/names.js'
export { ensureKernelsRegistered, kernelAvailable } from './kernels/register.js'
