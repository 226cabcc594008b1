import {
  hasKernel,
  mul,
  registerGradient,
  runKernel,
  type Shape,
  scatterAdd,
  sub,
  type Tensor,
  zeros,
} from '@attnkit/core'
import { cudaLibraryGemms } from './library-gemms.js'
import { CUDA_LIBRARY_KERNELS, KERNELS } from './names.js'

/** Gradients of the fused kernels: fused backward kernels, plus core ops where those are as fast. */
export function registerFusedGradients(): void {
  registerGradient({
    kernelName: KERNELS.select,
    saveOutputs: true,
    gradFunc: ({ dys, outputs, inputMeta }) => {
      const [indices, scores] = outputs
      const shape = (inputMeta.logits as { shape: Shape }).shape
      // d sigmoid = s (1 - s), scattered back to the selected positions.
      const g = mul(dys[1], mul(scores, sub(1, scores)))
      return {
        logits: scatterAdd(zeros(shape, { dtype: scores.dtype, backend: scores.backend }), indices, g, 2),
      }
    },
  })
  registerGradient<{ ropeBase: number }>({
    kernelName: KERNELS.project,
    saveInputs: ['x', 'indices', 'wq', 'wk', 'wv'],
    nonDifferentiableInputs: ['indices'],
    gradFunc: ({ dys, inputs, attrs }) => {
      const x = inputs.x as Tensor
      const indices = inputs.indices as Tensor
      let [dq, dk] = dys
      const dv = dys[2]
      const w = { wq: inputs.wq as Tensor, wk: inputs.wk as Tensor, wv: inputs.wv as Tensor }
      const [B, Hs, K] = indices.shape
      if (
        x.backend.name === 'cuda' &&
        B === 1 &&
        cudaLibraryGemms(B * Hs * K) &&
        hasKernel(CUDA_LIBRARY_KERNELS.projectBackward, 'cuda')
      ) {
        const [dx, dwq, dwk, dwv] = runKernel(
          CUDA_LIBRARY_KERNELS.projectBackward,
          { dq, dk, dv, x, indices, ...w },
          { ropeBase: attrs.ropeBase },
        )
        return { x: dx, wq: dwq, wk: dwk, wv: dwv }
      }
      if (attrs.ropeBase > 0) {
        // The gradient of a rotation is the inverse rotation (core's rope kernel, inverse).
        const ropeAttrs = { base: attrs.ropeBase, rotaryDim: dq.shape[3], inverse: true }
        dq = runKernel('rope', { x: dq, positions: indices }, ropeAttrs)[0]
        dk = runKernel('rope', { x: dk, positions: indices }, ropeAttrs)[0]
      }
      const [dx] = runKernel(
        KERNELS.projectBackwardInput,
        { dq, dk, dv, indices, ...w },
        { seqLen: x.shape[1] },
      )
      const [dwq, dwk, dwv] = runKernel(KERNELS.projectBackwardWeight, { dq, dk, dv, x, indices }, {})
      return { x: dx, wq: dwq, wk: dwk, wv: dwv }
    },
  })
  registerGradient<{ scale: number }>({
    kernelName: KERNELS.attend,
    saveInputs: ['q', 'k', 'v'],
    saveOutputs: true,
    gradFunc: ({ dys, inputs, outputs, attrs }) => {
      const [dq, dk, dv] = runKernel(
        KERNELS.attendBackward,
        {
          q: inputs.q as Tensor,
          k: inputs.k as Tensor,
          v: inputs.v as Tensor,
          out: outputs[0],
          lse: outputs[1],
          dout: dys[0],
        },
        attrs,
      )
      return { q: dq, k: dk, v: dv }
    },
  })
  registerGradient({
    kernelName: KERNELS.outScatter,
    saveInputs: ['o', 'scores', 'indices', 'wo'],
    nonDifferentiableInputs: ['indices'],
    gradFunc: ({ dys, inputs }) => {
      const o = inputs.o as Tensor
      const scores = inputs.scores as Tensor
      const indices = inputs.indices as Tensor
      const dy = dys[0]
      const [dout, dscores] = runKernel(
        KERNELS.outBackward,
        { dy, o, scores, indices, wo: inputs.wo as Tensor },
        {},
      )
      const [dwo] = runKernel(KERNELS.outBackwardWeight, { o, scores, dy, indices }, {})
      return { o: dout, scores: dscores, wo: dwo }
    },
  })
}
