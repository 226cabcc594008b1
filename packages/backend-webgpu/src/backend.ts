import {
  type Backend,
  BackendError,
  type BackendInfo,
  type BackendMemory,
  type DataId,
  type DeviceTiming,
  type DType,
  fmtShape,
  type ProgramSpec,
  type Shape,
  sizeOf,
  type TensorInfo,
  type TypedArray,
} from '@attnkit/core'
import { BufferPool } from './buffer-pool.js'
import { describeAdapter, type StartedDevice } from './device.js'
import { bufferBytes, decodeHost, elementBytes, encodeHost, supportsGpuDType } from './dtype-layout.js'
import { type CompiledPipeline, PipelineCache } from './pipeline-cache.js'
import { UniformArena } from './uniform-arena.js'
import type { CodecOptions } from './wgsl/codec.js'
import { SUBGROUP_PROBE } from './wgsl/workgroup-reduce.js'

/** A tensor's storage on the GPU: the DataId the engine holds. */
export class GpuData {
  released = false
  constructor(
    readonly owner: WebGPUBackend,
    readonly buffer: GPUBuffer,
    /** Bytes the tensor occupies (whole words); the buffer may be larger (pool size class). */
    readonly bytes: number,
    readonly size: number,
    readonly dtype: DType,
  ) {}
}

/** What a dispatch binds: a tensor's storage or a temporary buffer. */
export interface GpuBinding {
  readonly buffer: GPUBuffer
  readonly bytes: number
}

export interface Launch {
  /** Cache key of the pipeline: the kernel and every specialisation its source depends on. */
  key: string
  /** WGSL source, generated only when the pipeline is not cached yet. */
  wgsl: () => string
  entryPoint?: string
  inputs: readonly GpuBinding[]
  outputs: readonly GpuBinding[]
  /**
   * Source from outside this package (runProgram): its first dispatch goes in a submission of
   * its own, so a compile error cannot invalidate other kernels' commands.
   */
  untrusted?: boolean
  /** Outputs to clear to zero before the dispatch (all when true). */
  zero?: boolean | readonly boolean[]
  /** Uniform words (bound after the outputs); omitted when the kernel has none. */
  uniforms?: Uint32Array
  grid: readonly [number, number, number]
  constants?: Record<string, number>
  label?: string
}

export interface WebGPUBackendOptions {
  /** Backend name the engine knows it by (default 'webgpu'). */
  name?: string
  /** Bytes the buffer pool keeps for reuse before destroying the oldest (default 1 GiB). */
  poolLimitBytes?: number
  /** Dispatches recorded before a submit (default 64). */
  dispatchesPerSubmit?: number
  /** The device was handed in by the user: dispose() leaves it alive. */
  ownsDevice?: boolean
  /** Force (or forbid) lean compilation; by default on for CPU adapters only. */
  lean?: boolean
  /** Words of the runtime in use (e.g. "node 24.1, dawn.node (webgpu 0.6.2)") for info(). */
  runtime?: string
}

interface TimingRegion {
  querySet: GPUQuerySet
  resolve: GPUBuffer
  readback: GPUBuffer
}

/**
 * The WebGPU backend: storage in pooled GPU buffers, kernels as cached compute pipelines,
 * commands recorded into one encoder and submitted in batches, one uniform arena per batch.
 */
export class WebGPUBackend implements Backend {
  readonly name: string
  readonly device: GPUDevice
  readonly features: ReadonlySet<string>
  readonly codec: CodecOptions
  /**
   * Lanes per subgroup when subgroup operations are enabled and the probe found them laid out
   * contiguously over local_invocation_index in 256-wide workgroups (else 0: no subgroup ops).
   */
  subgroupSize = 0
  private subgroupNote = 'subgroups not available'
  /**
   * The adapter runs shaders on the CPU (lavapipe, SwiftShader): its shader compiler unrolls
   * every constant-trip loop, which costs seconds per kernel, so kernels read their inner loop
   * bounds from uniforms there (same code, same results; GPUs keep the constants and unroll).
   */
  readonly lean: boolean
  readonly limits: GPUSupportedLimits
  readonly pipelines: PipelineCache
  readonly pool: BufferPool
  private readonly readPool: BufferPool
  private readonly arena: UniformArena
  /** Word 0: the code of the first invalid argument a kernel found on the GPU (0: none). */
  private readonly flags: GPUBuffer
  private readonly flagMessages: string[] = ['']
  private flagsMaybeSet = false
  private readonly constants = new Map<string, GpuBinding>()
  private encoder: GPUCommandEncoder | null = null
  private batchLabels: string[] = []
  private readonly dispatchesPerSubmit: number
  private readonly pendingErrors: Promise<void>[] = []
  private errors: string[] = []
  private liveBuffers = 0
  private liveBytes = 0
  private peakBytes = 0
  private timing: TimingRegion | undefined
  private timingActive = false
  private lost: string | undefined
  private disposed = false
  private readonly ownsDevice: boolean
  private readonly runtime: string
  /** Dispatches recorded since start (statistics). */
  dispatches = 0
  submits = 0

  constructor(
    private started: StartedDevice,
    opts: WebGPUBackendOptions = {},
  ) {
    this.name = opts.name ?? 'webgpu'
    this.device = started.device
    this.features = started.features
    this.codec = { f16: started.features.has('shader-f16') }
    this.limits = started.device.limits
    this.lean = opts.lean ?? isCpuAdapter(started.adapterInfo)
    this.ownsDevice = opts.ownsDevice ?? true
    this.runtime = opts.runtime ?? 'unknown runtime'
    this.dispatchesPerSubmit = opts.dispatchesPerSubmit ?? 64
    this.pipelines = new PipelineCache(this.device, (_label, message) => this.errors.push(message))
    this.pool = new BufferPool(
      this.device,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      opts.poolLimitBytes ?? 2 ** 30,
      'attnkit tensor',
    )
    this.readPool = new BufferPool(
      this.device,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      64 * 2 ** 20,
      'attnkit readback',
    )
    this.arena = new UniformArena(this.device, 256 * 1024, this.limits.minUniformBufferOffsetAlignment)
    this.flags = this.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label: 'attnkit argument flags',
    })
    this.device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`
    })
    this.device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(ev.error.message)
    }
  }

  // ------------------------------------------------------------------ Backend contract

  info(): BackendInfo {
    const a = this.started.adapterInfo
    const features = [...this.features].filter((f) =>
      ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'].includes(f),
    )
    return {
      name: this.name,
      device: `${describeAdapter(a)} (WebGPU)`,
      details: {
        runtime: this.runtime,
        vendor: a?.vendor ?? '',
        architecture: a?.architecture ?? '',
        adapter: a?.description || a?.device || '',
        float16Storage: this.codec.f16 ? 'f16 (shader-f16)' : 'packed u32 (no shader-f16)',
        bfloat16Storage: 'packed u32',
        compilation: this.lean
          ? 'lean (CPU adapter: loop bounds from uniforms)'
          : 'specialised (constant loop bounds)',
        subgroupSize: this.subgroupSize,
        subgroups: this.subgroupNote,
        maxStorageBufferBindingSize: this.limits.maxStorageBufferBindingSize,
        maxComputeWorkgroupStorageSize: this.limits.maxComputeWorkgroupStorageSize,
      },
      features,
      maxTensorBytes: this.limits.maxStorageBufferBindingSize,
    }
  }

  supportsDType(dtype: DType): boolean {
    return supportsGpuDType(dtype)
  }

  write(values: TypedArray, shape: Shape, dtype: DType): DataId {
    this.assertUsable('write')
    const n = sizeOf(shape)
    if (values.length !== n)
      throw new BackendError(
        `${this.name}.write: ${values.length} values for shape ${fmtShape(shape)} (${n})`,
      )
    const data = this.allocData(n, dtype)
    const bytes = encodeHost(values, dtype)
    this.device.queue.writeBuffer(data.buffer, 0, bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return data
  }

  async read(dataId: DataId): Promise<TypedArray> {
    this.assertUsable('read')
    const d = this.data(dataId, 'read')
    const staging = this.readPool.acquire(d.bytes)
    this.commandEncoder().copyBufferToBuffer(d.buffer, 0, staging, 0, d.bytes)
    const flagCheck = this.checkFlags()
    flagCheck.catch(() => {})
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, d.bytes)
      const copy = staging.getMappedRange(0, d.bytes).slice(0)
      staging.unmap()
      await flagCheck
      await this.raiseErrors()
      return decodeHost(copy, d.dtype, d.size)
    } finally {
      this.readPool.release(staging)
      this.readPool.flushQuarantine()
    }
  }

  readSync(_dataId: DataId): TypedArray {
    throw new BackendError(
      `${this.name}: synchronous read-back is impossible in WebGPU (buffers map asynchronously); use await tensor.data() or await tensor.array()`,
    )
  }

  release(dataId: DataId): void {
    const d = dataId as GpuData
    if (!(d instanceof GpuData) || d.released || d.owner !== this) return
    d.released = true
    this.liveBuffers--
    this.liveBytes -= d.size * elementBytes(d.dtype)
    if (!this.disposed) this.pool.release(d.buffer, this.encoder !== null)
  }

  memory(): BackendMemory {
    return {
      liveBuffers: this.liveBuffers,
      liveBytes: this.liveBytes,
      peakBytes: this.peakBytes,
      pooledBytes: this.pool.pooledBytes,
    }
  }

  resetPeakMemory(): void {
    this.peakBytes = this.liveBytes
  }

  async synchronize(): Promise<void> {
    this.assertUsable('synchronize')
    const flagCheck = this.checkFlags()
    flagCheck.catch(() => {})
    await this.device.queue.onSubmittedWorkDone()
    await flagCheck
    await this.raiseErrors()
  }

  /**
   * Times the device work `fn` launches: with timestamp-query, from a timestamp written before
   * its first dispatch to one written after its last (source 'device'); otherwise host time
   * around fn and a full synchronisation (source 'host').
   */
  async time(fn: () => void): Promise<DeviceTiming> {
    if (this.timingActive) throw new BackendError(`${this.name}.time: time() calls cannot nest`)
    await this.synchronize()
    this.timingActive = true
    try {
      const t0 = performance.now()
      if (!this.features.has('timestamp-query')) {
        fn()
        await this.synchronize()
        const ms = performance.now() - t0
        return { deviceMs: ms, wallMs: ms, source: 'host' }
      }
      const region = this.timingRegion()
      this.commandEncoder()
        .beginComputePass({ timestampWrites: { querySet: region.querySet, beginningOfPassWriteIndex: 0 } })
        .end()
      fn()
      const enc = this.commandEncoder()
      enc.beginComputePass({ timestampWrites: { querySet: region.querySet, endOfPassWriteIndex: 1 } }).end()
      enc.resolveQuerySet(region.querySet, 0, 2, region.resolve, 0)
      enc.copyBufferToBuffer(region.resolve, 0, region.readback, 0, 16)
      this.flush()
      await region.readback.mapAsync(GPUMapMode.READ)
      const ts = new BigUint64Array(region.readback.getMappedRange().slice(0))
      region.readback.unmap()
      const wallMs = performance.now() - t0
      await this.raiseErrors()
      const deviceMs = Number(ts[1] - ts[0]) / 1e6
      // Some implementations return zeros for timestamps they do not support in this context.
      if (!(deviceMs > 0)) return { deviceMs: wallMs, wallMs, source: 'host' }
      return { deviceMs, wallMs, source: 'device' }
    } finally {
      this.timingActive = false
    }
  }

  runProgram(spec: ProgramSpec): TensorInfo[] {
    this.assertUsable('runProgram')
    if (spec.language !== 'wgsl') {
      throw new BackendError(
        `${this.name}.runProgram: program '${spec.name}' is ${spec.language}; this backend runs 'wgsl' programs`,
      )
    }
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension
    if (spec.grid.length !== 3 || spec.grid.some((g) => !Number.isInteger(g) || g < 0 || g > maxDim)) {
      throw new BackendError(
        `${this.name}.runProgram: program '${spec.name}' grid [${spec.grid.join(', ')}] must be three integers in [0, ${maxDim}]`,
      )
    }
    const inputs = spec.inputs.map((t, i) => {
      const d = this.data(t.dataId, `runProgram '${spec.name}' input ${i}`)
      return d
    })
    const outputs = spec.outputs.map((o) => this.allocData(sizeOf(o.shape), o.dtype))
    const scalars = spec.scalars ?? []
    let uniforms: Uint32Array | undefined
    if (scalars.length) {
      uniforms = new Uint32Array(scalars.length)
      const f = new Float32Array(uniforms.buffer)
      const s = new Int32Array(uniforms.buffer)
      scalars.forEach((sc, i) => {
        if (sc.type === 'f32') f[i] = sc.value
        else if (sc.type === 'i32') s[i] = sc.value
        else if (sc.type === 'u32') uniforms![i] = sc.value >>> 0
        else throw new BackendError(`runProgram '${spec.name}': scalar ${i} has unknown type '${sc.type}'`)
      })
    }
    const constants: Record<string, number> = {}
    for (const [k, v] of Object.entries(spec.defines ?? {})) {
      const num = typeof v === 'number' ? v : v === 'true' ? 1 : v === 'false' ? 0 : Number(v)
      if (!Number.isFinite(num)) {
        throw new BackendError(
          `runProgram '${spec.name}': define ${k}=${JSON.stringify(v)} must be numeric (WGSL defines become pipeline-overridable constants: declare 'override ${k}: u32;')`,
        )
      }
      constants[k] = num
    }
    const source = spec.source
    this.launch({
      key: `program\u0000${spec.name}\u0000${spec.entryPoint}\u0000${JSON.stringify(constants)}\u0000${source}`,
      wgsl: () => source,
      entryPoint: spec.entryPoint,
      inputs,
      outputs,
      zero: spec.outputs.map((o) => o.zeroInit === true),
      uniforms,
      grid: spec.grid,
      constants,
      label: spec.name,
      untrusted: true,
    })
    return outputs.map((d, i) => ({
      dataId: d,
      shape: [...spec.outputs[i].shape],
      dtype: spec.outputs[i].dtype,
    }))
  }

  dispose(): void {
    if (this.disposed) return
    try {
      this.flush()
    } catch {
      // A lost device cannot submit; everything is destroyed below either way.
    }
    this.disposed = true
    this.pool.destroyAll()
    this.readPool.destroyAll()
    this.arena.destroy()
    this.flags.destroy()
    for (const c of this.constants.values()) c.buffer.destroy()
    this.constants.clear()
    if (this.timing) {
      this.timing.querySet.destroy()
      this.timing.resolve.destroy()
      this.timing.readback.destroy()
      this.timing = undefined
    }
    if (this.ownsDevice) this.device.destroy()
    // Drops the last reference to Dawn's instance (which keeps it alive).
    this.started = { ...this.started, gpu: undefined }
  }

  // ------------------------------------------------------------------ for kernels

  /** The GpuData behind a TensorInfo, checked to belong to this backend and be alive. */
  data(dataId: DataId, what: string): GpuData {
    const d = dataId as GpuData
    if (!(d instanceof GpuData) || d.owner !== this) {
      throw new BackendError(`${this.name}: ${what} is not stored on this backend (move it with toBackend())`)
    }
    if (d.released) throw new BackendError(`${this.name}: ${what} was already released`)
    return d
  }

  /** New tensor storage for `n` elements of `dtype` (uninitialised unless cleared by a launch). */
  allocData(n: number, dtype: DType): GpuData {
    if (!supportsGpuDType(dtype)) {
      throw new BackendError(`${this.name}: dtype ${dtype} is not supported (float64 has no WGSL type)`)
    }
    const bytes = bufferBytes(dtype, n)
    this.assertBindable(bytes, `a tensor of ${n} ${dtype} elements`)
    const d = new GpuData(this, this.pool.acquire(bytes), bytes, n, dtype)
    this.liveBuffers++
    this.liveBytes += n * elementBytes(dtype)
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes
    return d
  }

  /** Output TensorInfo of a kernel. */
  output(shape: Shape, dtype: DType): TensorInfo & { dataId: GpuData } {
    return { dataId: this.allocData(sizeOf(shape), dtype), shape: [...shape], dtype }
  }

  /** Records a byte copy between buffers (offsets and size multiples of 4). */
  copy(src: GpuBinding, srcOffset: number, dst: GpuBinding, dstOffset: number, bytes: number): void {
    if (bytes > 0)
      this.commandEncoder().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes)
  }

  /** A scratch buffer for one kernel; give it back with releaseTemp once its launches are recorded. */
  temp(bytes: number): GpuBinding {
    const b = Math.max(4, Math.ceil(bytes / 4) * 4)
    this.assertBindable(b, 'a kernel scratch buffer')
    return { buffer: this.pool.acquire(b), bytes: b }
  }

  /**
   * Throws before the GPU sees a binding it would reject: Dawn reports that error only later,
   * asynchronously, where it would be blamed on whatever work comes next.
   */
  private assertBindable(bytes: number, what: string): void {
    const max = this.limits.maxStorageBufferBindingSize
    if (bytes > max)
      throw new BackendError(
        `${this.name}: ${what} needs ${bytes} bytes, above this device's maxStorageBufferBindingSize (${max})`,
      )
  }

  releaseTemp(t: GpuBinding): void {
    this.pool.release(t.buffer, this.encoder !== null)
  }

  /** Records one compute dispatch (and submits the batch when it is full). */
  launch(l: Launch): void {
    this.assertUsable(l.label ?? 'launch')
    const storage = l.inputs.length + l.outputs.length
    if (storage > this.limits.maxStorageBuffersPerShaderStage) {
      throw new BackendError(
        `${this.name}: '${l.label ?? l.key.slice(0, 40)}' binds ${storage} storage buffers; this device allows ${this.limits.maxStorageBuffersPerShaderStage} per shader stage`,
      )
    }
    const hasUniform = l.uniforms !== undefined
    const compiled: CompiledPipeline = this.pipelines.get(
      l.key,
      l.label ?? l.key.slice(0, 60),
      l.wgsl,
      l.entryPoint ?? 'main',
      l.inputs.length,
      l.outputs.length,
      hasUniform,
      l.constants,
    )
    const isolate = l.untrusted === true && compiled.uses === 0
    compiled.uses++
    if (isolate) this.flush()
    const uniformBytes = hasUniform ? l.uniforms!.byteLength : 0
    if (hasUniform && !this.arena.fits(uniformBytes)) this.flush()
    const entries: GPUBindGroupEntry[] = []
    const bound = [...l.inputs, ...l.outputs]
    for (let i = 0; i < bound.length; i++) {
      entries.push({ binding: i, resource: { buffer: bound[i].buffer, size: bound[i].bytes } })
    }
    if (hasUniform) {
      const u = l.uniforms!
      const slot = this.arena.take(new Uint8Array(u.buffer, u.byteOffset, u.byteLength))
      entries.push({
        binding: l.inputs.length + l.outputs.length,
        resource: { buffer: this.arena.buffer, offset: slot.offset, size: slot.size },
      })
    }
    const bindGroup = this.device.createBindGroup({ layout: compiled.layout, entries })
    const enc = this.commandEncoder()
    l.outputs.forEach((b, i) => {
      const z = l.zero === true || (Array.isArray(l.zero) && l.zero[i])
      if (z) enc.clearBuffer(b.buffer, 0, b.bytes)
    })
    if (l.grid[0] > 0 && l.grid[1] > 0 && l.grid[2] > 0) {
      const pass = enc.beginComputePass()
      pass.setPipeline(compiled.pipeline)
      pass.setBindGroup(0, bindGroup)
      pass.dispatchWorkgroups(l.grid[0], l.grid[1], l.grid[2])
      pass.end()
    }
    this.dispatches++
    this.batchLabels.push(compiled.label)
    if (isolate || this.batchLabels.length >= this.dispatchesPerSubmit) this.flush()
  }

  /**
   * The binding kernels use to report an invalid argument they can only see on the GPU (an
   * index out of range): they atomicMax `code` into word 0; the next read throws `message`.
   */
  flagBinding(message: string): { binding: GpuBinding; code: number } {
    let code = this.flagMessages.indexOf(message)
    if (code < 0) {
      code = this.flagMessages.length
      this.flagMessages.push(message)
    }
    this.flagsMaybeSet = true
    return { binding: { buffer: this.flags, bytes: 16 }, code }
  }

  /** A read-only table computed on the host once per key and kept (e.g. rotary angles). */
  constantBuffer(key: string, make: () => Float32Array | Uint32Array): GpuBinding {
    let c = this.constants.get(key)
    if (!c) {
      const data = make()
      const bytes = Math.max(16, Math.ceil(data.byteLength / 4) * 4)
      const buffer = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        label: `attnkit constant ${key}`,
      })
      this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength)
      c = { buffer, bytes }
      this.constants.set(key, c)
    }
    return c
  }

  /**
   * A loop bound: the constant `n` (which GPU compilers unroll), or on lean adapters the same
   * value read from a new uniform word (which CPU compilers leave as a loop).
   */
  bound(n: number, params: { u32(v: number): number }): string {
    return this.lean ? `P(${params.u32(n)}u)` : `${n}u`
  }

  /** Workgroup grid for `n` workgroups in a line (spilling into y past the per-dimension limit). */
  grid1d(n: number): [number, number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension
    if (n <= max) return [Math.max(n, 1), 1, 1]
    const y = Math.ceil(n / max)
    if (y > max) throw new BackendError(`${this.name}: ${n} workgroups exceed the device's dispatch limits`)
    return [Math.ceil(n / y), y, 1]
  }

  /** Submits everything recorded so far (and frees buffers released while recording). */
  flush(): void {
    if (this.encoder) {
      const enc = this.encoder
      const labels = this.batchLabels
      this.encoder = null
      this.batchLabels = []
      this.arena.upload()
      this.device.pushErrorScope('validation')
      this.device.queue.submit([enc.finish()])
      this.submits++
      this.pendingErrors.push(
        this.device.popErrorScope().then((err) => {
          if (err) this.errors.push(`${err.message} (in a submission running: ${summarise(labels)})`)
        }),
      )
    }
    // Nothing unsubmitted uses the released buffers now; later writes queue after their uses.
    this.pool.flushQuarantine()
  }

  /** Buffers created and not destroyed, by purpose (for leak tests). */
  gpuBufferCounts(): { tensors: number; pooled: number; readback: number; fixed: number; total: number } {
    const fixed = 2 + (this.timing ? 2 : 0) + this.constants.size
    const tensors = this.liveBuffers
    const pooled = this.pool.pooledBuffers + this.pool.quarantined
    const readback = this.readPool.created
    return { tensors, pooled, readback, fixed, total: this.pool.created + readback + fixed }
  }

  /** Destroys the pooled buffers now (the pool refills on demand). */
  trimPool(): void {
    this.flush()
    this.pool.trim(0)
    this.readPool.trim(0)
  }

  uniformSlotsTaken(): number {
    return this.arena.slotsTaken
  }

  /**
   * Enables subgroup reductions when the device has subgroups of one fixed size laid out
   * contiguously (lane = local index mod size), which the kernels' reductions rely on.
   */
  async probeSubgroups(): Promise<void> {
    if (!this.features.has('subgroups')) return
    const { subgroupMinSize: lo, subgroupMaxSize: hi } = this.started
    if (!(lo > 0 && lo === hi)) {
      this.subgroupNote = `subgroup size varies (${lo}..${hi}); reductions use workgroup memory`
      return
    }
    const out = this.device.createBuffer({
      size: 256 * 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    })
    const read = this.device.createBuffer({
      size: 256 * 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    })
    try {
      this.device.pushErrorScope('validation')
      const pipeline = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module: this.device.createShaderModule({ code: SUBGROUP_PROBE }), entryPoint: 'main' },
      })
      const enc = this.device.createCommandEncoder()
      const pass = enc.beginComputePass()
      pass.setPipeline(pipeline)
      pass.setBindGroup(
        0,
        this.device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [{ binding: 0, resource: { buffer: out } }],
        }),
      )
      pass.dispatchWorkgroups(1)
      pass.end()
      enc.copyBufferToBuffer(out, 0, read, 0, 256 * 16)
      this.device.queue.submit([enc.finish()])
      const err = await this.device.popErrorScope()
      if (err) {
        this.subgroupNote = `subgroup probe failed (${err.message}); reductions use workgroup memory`
        return
      }
      await read.mapAsync(GPUMapMode.READ)
      const v = new Uint32Array(read.getMappedRange().slice(0))
      read.unmap()
      let ok = true
      for (let lid = 0; lid < 256; lid++) {
        const [sid, size, first, total] = [v[lid * 4], v[lid * 4 + 1], v[lid * 4 + 2], v[lid * 4 + 3]]
        if (size !== lo || sid !== lid % lo || first !== lid - (lid % lo) || total !== lo) ok = false
      }
      this.subgroupSize = ok ? lo : 0
      this.subgroupNote = ok
        ? `subgroup ops in reductions (size ${lo})`
        : 'subgroup lanes are not contiguous; reductions use workgroup memory'
    } finally {
      out.destroy()
      read.destroy()
    }
  }

  // ------------------------------------------------------------------ internals

  /** Submits pending work; when a checking kernel ran, reads the flags and throws their message. */
  private async checkFlags(): Promise<void> {
    if (!this.flagsMaybeSet) {
      this.flush()
      return
    }
    this.flagsMaybeSet = false
    const staging = this.readPool.acquire(16)
    this.commandEncoder().copyBufferToBuffer(this.flags, 0, staging, 0, 16)
    this.flush()
    let code = 0
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, 16)
      code = new Uint32Array(staging.getMappedRange(0, 16).slice(0))[0]
      staging.unmap()
    } finally {
      this.readPool.release(staging)
      this.readPool.flushQuarantine()
    }
    if (code !== 0) {
      this.device.queue.writeBuffer(this.flags, 0, new Uint32Array(4))
      throw new BackendError(
        `${this.flagMessages[code] ?? `invalid argument (code ${code})`} (found by a kernel on the GPU; its outputs are not valid)`,
      )
    }
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'attnkit batch' })
    return this.encoder
  }

  private timingRegion(): TimingRegion {
    this.timing ??= {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 }),
      resolve: this.device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
      readback: this.device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    }
    return this.timing
  }

  private async raiseErrors(): Promise<void> {
    while (this.pipelines.pending.length) await this.pipelines.pending.shift()
    while (this.pendingErrors.length) await this.pendingErrors.shift()
    if (this.errors.length) {
      const msg = this.errors.join('\n')
      this.errors = []
      throw new BackendError(`${this.name}: the GPU reported: ${msg}`)
    }
    if (this.lost) throw new BackendError(`${this.name}: the GPU device was lost (${this.lost})`)
  }

  private assertUsable(what: string): void {
    if (this.disposed) throw new BackendError(`${this.name}.${what}: the backend was disposed`)
    if (this.lost) throw new BackendError(`${this.name}.${what}: the GPU device was lost (${this.lost})`)
  }
}

/** lavapipe (llvmpipe), SwiftShader and other fallback adapters run shaders on the CPU. */
export function isCpuAdapter(info: GPUAdapterInfo | undefined): boolean {
  if (!info) return false
  const i = info as GPUAdapterInfo & { isFallbackAdapter?: boolean }
  const words = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase()
  return i.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|software/.test(words)
}

function summarise(labels: string[]): string {
  const counts = new Map<string, number>()
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1)
  return [...counts].map(([l, n]) => (n > 1 ? `${l} x${n}` : l)).join(', ')
}
