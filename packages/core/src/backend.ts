import type { DType, TypedArray } from './dtype.js'
import type { Shape } from './shape.js'

/** Opaque handle to a backend's storage for one tensor's elements. */
export type DataId = object

/** What kernels see of a tensor: its storage handle, shape and dtype. */
export interface TensorInfo {
  readonly dataId: DataId
  readonly shape: Shape
  readonly dtype: DType
}

export interface BackendMemory {
  /** Buffers currently holding live tensor data. */
  liveBuffers: number
  /** Bytes those buffers hold (nominal: elements x dtype size). */
  liveBytes: number
  /** Largest liveBytes since start or since the last resetPeak(). */
  peakBytes: number
  /** Bytes the backend keeps allocated for reuse (pool), beyond live ones. */
  pooledBytes: number
}

export interface BackendInfo {
  name: string
  /** Device in words, e.g. "NVIDIA H100 80GB HBM3 (sm_90)" or "CPU (pure TypeScript)". */
  device: string
  /** Driver / runtime versions and similar facts worth putting in a benchmark report. */
  details: Record<string, string | number | boolean>
  /** Optional features in use (e.g. shader-f16, subgroups, timestamp-query, tensor cores). */
  features: string[]
  /** Peak rates used to report fractions of peak; measured or from the device's datasheet. */
  peak?: { flopsPerSecond?: Partial<Record<DType, number>>; bytesPerSecond?: number }
  /**
   * Bytes one tensor may take at most (WebGPU: the adapter's maxStorageBufferBindingSize);
   * absent where only device memory limits it. Lets a mechanism pick an implementation whose
   * intermediates fit.
   */
  maxTensorBytes?: number
}

/** Timing of a region of device work. */
export interface DeviceTiming {
  /** Time the device spent, from device-side timers when the backend has them. */
  deviceMs: number
  /** Host wall-clock time including launch and synchronisation. */
  wallMs: number
  /** 'device' when measured by device timers (events, timestamp queries), 'host' otherwise. */
  source: 'device' | 'host'
}

/**
 * A mechanism's own kernel, handed to a backend as source plus launch spec. This is how a
 * mechanism package ships fused kernels without importing any backend package.
 *
 * Binding convention (both languages): the inputs in order, then the outputs in order, then
 * the scalar arguments. WGSL: inputs are `var<storage, read>` at bindings 0..n-1, outputs
 * `var<storage, read_write>` at n..n+m-1, scalars packed in declaration order (4 bytes each)
 * into one `var<uniform>` struct at binding n+m (omitted when there are none). CUDA: an
 * `extern "C" __global__` function taking input pointers, output pointers, then scalars.
 */
export interface ProgramSpec {
  language: 'wgsl' | 'cuda'
  /** Stable name; together with the source hash it keys the compiled-program cache. */
  name: string
  source: string
  /** WGSL entry point or CUDA function name. */
  entryPoint: string
  /** Workgroups (WGSL) or grid (CUDA) to launch. */
  grid: readonly [number, number, number]
  /** CUDA block size; ignored for WGSL (the source declares its workgroup size). */
  block?: readonly [number, number, number]
  /** CUDA dynamic shared memory in bytes. */
  sharedBytes?: number
  inputs: readonly TensorInfo[]
  outputs: readonly { shape: Shape; dtype: DType; zeroInit?: boolean }[]
  scalars?: readonly { type: 'i32' | 'u32' | 'f32'; value: number }[]
  /** Extra compiler defines / specialisation constants folded into the source hash. */
  defines?: Record<string, string | number>
  /**
   * CUDA: launch as a programmatic dependent of the previous kernel in the stream (Hopper's
   * programmatic dependent launch), so its launch overlaps that kernel's end. The program must
   * then execute `griddepcontrol.wait` before it reads anything an earlier kernel wrote. Backends
   * or devices that cannot (WebGPU, compute capability below 9.0) launch it as usual.
   */
  programmaticLaunch?: boolean
}

/**
 * The contract every backend implements: storage, transfers, memory accounting and timing.
 * Computation reaches a backend through kernels registered per (kernel name, backend name).
 */
export interface Backend {
  readonly name: string
  info(): BackendInfo
  /** Dtypes this backend can store; others are rejected with a clear error. */
  supportsDType(dtype: DType): boolean
  /** Copies host values (canonical array of the dtype) into new storage. */
  write(values: TypedArray, shape: Shape, dtype: DType): DataId
  /** Reads storage back as the canonical host array of its dtype. */
  read(dataId: DataId): Promise<TypedArray>
  /** Synchronous read-back; backends that cannot (WebGPU) throw a BackendError saying so. */
  readSync(dataId: DataId): TypedArray
  /** Frees storage whose last reference went away. */
  release(dataId: DataId): void
  /** Bytes and buffer counts, as the backend sees them. */
  memory(): BackendMemory
  resetPeakMemory(): void
  /** Resolves when all queued device work has finished. */
  synchronize(): Promise<void>
  /** Runs `fn` (which launches work) and times it, with device timers when there are any. */
  time(fn: () => void): Promise<DeviceTiming>
  /** Runs a mechanism's kernel source; absent when the backend cannot compile programs. */
  runProgram?(spec: ProgramSpec): TensorInfo[]
  /** Frees every resource; the backend cannot be used afterwards. */
  dispose(): void
}

/** How a backend package makes itself available to core. */
export interface BackendProvider {
  name: string
  /** Higher wins in automatic choice (cuda 300 > webgpu 200 > cpu 100). */
  priority: number
  /** Creates the backend, or throws a BackendError naming why it cannot start and the fix. */
  create(): Backend | Promise<Backend>
}
