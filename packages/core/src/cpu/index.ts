import type { BackendProvider } from '../backend.js'
import { CpuBackend } from './cpu-backend.js'
import { registerAttentionKernels } from './kernels-attention.js'
import { registerConvRopeKernels } from './kernels-conv-rope.js'
import { registerDeltaRuleKernels } from './kernels-delta-rule.js'
import { registerElementwiseKernels } from './kernels-elementwise.js'
import { registerLayoutKernels } from './kernels-layout.js'
import { registerMatmulKernels } from './kernels-matmul.js'
import { registerOptimKernels } from './kernels-optim.js'
import { registerReduceKernels } from './kernels-reduce.js'

let registered = false

/** Registers every CPU kernel (idempotent; runs when the CPU backend is first created). */
export function registerCpuKernels(): void {
  if (registered) return
  registered = true
  registerElementwiseKernels()
  registerReduceKernels()
  registerMatmulKernels()
  registerLayoutKernels()
  registerConvRopeKernels()
  registerAttentionKernels()
  registerDeltaRuleKernels()
  registerOptimKernels()
}

export const cpuProvider: BackendProvider = {
  name: 'cpu',
  priority: 100,
  create: () => {
    registerCpuKernels()
    return new CpuBackend()
  },
}

export { CpuBackend, CpuData } from './cpu-backend.js'
export { gemmPacked } from './kernels-matmul.js'
