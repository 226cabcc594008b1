import { registerGradient, runKernel, type Tensor } from '@attnkit/core'
import { type GdnKernelAttrs, KERNELS } from './names.js'

/** The fused forward's gradient runs the fused backward (an explicit chunkwise backward). */
export function registerGdnGradient(): void {
  registerGradient<GdnKernelAttrs>({
    kernelName: KERNELS.gdnForward,
    saveInputs: ['q', 'k', 'v', 'g', 'beta', 'state'],
    gradFunc: ({ dys, inputs, attrs }) => {
      const [dq, dk, dv, dg, dbeta, dstate] = runKernel(
        KERNELS.gdnBackward,
        {
          q: inputs.q as Tensor,
          k: inputs.k as Tensor,
          v: inputs.v as Tensor,
          g: inputs.g as Tensor,
          beta: inputs.beta as Tensor,
          state: inputs.state as Tensor | undefined,
          dout: dys[0],
          dFinalState: dys[1],
        },
        attrs,
      )
      const hasState = inputs.state !== undefined
      if (!hasState) dstate.dispose()
      return { q: dq, k: dk, v: dv, g: dg, beta: dbeta, state: hasState ? dstate : undefined }
    },
  })
}
