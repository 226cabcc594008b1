import {
  allocHostArray,
  type Backend,
  type DType,
  mapTree,
  Rng,
  roundInPlace,
  setBackend,
  backend as startBackend,
  type Tensor,
  type TensorTree,
  tensor,
} from '@attnkit/core'
import type { SetupContext } from './adapter.js'

/**
 * Random inputs larger than this many elements repeat a seeded block of this size: drawing
 * hundreds of millions of Philox normals in JavaScript would dominate a GPU run, and timings do
 * not depend on the values. Correctness checks run at sizes below it, so they use fresh values.
 */
export const RANDOM_BLOCK_ELEMENTS = 1 << 22

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/** Uploads values (rounded to inputDtype) as a `dtype` tensor on `backend`, repeating `block` to fill. */
function upload(
  block: Float64Array,
  shape: number[],
  inputDtype: DType,
  dtype: DType,
  backend: Backend,
): Tensor {
  const rounded = allocHostArray(inputDtype, block.length)
  rounded.set(block)
  roundInPlace(inputDtype, rounded)
  const n = sizeOf(shape)
  const host = allocHostArray(dtype, n)
  if (n === rounded.length) host.set(rounded)
  else {
    host.set(rounded.subarray(0, Math.min(n, rounded.length)))
    for (let filled = rounded.length; filled < n; filled *= 2)
      host.copyWithin(filled, 0, Math.min(filled, n - filled))
  }
  return tensor(host, shape, { dtype, backend })
}

export function makeContext(backend: Backend, dtype: DType, inputDtype: DType, seed: number): SetupContext {
  const rng = new Rng(seed)
  return {
    backend,
    dtype,
    inputDtype,
    rng,
    normal(shape, std = 1) {
      const z = rng.normalArray(Math.min(sizeOf(shape), RANDOM_BLOCK_ELEMENTS))
      if (std !== 1) for (let i = 0; i < z.length; i++) z[i] *= std
      return upload(z, shape, inputDtype, dtype, backend)
    },
    uniform(shape, low, high) {
      const u = rng.uniformArray(Math.min(sizeOf(shape), RANDOM_BLOCK_ELEMENTS))
      for (let i = 0; i < u.length; i++) u[i] = low + (high - low) * u[i]
      return upload(u, shape, inputDtype, dtype, backend)
    },
    randint(shape, low, high) {
      const n = sizeOf(shape)
      const u = rng.uniformArray(Math.min(n, RANDOM_BLOCK_ELEMENTS))
      const block = new Int32Array(n)
      for (let i = 0; i < u.length; i++) block[i] = low + Math.floor(u[i] * (high - low))
      for (let filled = u.length; filled < n; filled *= 2)
        block.copyWithin(filled, 0, Math.min(filled, n - filled))
      return tensor(block, shape, { dtype: 'int32', backend })
    },
    async initOnCpu<T extends TensorTree>(make: () => T): Promise<T> {
      await setBackend(await startBackend('cpu'))
      let made: T
      try {
        made = make()
      } finally {
        await setBackend(backend)
      }
      return this.place(made)
    },
    place<T extends TensorTree>(tree: T): T {
      return mapTree(tree, (t) => {
        if (t.backend.name !== 'cpu')
          throw new Error(`place: expected tensors on the CPU backend, got one on '${t.backend.name}'`)
        const values = t.dataSync()
        const isFloatTensor = t.dtype === 'float32' || t.dtype === 'float64' || t.dtype.endsWith('16')
        const out = isFloatTensor
          ? upload(Float64Array.from(values), [...t.shape], inputDtype, dtype, backend)
          : tensor(values, [...t.shape], { dtype: t.dtype, backend })
        t.dispose()
        return out
      }) as T
    },
  }
}
