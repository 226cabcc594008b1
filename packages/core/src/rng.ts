/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), a
 * counter-based generator: output block n is a pure function of (key, n). Values are generated
 * on the host and uploaded, so the same seed gives bit-identical tensors on every backend.
 */

import type { Backend } from './backend.js'
import type { DType } from './dtype.js'
import { allocHostArray, roundInPlace } from './dtype.js'
import { ENGINE } from './engine.js'
import { argumentError } from './errors.js'
import { assertValidShape, type Shape, sizeOf } from './shape.js'
import type { Tensor } from './tensor.js'

const M0 = 0xd2511f53
const M1 = 0xcd9e8d57
const W0 = 0x9e3779b9
const W1 = 0xbb67ae85

/** High 32 bits of the 64-bit product of two uint32 values. */
function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff
  const aHi = a >>> 16
  const bLo = b & 0xffff
  const bHi = b >>> 16
  const lolo = aLo * bLo
  const hilo = aHi * bLo
  const lohi = aLo * bHi
  const cross = (lolo >>> 16) + (hilo & 0xffff) + lohi
  return (aHi * bHi + (hilo >>> 16) + Math.floor(cross / 65536)) >>> 0
}

/** One Philox4x32-10 block: 4 uint32 outputs for counter (c0..c3) and key (k0, k1). */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  offset = 0,
): void {
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(M0, c0)
    const lo0 = Math.imul(M0, c0) >>> 0
    const hi1 = mulhi32(M1, c2)
    const lo1 = Math.imul(M1, c2) >>> 0
    c0 = (hi1 ^ c1 ^ k0) >>> 0
    c1 = lo1
    c2 = (hi0 ^ c3 ^ k1) >>> 0
    c3 = lo0
    k0 = (k0 + W0) >>> 0
    k1 = (k1 + W1) >>> 0
  }
  out[offset] = c0
  out[offset + 1] = c1
  out[offset + 2] = c2
  out[offset + 3] = c3
}

export interface RandomOptions {
  dtype?: DType
  backend?: Backend
}

/**
 * A seeded stream of random tensors. Each draw advances a 64-bit block counter, so a sequence
 * of draws from `new Rng(seed)` is reproducible; `fork(i)` gives independent streams.
 */
export class Rng {
  private readonly k0: number
  private readonly k1: number
  private counter = 0

  constructor(
    readonly seed: number,
    private readonly stream = 0,
  ) {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw argumentError('Rng', 'seed', 'a non-negative safe integer', seed)
    this.k0 = seed >>> 0
    this.k1 = Math.floor(seed / 2 ** 32) >>> 0
  }

  /** An independent generator (a different stream under the same key), of this one's class. */
  fork(stream: number): this {
    const Kind = this.constructor as new (seed: number, stream: number) => this
    return new Kind(this.seed, (this.stream + 1) * 0x10000 + stream)
  }

  /** `n` raw uint32 values (rounded up to whole blocks internally). */
  nextUint32(n: number): Uint32Array {
    const blocks = Math.ceil(n / 4)
    const out = new Uint32Array(blocks * 4)
    for (let b = 0; b < blocks; b++) {
      const c = this.counter + b
      philox4x32(c >>> 0, Math.floor(c / 2 ** 32) >>> 0, this.stream >>> 0, 0, this.k0, this.k1, out, b * 4)
    }
    this.counter += blocks
    return out.subarray(0, n)
  }

  /** Uniform values in [0, 1) with 24 random bits each, as float64 numbers. */
  uniformArray(n: number): Float64Array {
    const bits = this.nextUint32(n)
    const out = new Float64Array(n)
    for (let i = 0; i < n; i++) out[i] = (bits[i] >>> 8) * 2 ** -24
    return out
  }

  /** Standard normal values (Box-Muller), as float64 numbers. */
  normalArray(n: number): Float64Array {
    const pairs = Math.ceil(n / 2)
    const bits = this.nextUint32(pairs * 2)
    const out = new Float64Array(n)
    for (let p = 0; p < pairs; p++) {
      const u1 = ((bits[2 * p] >>> 8) + 1) * 2 ** -24
      const u2 = (bits[2 * p + 1] >>> 8) * 2 ** -24
      const r = Math.sqrt(-2 * Math.log(u1))
      out[2 * p] = r * Math.cos(2 * Math.PI * u2)
      if (2 * p + 1 < n) out[2 * p + 1] = r * Math.sin(2 * Math.PI * u2)
    }
    return out
  }

  /** Uniform tensor in [low, high). */
  uniform(shape: Shape, low = 0, high = 1, opts: RandomOptions = {}): Tensor {
    assertValidShape('Rng.uniform', shape)
    const u = this.uniformArray(sizeOf(shape))
    for (let i = 0; i < u.length; i++) u[i] = low + (high - low) * u[i]
    return upload(u, shape, opts.dtype ?? 'float32', opts.backend)
  }

  /** Normal tensor with the given mean and standard deviation. */
  normal(shape: Shape, mean = 0, std = 1, opts: RandomOptions = {}): Tensor {
    assertValidShape('Rng.normal', shape)
    const z = this.normalArray(sizeOf(shape))
    for (let i = 0; i < z.length; i++) z[i] = mean + std * z[i]
    return upload(z, shape, opts.dtype ?? 'float32', opts.backend)
  }

  /** Integers uniform in [low, high), int32. */
  randint(shape: Shape, low: number, high: number, opts: { backend?: Backend } = {}): Tensor {
    assertValidShape('Rng.randint', shape)
    if (!(high > low)) throw argumentError('Rng.randint', 'high', `a number > low (${low})`, high)
    const u = this.uniformArray(sizeOf(shape))
    const out = new Int32Array(u.length)
    for (let i = 0; i < u.length; i++) out[i] = low + Math.floor(u[i] * (high - low))
    return ENGINE.fromHost(out, shape, 'int32', opts.backend)
  }

  /** A random permutation of 0..n-1 (Fisher-Yates), as a plain array. */
  permutation(n: number): number[] {
    const u = this.uniformArray(n)
    const p = Array.from({ length: n }, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(u[i] * (i + 1))
      ;[p[i], p[j]] = [p[j], p[i]]
    }
    return p
  }
}

function upload(values: Float64Array, shape: Shape, dtype: DType, backend?: Backend): Tensor {
  const host = allocHostArray(dtype, values.length)
  host.set(values)
  roundInPlace(dtype, host)
  return ENGINE.fromHost(host, shape, dtype, backend)
}
