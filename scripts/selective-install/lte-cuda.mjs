// Only @attnkit/core + @attnkit/lte + @attnkit/backend-cuda installed, on a machine without
// CUDA: importing must work, asking for the CUDA backend must fail with the clear error, and the
// model must still run on the CPU.
import { Rng, setBackend, tensor } from '@attnkit/core'
import '@attnkit/backend-cuda'
import { laLTE } from '@attnkit/lte'

try {
  await setBackend('cuda')
  console.log('cuda backend started (a GPU is present)')
} catch (e) {
  console.log(`expected failure: ${e.message.split('. ')[0]}`)
  if (!/libcuda/.test(e.message)) process.exit(1)
}
const model = laLTE({ vocabSize: 64, dModel: 32, numLayers: 4, headDim: 16 })
const { logits } = model.forward(model.init(new Rng(0)), tensor([[1, 2, 3, 4]], [1, 4], 'int32'))
console.log(`laLTE forward on cpu: logits [${logits.shape}]`)
if (logits.shape.join() !== '1,4,64') process.exit(1)
