import { registerAttentionKernels } from './attention.js'
import { registerConvRopeOptimKernels } from './conv-rope-optim.js'
import { registerDeltaRuleKernels } from './delta-rule.js'
import { registerElementwiseKernels } from './elementwise.js'
import { registerLayoutKernels } from './layout.js'
import { registerMatmulKernels } from './matmul.js'
import { registerReduceKernels } from './reduce.js'

let registered = false

/** Registers every kernel of the op contract for backend 'cuda' (idempotent). */
export function registerCudaKernels(): void {
  if (registered) return
  registered = true
  registerElementwiseKernels()
  registerReduceKernels()
  registerMatmulKernels()
  registerLayoutKernels()
  registerConvRopeOptimKernels()
  registerAttentionKernels()
  registerDeltaRuleKernels()
}
