import { describe, expect, it } from 'vitest'
import { cudaKernelVariant } from '../src/fused/programs.js'
import { CUDA, WGSL } from '../src/fused/register.js'
import { mosaCudaSource } from '../src/kernels/mosa.cu.js'

describe('kernel sources handed to runProgram', () => {
  it('are built once per head dim and source variant (the same string at every launch)', () => {
    const a = CUDA.source(64, 'mosa_attend')
    expect(CUDA.source(64, 'mosa_project')).toBe(a)
    expect(a).toBe(mosaCudaSource(64, cudaKernelVariant))
    const saved = { ...cudaKernelVariant }
    try {
      cudaKernelVariant.splitStage = !saved.splitStage
      const b = CUDA.source(64, 'mosa_attend')
      expect(b).not.toBe(a)
      expect(b).toBe(mosaCudaSource(64, cudaKernelVariant))
    } finally {
      Object.assign(cudaKernelVariant, saved)
    }
    expect(CUDA.source(64, 'mosa_attend')).toBe(a)
    expect(CUDA.source(32, 'mosa_attend')).not.toBe(a)
    expect(WGSL.source(32, 'mosa_select')).toBe(WGSL.source(32, 'mosa_select'))
    expect(WGSL.source(32, 'mosa_select')).not.toBe(WGSL.source(64, 'mosa_select'))
  })
})
