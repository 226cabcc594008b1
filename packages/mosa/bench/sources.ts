// Writes D = 64 CUDA sources to the folder given, for nvcc + cuobjdump (bundle.sh compiles them;
// run-h100.sh counts the SASS of the HMMA loops where cuobjdump exists): the shipped kernels
// (new), the earlier forward attention (old: scores and probabilities through shared memory)
// and the register forward's other tunings the bench times.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type MosaCudaOptions, mosaCudaSource } from '../src/kernels/mosa.cu.js'

const dir = process.argv[2] ?? '.'
const variants: Record<string, MosaCudaOptions> = {
  new: {},
  old: { registerAttend: false },
  qraw: { attendSplitQ: false },
  k16: { attendKeyTile: 16 },
  k16b3qraw: { attendKeyTile: 16, attendSplitQ: false, attendMinBlocks: 3 },
  k64qraw: { attendKeyTile: 64, attendSplitQ: false },
}
for (const [name, opts] of Object.entries(variants))
  writeFileSync(join(dir, `mosa64-${name}.cu`), mosaCudaSource(64, opts))
