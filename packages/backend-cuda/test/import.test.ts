import { BackendError, listBackends, setBackend } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { createCudaBackend } from '../src/index.js'

let gpuError: unknown
try {
  const b = await createCudaBackend()
  b.dispose()
} catch (e) {
  gpuError = e
}

describe('importing @attnkit/backend-cuda', () => {
  it('registers the cuda backend at priority 300 without loading any native library', () => {
    const cuda = listBackends().find((b) => b.name === 'cuda')
    expect(cuda).toMatchObject({ name: 'cuda', priority: 300 })
  })

  it.skipIf(!gpuError)(
    'without CUDA, starting it fails with a BackendError naming the library and the fix',
    async () => {
      const err = await setBackend('cuda').catch((e) => e)
      expect(err).toBeInstanceOf(BackendError)
      expect((err as Error).message).toMatch(/libcuda|cuInit|no CUDA device/)
      expect((err as Error).message).toMatch(/Fix: /)
      expect(listBackends().find((b) => b.name === 'cuda')?.status).toBe('failed')
    },
  )
})
