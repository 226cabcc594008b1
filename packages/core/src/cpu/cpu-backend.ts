import type { Backend, BackendInfo, BackendMemory, DataId, DeviceTiming, TensorInfo } from '../backend.js'
import { allocHostArray, type DType, roundInPlace, type TypedArray } from '../dtype.js'
import { AttnkitError } from '../errors.js'
import { type Shape, sizeOf } from '../shape.js'

/** CPU storage: the canonical host array (16-bit floats held as rounded float32). */
export class CpuData {
  constructor(readonly values: TypedArray) {}
}

/**
 * The reference backend, in plain TypeScript: float32 storage (float64 supported), float64
 * accumulation in reductions, matmul and attention, 16-bit floats stored rounded.
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu'
  private live = 0
  private liveBytes = 0
  private peakBytes = 0

  info(): BackendInfo {
    return {
      name: this.name,
      device: 'CPU (pure TypeScript reference, single thread)',
      details: {
        runtime: typeof process !== 'undefined' ? `node ${process.versions?.node ?? '?'}` : 'browser',
        accumulation: 'float64',
      },
      features: ['float64'],
    }
  }

  supportsDType(_dtype: DType): boolean {
    return true
  }

  write(values: TypedArray, shape: Shape, dtype: DType): DataId {
    const n = sizeOf(shape)
    if (values.length !== n)
      throw new AttnkitError(`cpu.write: ${values.length} values for shape [${shape}] (${n})`)
    const copy = allocHostArray(dtype, n)
    copy.set(values)
    roundInPlace(dtype, copy)
    return this.track(new CpuData(copy))
  }

  /** Wraps a freshly computed array as kernel output (rounding 16-bit floats). */
  output(values: TypedArray, shape: Shape, dtype: DType): TensorInfo {
    roundInPlace(dtype, values)
    return { dataId: this.track(new CpuData(values)), shape, dtype }
  }

  /** New zero-filled output array of `dtype`. */
  alloc(dtype: DType, size: number): TypedArray {
    return allocHostArray(dtype, size)
  }

  private track(d: CpuData): CpuData {
    this.live++
    this.liveBytes += d.values.byteLength
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes
    return d
  }

  async read(dataId: DataId): Promise<TypedArray> {
    return this.readSync(dataId)
  }

  readSync(dataId: DataId): TypedArray {
    return (dataId as CpuData).values.slice()
  }

  /** Direct (no copy) view for kernels: never mutate. */
  values(info: TensorInfo): TypedArray {
    return (info.dataId as CpuData).values
  }

  release(dataId: DataId): void {
    this.live--
    this.liveBytes -= (dataId as CpuData).values.byteLength
  }

  memory(): BackendMemory {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, peakBytes: this.peakBytes, pooledBytes: 0 }
  }

  resetPeakMemory(): void {
    this.peakBytes = this.liveBytes
  }

  async synchronize(): Promise<void> {}

  async time(fn: () => void): Promise<DeviceTiming> {
    const t0 = performance.now()
    fn()
    const ms = performance.now() - t0
    return { deviceMs: ms, wallMs: ms, source: 'host' }
  }

  dispose(): void {}
}
