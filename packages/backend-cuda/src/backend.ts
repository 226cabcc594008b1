import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  ArgumentError,
  type Backend,
  BackendError,
  type BackendInfo,
  type BackendMemory,
  type DataId,
  type DeviceTiming,
  type DType,
  type ProgramSpec,
  type Shape,
  sizeOf,
  type TensorInfo,
  type TypedArray,
} from '@attnkit/core'
import { type Block, CachingAllocator } from './allocator.js'
import { type Defines, defaultCacheDir, KernelCompiler } from './compiler.js'
import { bindCublasLt, type CublasLt } from './ffi/cublaslt.js'
import {
  bindDriver,
  CU_DEVICE_ATTRIBUTE,
  CU_EVENT_DEFAULT,
  CU_FUNC_ATTRIBUTE,
  CU_STREAM_NON_BLOCKING,
  type Driver,
} from './ffi/driver.js'
import { type KoffiLike, loadKoffi } from './ffi/koffi.js'
import { bindNvrtc, type Nvrtc } from './ffi/nvrtc.js'
import {
  deviceBytes,
  deviceLayoutBuffer,
  fillPattern,
  fromDeviceLayout,
  toDeviceLayout,
} from './host-convert.js'
import { type ArgKind, ArgPacker, type ArgValue } from './launch-args.js'
import { type CudaLibraryOptions, findCudaInclude, loadLibrary } from './libraries.js'

export interface CudaBackendOptions {
  /** Library paths and extra folders to search (see README: Finding CUDA). */
  libraries?: CudaLibraryOptions
  /** CUDA device ordinal (default 0, or ATTNKIT_CUDA_DEVICE). */
  device?: number
  /** Let float32 matmuls use TF32 tensor cores (faster, ~1e-3 relative error). Default false. */
  allowTF32?: boolean
  /** Compiled-kernel cache folder; false disables the disk cache. Default ~/.cache/attnkit/cuda. */
  cacheDir?: string | false
  /** Folder of the .cu sources (default: the package's kernels/). */
  kernelsDir?: string
}

/** A tensor's device storage. */
export class CudaData {
  constructor(
    readonly block: Block,
    readonly dtype: DType,
    readonly size: number,
  ) {}
  get ptr(): bigint {
    return this.block.ptr
  }
}

/** A compiled kernel with its argument layout, ready to launch. */
export interface CudaKernel {
  readonly name: string
  readonly fn: bigint
  readonly packer: ArgPacker
  maxDynamicShared: number
}

const INDEX_ERRORS: Record<number, string> = { 1: 'gather', 2: 'takeAlongAxis', 3: 'scatterAdd' }

function defaultKernelsDir(): string {
  if (process.env.ATTNKIT_CUDA_KERNELS_DIR) return process.env.ATTNKIT_CUDA_KERNELS_DIR
  const here = dirname(fileURLToPath(import.meta.url))
  // dist/index.js and src/backend.ts both sit one folder below the package root.
  return join(here, '..', 'kernels')
}

/**
 * The CUDA backend: storage in device memory through a caching allocator, kernels compiled at
 * first use with NVRTC for the device's own architecture, matmuls through cuBLASLt, one stream,
 * timing with CUDA events. Created through `createCudaBackend` (or by core via the registry).
 */
export class CudaBackend implements Backend {
  readonly name = 'cuda'
  readonly allocator: CachingAllocator
  readonly compiler: KernelCompiler
  readonly stream: bigint
  readonly smCount: number
  readonly computeCapability: [number, number]
  readonly maxSharedOptin: number
  /** Scratch word the indexing kernels report out-of-range indices in. */
  readonly errorWord: Block
  readonly allowTF32: boolean
  private readonly modules = new Map<string, bigint>()
  private readonly kernels = new Map<string, CudaKernel>()
  private readonly sourceHashes = new Map<string, string>()
  private readonly argMemory: bigint[] = []
  private readonly events: [bigint, bigint]
  private liveTensors = 0
  private liveBytes = 0
  private peakBytes = 0
  private indexKernelsPending = false
  private disposed = false
  private readonly deviceName: string
  /** Clocks and bus width for info()'s peak rates: fixed per device, read once, not per info(). */
  private readonly rates: { clockHz: number; memClockHz: number; busBits: number }
  private readonly details: Record<string, string | number | boolean>
  /** Per-backend state of kernel families (matmul plans, workspaces). */
  readonly state = new Map<string, unknown>()
  private readonly fallbacksReported = new Set<string>()

  private constructor(
    readonly koffi: KoffiLike,
    readonly driver: Driver,
    readonly nvrtc: Nvrtc,
    readonly lt: CublasLt,
    readonly deviceOrdinal: number,
    private readonly context: bigint,
    opts: CudaBackendOptions,
  ) {
    const dev = driver.device(deviceOrdinal)
    this.computeCapability = [
      driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.computeCapabilityMajor, dev),
      driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.computeCapabilityMinor, dev),
    ]
    this.smCount = driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.multiprocessorCount, dev)
    this.maxSharedOptin = driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.maxSharedMemoryPerBlockOptin, dev)
    this.deviceName = driver.deviceName(dev)
    this.rates = {
      clockHz: driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.clockRateKHz, dev) * 1e3,
      memClockHz: driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.memoryClockRateKHz, dev) * 1e3,
      busBits: driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.globalMemoryBusWidth, dev),
    }
    this.allowTF32 = opts.allowTF32 ?? process.env.ATTNKIT_CUDA_ALLOW_TF32 === '1'
    const [major, minor] = this.computeCapability
    const arch = major === 9 && minor === 0 ? 'sm_90a' : `sm_${major}${minor}`
    const supported = nvrtc.supportedArchs()
    if (!supported.includes(major * 10 + minor)) {
      throw new BackendError(
        `CUDA backend: NVRTC ${nvrtc.version().major}.${nvrtc.version().minor} (${nvrtc.path}) cannot compile for ${this.deviceName} (compute capability ${major}.${minor}; it supports ${supported.join(', ')}). Fix: install an NVRTC at least as new as the GPU (CUDA 12.8+ for Blackwell) and point ATTNKIT_CUDA_LIB_DIR at it.`,
      )
    }
    this.stream = driver.streamCreate(CU_STREAM_NON_BLOCKING)
    this.events = [driver.eventCreate(CU_EVENT_DEFAULT), driver.eventCreate(CU_EVENT_DEFAULT)]
    this.allocator = new CachingAllocator({
      alloc: (bytes) => driver.memAlloc(bytes),
      free: (ptr) => driver.memFree(ptr),
      synchronize: () => driver.streamSynchronize(this.stream),
    })
    const kernelsDir = opts.kernelsDir ?? defaultKernelsDir()
    const include = findCudaInclude()
    const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir
    this.compiler = new KernelCompiler(nvrtc, arch, kernelsDir, include ? [include] : [], cacheDir)
    this.errorWord = this.allocator.allocate(16, this.stream)
    driver.memsetD8Async(this.errorWord.ptr, 0, 16, this.stream)
    const mem = driver.memGetInfo()
    const nv = nvrtc.version()
    this.details = {
      computeCapability: `${major}.${minor}`,
      arch,
      multiprocessors: this.smCount,
      memoryBytes: mem.total,
      driverVersion: formatCudaVersion(driver.driverVersion()),
      nvrtcVersion: `${nv.major}.${nv.minor}`,
      cublasLtVersion: lt.version(),
      libcuda: driver.path,
      libnvrtc: nvrtc.path,
      libcublasLt: lt.path,
      kernelCache: cacheDir || 'disabled',
      tf32: this.allowTF32,
    }
  }

  /** Loads the libraries, opens the device and creates the backend. Throws BackendError with the fix. */
  static async create(opts: CudaBackendOptions = {}): Promise<CudaBackend> {
    const koffi = await loadKoffi((m) => new BackendError(m))
    const libs = opts.libraries ?? {}
    const cuda = loadLibrary('cuda', libs, (p) => koffi.load(p))
    const driver = bindDriver(cuda.handle, cuda.path)
    try {
      driver.init()
    } catch (e) {
      throw new BackendError(
        `CUDA backend: cuInit failed with ${(e as Error).message} (libcuda at ${cuda.path}). Fix: check that an NVIDIA GPU is visible (nvidia-smi), that the driver matches the kernel module, and that CUDA_VISIBLE_DEVICES does not hide every device.`,
      )
    }
    const count = driver.deviceCount()
    const ordinal = opts.device ?? Number(process.env.ATTNKIT_CUDA_DEVICE ?? 0)
    if (count === 0) {
      throw new BackendError(
        'CUDA backend: the driver sees no CUDA device. Fix: check nvidia-smi, and CUDA_VISIBLE_DEVICES.',
      )
    }
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
      throw new ArgumentError(
        `createCudaBackend: argument 'device' expected an integer in [0, ${count - 1}], got ${ordinal}`,
      )
    }
    const dev = driver.device(ordinal)
    const major = driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.computeCapabilityMajor, dev)
    const minor = driver.deviceAttribute(CU_DEVICE_ATTRIBUTE.computeCapabilityMinor, dev)
    if (major < 8) {
      throw new BackendError(
        `CUDA backend: ${driver.deviceName(dev)} has compute capability ${major}.${minor}; attnkit's CUDA kernels need 8.0 or newer (Ampere, Ada, Hopper, Blackwell: bfloat16 tensor cores). Fix: use another GPU (createCudaBackend({ device })) or the webgpu/cpu backend.`,
      )
    }
    const nv = loadLibrary('nvrtc', libs, (p) => koffi.load(p))
    const nvrtc = bindNvrtc(nv.handle, nv.path)
    const lt = loadLibrary('cublasLt', libs, (p) => koffi.load(p))
    const ctx = driver.primaryContextRetain(dev)
    driver.contextSetCurrent(ctx)
    const cublasLt = bindCublasLt(lt.handle, lt.path)
    return new CudaBackend(koffi, driver, nvrtc, cublasLt, ordinal, ctx, opts)
  }

  // ------------------------------------------------------------------ contract

  info(): BackendInfo {
    const [major, minor] = this.computeCapability
    const { clockHz, memClockHz, busBits } = this.rates
    // Dense 16-bit tensor-core FLOP per clock per SM: 4096 on Hopper, 2048 on Ampere/Ada/others.
    const tc = major === 9 ? 4096 : 2048
    const fp32 = major >= 9 || (major === 8 && minor >= 6) ? 256 : 128
    return {
      name: this.name,
      device: `${this.deviceName} (sm_${major}${minor}, ${this.smCount} SMs)`,
      details: {
        ...this.details,
        kernelsCompiled: this.compiler.stats.compiled,
        kernelCacheHits: this.compiler.stats.cacheHits,
      },
      features: [
        this.compiler.arch === 'sm_90a'
          ? 'tensor-cores (wgmma and mma.sync bf16/f16, float32 accumulation)'
          : 'tensor-cores (mma.sync bf16/f16, float32 accumulation)',
        'cublasLt',
        `nvrtc ${this.compiler.arch}`,
        'caching-allocator',
        'cuda-events',
        ...(this.allowTF32 ? ['tf32'] : []),
      ],
      peak: {
        flopsPerSecond: {
          bfloat16: tc * this.smCount * clockHz,
          float16: tc * this.smCount * clockHz,
          float32: (this.allowTF32 ? tc / 2 : fp32) * this.smCount * clockHz,
        },
        bytesPerSecond: memClockHz * 2 * (busBits / 8),
      },
    }
  }

  supportsDType(dtype: DType): boolean {
    return dtype !== 'float64'
  }

  write(values: TypedArray, shape: Shape, dtype: DType): DataId {
    this.assertUsable()
    const n = sizeOf(shape)
    if (values.length !== n)
      throw new BackendError(`cuda.write: ${values.length} values for shape [${shape}] (${n})`)
    this.assertDType(dtype)
    const info = this.alloc(shape, dtype)
    if (n > 0) {
      const host = toDeviceLayout(values, dtype)
      this.driver.memcpyHtoDAsync(this.ptr(info), host, deviceBytes(dtype, n), this.stream)
    }
    return info.dataId
  }

  async read(dataId: DataId): Promise<TypedArray> {
    return this.readSync(dataId)
  }

  readSync(dataId: DataId): TypedArray {
    this.assertUsable()
    const d = dataId as CudaData
    this.driver.streamSynchronize(this.stream)
    this.checkDeviceErrors()
    const raw = deviceLayoutBuffer(d.dtype, d.size)
    if (d.size > 0) this.driver.memcpyDtoHAsync(raw, d.ptr, deviceBytes(d.dtype, d.size), this.stream)
    this.driver.streamSynchronize(this.stream)
    return fromDeviceLayout(raw, d.dtype, d.size)
  }

  release(dataId: DataId): void {
    if (this.disposed) return
    const d = dataId as CudaData
    this.liveTensors--
    this.liveBytes -= deviceBytes(d.dtype, d.size)
    this.allocator.release(d.block)
  }

  memory(): BackendMemory {
    return {
      liveBuffers: this.liveTensors,
      liveBytes: this.liveBytes,
      peakBytes: this.peakBytes,
      pooledBytes: this.allocator.stats().pooledBytes,
    }
  }

  resetPeakMemory(): void {
    this.peakBytes = this.liveBytes
  }

  async synchronize(): Promise<void> {
    this.assertUsable()
    this.driver.streamSynchronize(this.stream)
    this.checkDeviceErrors()
  }

  async time(fn: () => void): Promise<DeviceTiming> {
    this.assertUsable()
    const [start, end] = this.events
    const t0 = performance.now()
    this.driver.eventRecord(start, this.stream)
    fn()
    this.driver.eventRecord(end, this.stream)
    this.driver.eventSynchronize(end)
    const wallMs = performance.now() - t0
    this.checkDeviceErrors()
    return { deviceMs: this.driver.eventElapsedMs(start, end), wallMs, source: 'device' }
  }

  runProgram(spec: ProgramSpec): TensorInfo[] {
    this.assertUsable()
    if (spec.language !== 'cuda') {
      throw new BackendError(
        `cuda.runProgram: program '${spec.name}' is ${spec.language}; the CUDA backend runs language 'cuda' (CUDA C) programs only`,
      )
    }
    const scalars = spec.scalars ?? []
    const kinds: ArgKind[] = [
      ...spec.inputs.map(() => 'ptr' as const),
      ...spec.outputs.map(() => 'ptr' as const),
      ...scalars.map((s) => s.type),
    ]
    const kernel = this.kernelFromSource(spec.name, spec.source, spec.defines ?? {}, spec.entryPoint, kinds)
    const outputs = spec.outputs.map((o) => this.alloc(o.shape, o.dtype))
    spec.outputs.forEach((o, i) => {
      if (o.zeroInit) this.zero(outputs[i])
    })
    const args: ArgValue[] = [
      ...spec.inputs.map((t) => this.ptr(t)),
      ...outputs.map((t) => this.ptr(t)),
      ...scalars.map((s) => s.value),
    ]
    this.launch(
      kernel,
      spec.grid,
      spec.block ?? [256, 1, 1],
      spec.sharedBytes ?? 0,
      args,
      spec.programmaticLaunch ?? false,
    )
    return outputs
  }

  dispose(): void {
    if (this.disposed) return
    try {
      this.driver.streamSynchronize(this.stream)
    } catch {
      // disposing anyway
    }
    for (const fn of this.state.values()) {
      if (fn && typeof (fn as { dispose?: () => void }).dispose === 'function')
        (fn as { dispose: () => void }).dispose()
    }
    this.state.clear()
    this.allocator.releaseAll()
    for (const m of this.modules.values()) this.driver.moduleUnload(m)
    this.modules.clear()
    this.kernels.clear()
    this.sourceHashes.clear()
    for (const e of this.events) this.driver.eventDestroy(e)
    this.driver.streamDestroy(this.stream)
    this.lt.destroy()
    for (const p of this.argMemory) this.koffi.free(p)
    this.driver.primaryContextRelease(this.driver.device(this.deviceOrdinal))
    this.disposed = true
    void this.context
  }

  // ------------------------------------------------------------------ helpers for kernels

  /** New output storage of `shape` x `dtype` (uninitialised). */
  alloc(shape: Shape, dtype: DType): TensorInfo {
    this.assertDType(dtype)
    const n = sizeOf(shape)
    const bytes = deviceBytes(dtype, n)
    const block = this.allocator.allocate(bytes, this.stream)
    this.liveTensors++
    this.liveBytes += bytes
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes
    return { dataId: new CudaData(block, dtype, n), shape: [...shape], dtype }
  }

  /** Temporary device memory, returned with `free` once the launches using it are queued. */
  scratch(bytes: number): Block {
    return this.allocator.allocate(bytes, this.stream)
  }

  free(block: Block): void {
    this.allocator.release(block)
  }

  ptr(info: TensorInfo): bigint {
    return (info.dataId as CudaData).ptr
  }

  zero(info: TensorInfo): void {
    const n = sizeOf(info.shape)
    if (n > 0) this.driver.memsetD8Async(this.ptr(info), 0, deviceBytes(info.dtype, n), this.stream)
  }

  zeroBlock(block: Block, bytes: number): void {
    if (bytes > 0) this.driver.memsetD8Async(block.ptr, 0, bytes, this.stream)
  }

  fill(info: TensorInfo, value: number): void {
    const n = sizeOf(info.shape)
    if (n === 0) return
    const { bits, width } = fillPattern(info.dtype, value)
    const p = this.ptr(info)
    if (width === 1) this.driver.memsetD8Async(p, bits, n, this.stream)
    else if (width === 2) this.driver.memsetD16Async(p, bits, n, this.stream)
    else this.driver.memsetD32Async(p, bits, n, this.stream)
  }

  copy(dst: bigint, src: bigint, bytes: number): void {
    if (bytes > 0) this.driver.memcpyDtoDAsync(dst, src, bytes, this.stream)
  }

  /** A kernel from a shipped .cu file, compiled (once) with `defines`. */
  kernel(file: string, defines: Defines, entry: string, kinds: readonly ArgKind[]): CudaKernel {
    const key = `${file}|${definesKey(defines)}|${entry}`
    const k = this.kernels.get(key)
    if (k) return k
    return this.kernelFromSource(
      file.replace(/\.cu$/, ''),
      this.compiler.source(file),
      defines,
      entry,
      kinds,
      key,
    )
  }

  /**
   * hashString of a program source, remembered per source: runProgram looks its kernel up at every
   * launch, and hashing a 60 KB module source in JavaScript each time cost ~0.1-0.3 ms of host time
   * per launch (host-bound layers). A Map keyed by the string is cheap: V8 keeps a string's own
   * hash on the string.
   */
  private sourceHash(source: string): string {
    let h = this.sourceHashes.get(source)
    if (h === undefined) {
      h = hashString(source)
      // Bounded: programs that generate a new source per call must not grow it forever.
      if (this.sourceHashes.size >= 256) this.sourceHashes.clear()
      this.sourceHashes.set(source, h)
    }
    return h
  }

  private kernelFromSource(
    name: string,
    source: string,
    defines: Defines,
    entry: string,
    kinds: readonly ArgKind[],
    key = `${name}|${source.length}|${this.sourceHash(source)}|${definesKey(defines)}|${entry}`,
  ): CudaKernel {
    const existing = this.kernels.get(key)
    if (existing) return existing
    const modKey = `${name}|${this.sourceHash(source)}|${definesKey(defines)}`
    let mod = this.modules.get(modKey)
    if (mod === undefined) {
      const cubin = this.compiler.compile(name, source, defines)
      mod = this.driver.moduleLoadData(cubin)
      this.modules.set(modKey, mod)
    }
    const fn = this.driver.moduleGetFunction(mod, entry)
    const packer = new ArgPacker(entry, kinds, (bytes) => {
      const ptr = this.koffi.alloc('uint8_t', bytes)
      this.argMemory.push(ptr)
      return { ptr, view: new DataView(this.koffi.view(ptr, bytes)) }
    })
    // Without opting in, static + dynamic shared memory must fit in 48 KiB.
    const staticShared = this.driver.funcGetAttribute(fn, CU_FUNC_ATTRIBUTE.sharedSizeBytes)
    const kernel: CudaKernel = { name: entry, fn, packer, maxDynamicShared: 48 * 1024 - staticShared }
    this.kernels.set(key, kernel)
    return kernel
  }

  launch(
    kernel: CudaKernel,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    args: readonly ArgValue[],
    programmatic = false,
  ): void {
    this.assertUsable()
    if (grid[0] * grid[1] * grid[2] === 0) return
    if (sharedBytes > kernel.maxDynamicShared) {
      if (
        sharedBytes >
        this.maxSharedOptin - this.driver.funcGetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE.sharedSizeBytes)
      ) {
        throw new BackendError(
          `${kernel.name}: ${sharedBytes} bytes of shared memory requested; this GPU allows ${this.maxSharedOptin} per block`,
        )
      }
      this.driver.funcSetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE.maxDynamicSharedSizeBytes, sharedBytes)
      kernel.maxDynamicShared = sharedBytes
    }
    const params = kernel.packer.pack(args)
    if (programmatic && this.canLaunchProgrammatic) {
      const { ptr, view } = this.programmaticConfig()
      for (let i = 0; i < 3; i++) {
        view.setUint32(4 * i, grid[i], true)
        view.setUint32(12 + 4 * i, block[i], true)
      }
      view.setUint32(24, sharedBytes, true)
      view.setBigUint64(32, this.stream, true)
      this.driver.launchKernelEx!(ptr, kernel.fn, params)
      return
    }
    this.driver.launchKernel(kernel.fn, grid, block, sharedBytes, this.stream, params)
  }

  /**
   * Whether launch(..., programmatic) launches as a programmatic dependent (Hopper's PDL:
   * compute capability 9.0 or later and a driver with cuLaunchKernelEx); else it launches as usual.
   */
  get canLaunchProgrammatic(): boolean {
    return this.computeCapability[0] >= 9 && typeof this.driver.launchKernelEx === 'function'
  }

  private launchConfigMemory?: { ptr: bigint; view: DataView }

  /**
   * Native CUlaunchConfig (56 bytes) followed at offset 64 by one CUlaunchAttribute (72 bytes):
   * CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (6), allowed = 1. Written once; a launch
   * fills in grid, block, shared bytes and stream.
   */
  private programmaticConfig(): { ptr: bigint; view: DataView } {
    if (!this.launchConfigMemory) {
      const bytes = 64 + 72
      const ptr = this.koffi.alloc('uint8_t', bytes)
      this.argMemory.push(ptr)
      const view = new DataView(this.koffi.view(ptr, bytes))
      for (let i = 0; i < bytes; i++) view.setUint8(i, 0)
      view.setBigUint64(40, ptr + 64n, true)
      view.setUint32(48, 1, true)
      view.setUint32(64, 6, true)
      view.setInt32(72, 1, true)
      this.launchConfigMemory = { ptr, view }
    }
    return this.launchConfigMemory
  }

  /** Grid for a grid-stride loop over n elements. */
  grid1d(n: number, block = 256): [number, number, number] {
    const blocks = Math.min(Math.ceil(n / block), this.smCount * 16)
    return [Math.max(1, blocks), 1, 1]
  }

  /** Registers, local (spill) bytes and static shared bytes of every kernel loaded so far. */
  kernelResources(): Record<string, { registers: number; localBytes: number; sharedBytes: number }> {
    const out: Record<string, { registers: number; localBytes: number; sharedBytes: number }> = {}
    for (const [key, k] of this.kernels) {
      out[key] = {
        registers: this.driver.funcGetAttribute(k.fn, CU_FUNC_ATTRIBUTE.numRegs),
        localBytes: this.driver.funcGetAttribute(k.fn, CU_FUNC_ATTRIBUTE.localSizeBytes),
        sharedBytes: this.driver.funcGetAttribute(k.fn, CU_FUNC_ATTRIBUTE.sharedSizeBytes),
      }
    }
    return out
  }

  /** Marks that an indexing kernel ran, so the next sync checks the device error word. */
  noteIndexKernel(): void {
    this.indexKernelsPending = true
  }

  /** Says once per process, on stderr, that a slower fallback path ran and why. */
  reportFallback(key: string, message: string): void {
    if (this.fallbacksReported.has(key)) return
    this.fallbacksReported.add(key)
    process.stderr.write(`attnkit cuda: fallback: ${message}\n`)
  }

  private checkDeviceErrors(): void {
    if (!this.indexKernelsPending) return
    this.indexKernelsPending = false
    const word = new Int32Array(4)
    this.driver.memcpyDtoHAsync(word, this.errorWord.ptr, 16, this.stream)
    this.driver.streamSynchronize(this.stream)
    if (word[0] !== 0) {
      this.driver.memsetD8Async(this.errorWord.ptr, 0, 16, this.stream)
      const op = INDEX_ERRORS[word[0]] ?? 'indexing kernel'
      throw new ArgumentError(
        `${op}: index ${word[1]} out of range [0, ${word[2]}) (found on the GPU; reported at the next read or synchronize)`,
      )
    }
  }

  private assertDType(dtype: DType): void {
    if (dtype === 'float64') {
      throw new BackendError(
        "Backend 'cuda' does not support dtype float64 (GPU storage is float32, float16, bfloat16, int32, uint32, bool); cast first or use the cpu backend",
      )
    }
  }

  private assertUsable(): void {
    if (this.disposed) throw new BackendError('The CUDA backend was disposed')
  }
}

function definesKey(d: Defines): string {
  return Object.keys(d)
    .sort()
    .map((k) => `${k}=${d[k]}`)
    .join(',')
}

function hashString(s: string): string {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0
  return h.toString(16)
}

function formatCudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`
}
