import { registerAttentionKernels } from './attention.js'
import { registerConvRopeKernels } from './conv-rope.js'
import { registerDeltaRuleKernels } from './delta-rule.js'
import { registerElementwiseKernels } from './elementwise.js'
import { registerLayoutKernels } from './layout.js'
import { registerMatmulKernel } from './matmul.js'
import { registerOptimKernels } from './optim.js'
import { registerReduceKernels } from './reduce.js'
import { registerRowKernels } from './rows.js'
import { registerTopkKernel } from './topk.js'

const registered = new Set<string>()

/** Registers every WebGPU kernel of the op contract under a backend name (idempotent). */
export function registerWebGPUKernels(backendName = 'webgpu'): void {
  if (registered.has(backendName)) return
  registered.add(backendName)
  registerElementwiseKernels(backendName)
  registerReduceKernels(backendName)
  registerRowKernels(backendName)
  registerMatmulKernel(backendName)
  registerLayoutKernels(backendName)
  registerTopkKernel(backendName)
  registerConvRopeKernels(backendName)
  registerOptimKernels(backendName)
  registerAttentionKernels(backendName)
  registerDeltaRuleKernels(backendName)
}
