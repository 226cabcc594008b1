// Writes the D = 64 CUDA source of the shipped kernels and of the earlier GEMM main loop
// (splitStage: false, dQ blocks unrolled by 2) to the folder given, for nvcc + cuobjdump
// (bundle.sh compiles them; run.sh counts the SASS of the HMMA loops where cuobjdump exists).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { mosaCudaSource } from '../src/kernels/mosa.cu.js'

const dir = process.argv[2] ?? '.'
writeFileSync(join(dir, 'mosa64-new.cu'), mosaCudaSource(64))
writeFileSync(join(dir, 'mosa64-old.cu'), mosaCudaSource(64, { splitStage: false, dqBlocksUnroll: 2 }))
