import { type Backend, registerKernel, type TensorInfo } from '@attnkit/core'
import { gdnBackwardPrograms, gdnForwardPrograms, type ProgramLanguage } from './gdn-plan.js'
import { type GdnKernelAttrs, KERNELS } from './names.js'

type Inputs = Parameters<typeof gdnForwardPrograms>[2]

/** The chunkwise GDN kernels as CUDA C programs ('cuda') and WGSL programs ('webgpu'). */
export function registerGpuGdnKernels(): void {
  const targets: [string, ProgramLanguage][] = [
    ['cuda', 'cuda'],
    ['webgpu', 'wgsl'],
  ]
  for (const [backendName, lang] of targets) {
    registerKernel<Backend, GdnKernelAttrs, Inputs>({
      kernelName: KERNELS.gdnForward,
      backendName,
      kernelFunc: ({ inputs, attrs, backend }): TensorInfo[] =>
        gdnForwardPrograms(backend, lang, inputs, attrs),
    })
    registerKernel<Backend, GdnKernelAttrs, Inputs>({
      kernelName: KERNELS.gdnBackward,
      backendName,
      kernelFunc: ({ inputs, attrs, backend }): TensorInfo[] =>
        gdnBackwardPrograms(backend, lang, inputs, attrs),
    })
  }
}
