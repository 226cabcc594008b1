// Only @attnkit/core + @attnkit/mosa + @attnkit/backend-webgpu installed: a MoSA forward on
// WebGPU, checked against the CPU reference (the same seeds give the same weights and input).
import { backend, Rng, setBackend } from '@attnkit/core'
import '@attnkit/backend-webgpu'
import * as mosa from '@attnkit/mosa'

const config = { dModel: 64, headDim: 32, denseHeads: 1, sparseHeads: 4, sparsity: 4 }
const run = async (b) =>
  mosa
    .forward(
      mosa.init(config, new Rng(0), { backend: b }),
      new Rng(1).normal([2, 32, 64], 0, 1, { backend: b }),
    )
    .data()
const [cpu, gpu] = [await backend('cpu'), await setBackend('webgpu')]
const [yCpu, yGpu] = [await run(cpu), await run(gpu)]
const err = Math.max(...yGpu.map((v, i) => Math.abs(v - yCpu[i]))) / Math.max(...yCpu.map(Math.abs))
console.log(`mosa forward on webgpu (${gpu.info().device}) vs cpu: max rel error ${err.toExponential(2)}`)
if (!(err < 1e-4)) process.exit(1)
