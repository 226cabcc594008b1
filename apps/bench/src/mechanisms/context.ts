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
 * Random inputs and parameters larger than this many elements repeat a seeded block of this
 * size: drawing hundreds of millions of Philox values in JavaScript would dominate a GPU run (a
 * FLOP-matched MoSA layer has 128 M parameters, a paper-size laLTE block 217 M: 6-10 s to draw),
 * and timings do not depend on the values. Correctness checks draw the same way on the backend
 * and for the CPU reference.
 */
export const RANDOM_BLOCK_ELEMENTS = 1 << 20

/** Fills `out` by repeating its first `block` elements. */
function repeatBlock<T extends { copyWithin(target: number, start: number, end: number): T; length: number }>(
  out: T,
  block: number,
): T {
  for (let filled = block; filled < out.length; filled *= 2)
    out.copyWithin(filled, 0, Math.min(filled, out.length - filled))
  return out
}

/**
 * The context's generator: draws of more than RANDOM_BLOCK_ELEMENTS values repeat a fresh block
 * of that size (the same rule as the inputs), so that initialising a layer's parameters costs
 * what drawing 1 M values per tensor does. Smaller draws are the plain generator's.
 */
export class BlockRepeatingRng extends Rng {
  override uniformArray(n: number): Float64Array {
    return repeated(n, (k) => super.uniformArray(k))
  }

  override normalArray(n: number): Float64Array {
    return repeated(n, (k) => super.normalArray(k))
  }
}

/** `n` values from `draw`: a fresh block of at most RANDOM_BLOCK_ELEMENTS, repeated to fill. */
function repeated(n: number, draw: (count: number) => Float64Array): Float64Array {
  if (n <= RANDOM_BLOCK_ELEMENTS) return draw(n)
  const out = new Float64Array(n)
  out.set(draw(RANDOM_BLOCK_ELEMENTS))
  return repeatBlock(out, RANDOM_BLOCK_ELEMENTS)
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/** Uploads values (rounded to inputDtype) as a `dtype` tensor on `backend`, repeating `block` to fill. */
function upload(
  block: ArrayLike<number>,
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
    repeatBlock(host, rounded.length)
  }
  return tensor(host, shape, { dtype, backend })
}

export function makeContext(backend: Backend, dtype: DType, inputDtype: DType, seed: number): SetupContext {
  const rng = new BlockRepeatingRng(seed)
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
      return tensor(repeatBlock(block, u.length), shape, { dtype: 'int32', backend })
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
          ? upload(values as ArrayLike<number>, [...t.shape], inputDtype, dtype, backend)
          : tensor(values, [...t.shape], { dtype: t.dtype, backend })
        t.dispose()
        return out
      }) as T
    },
  }
}
