import type { Backend, BackendProvider, DataId, TensorInfo } from './backend.js'
import { cpuProvider } from './cpu/index.js'
import { byteSize, type DType, isFloat, type TypedArray } from './dtype.js'
import { ArgumentError, AttnkitError, BackendError, fmtShape } from './errors.js'
import {
  getGradient,
  getKernel,
  isNonDifferentiable,
  type KernelInputs,
  KernelNotFoundError,
} from './registry.js'
import { type Shape, sizeOf } from './shape.js'
import { flattenTree, Tensor, type TensorOwner } from './tensor.js'

interface DataEntry {
  backend: Backend
  refCount: number
  bytes: number
}

interface BackendAccounting {
  liveTensors: number
  liveBuffers: number
  liveBytes: number
  peakBytes: number
}

/** A tensor kept alive by the tape for the backward pass (it holds a reference on the data). */
export interface SavedTensor {
  readonly dataId: DataId
  readonly shape: Shape
  readonly dtype: DType
  readonly backend: Backend
}

export type KernelInputTensors = Readonly<Record<string, Tensor | readonly Tensor[] | undefined>>

export interface TapeNode {
  kernelName: string
  attrs: unknown
  inputIds: Record<string, number | number[] | undefined>
  inputMeta: Record<string, { shape: Shape; dtype: DType } | { shape: Shape; dtype: DType }[]>
  saved: Record<string, SavedTensor | SavedTensor[]>
  outputIds: number[]
  outputMeta: { shape: Shape; dtype: DType; backend: Backend }[]
  savedOutputs: SavedTensor[]
}

export class Tape {
  readonly watched = new Set<number>()
  readonly nodes: TapeNode[] = []
}

export interface BackendStatus {
  name: string
  priority: number
  status: 'active' | 'ready' | 'failed' | 'not-tried'
  reason?: string
}

export interface MemoryReport extends BackendAccounting {
  backend: string
  /** Bytes the backend keeps in its pool for reuse (not counted in liveBytes). */
  pooledBytes: number
}

/**
 * Owns the backends, the data reference counts, memory accounting, scopes (tidy) and the
 * autograd tape. There is one engine per process (per realm): `ENGINE`.
 */
export class Engine implements TensorOwner {
  private readonly providers = new Map<string, BackendProvider>()
  private readonly instances = new Map<string, Backend>()
  private readonly failures = new Map<string, string>()
  private current: Backend | undefined
  private readonly dataEntries = new WeakMap<DataId, DataEntry>()
  private readonly accounting = new Map<string, BackendAccounting>()
  private readonly scopes: Set<Tensor>[] = []
  private readonly tapes: (Tape | null)[] = []

  // ---------------------------------------------------------------- backends

  registerBackend(provider: BackendProvider): void {
    this.providers.set(provider.name, provider)
  }

  /** Makes `name` (or a backend instance) the default for new tensors; starts it if needed. */
  async setBackend(nameOrBackend: string | Backend): Promise<Backend> {
    const backend =
      typeof nameOrBackend === 'string' ? await this.startBackend(nameOrBackend) : this.adopt(nameOrBackend)
    this.current = backend
    return backend
  }

  /** The active backend; when none was chosen, the CPU reference (synchronously). */
  getBackend(): Backend {
    this.current ??= this.backendSync('cpu')
    return this.current
  }

  /** A started backend by name (starting it when needed). */
  async backend(name: string): Promise<Backend> {
    return this.startBackend(name)
  }

  /** A started backend by name, synchronously; throws when it has not been started. */
  backendSync(name: string): Backend {
    const b = this.instances.get(name)
    if (b) return b
    const cpu = this.providers.get('cpu')
    if (name === 'cpu' && cpu) {
      const created = cpu.create()
      if (created instanceof Promise) throw new BackendError('The CPU backend must start synchronously')
      return this.adopt(created)
    }
    throw new BackendError(`Backend '${name}' has not been started: call await setBackend('${name}') first`)
  }

  /**
   * Picks the best available backend by priority (cuda > webgpu > cpu) unless one is active or
   * ATTNKIT_BACKEND names one. Backends that fail to start are remembered with their reason.
   */
  async ready(): Promise<Backend> {
    if (this.current) return this.current
    const forced = typeof process !== 'undefined' ? process.env?.ATTNKIT_BACKEND : undefined
    if (forced) return this.setBackend(forced)
    for (const p of [...this.providers.values()].sort((a, b) => b.priority - a.priority)) {
      try {
        return await this.setBackend(p.name)
      } catch (e) {
        this.failures.set(p.name, (e as Error).message)
      }
    }
    throw new BackendError('No backend could start (is @attnkit/core loaded twice?)')
  }

  listBackends(): BackendStatus[] {
    return [...this.providers.values()]
      .sort((a, b) => b.priority - a.priority)
      .map((p) => {
        const status: BackendStatus = { name: p.name, priority: p.priority, status: 'not-tried' }
        if (this.current?.name === p.name) status.status = 'active'
        else if (this.instances.has(p.name)) status.status = 'ready'
        else if (this.failures.has(p.name)) {
          status.status = 'failed'
          status.reason = this.failures.get(p.name)
        }
        return status
      })
  }

  private async startBackend(name: string): Promise<Backend> {
    const existing = this.instances.get(name)
    if (existing) return existing
    const provider = this.providers.get(name)
    if (!provider) {
      const known = [...this.providers.keys()].join(', ')
      throw new BackendError(
        `Backend '${name}' is not registered (registered: ${known}). Import its package first, e.g. import '@attnkit/backend-${name}'`,
      )
    }
    try {
      const backend = await provider.create()
      this.failures.delete(name)
      return this.adopt(backend)
    } catch (e) {
      this.failures.set(name, (e as Error).message)
      throw e
    }
  }

  private adopt(backend: Backend): Backend {
    const existing = this.instances.get(backend.name)
    if (existing && existing !== backend) {
      throw new BackendError(`A different backend named '${backend.name}' is already started`)
    }
    this.instances.set(backend.name, backend)
    if (!this.accounting.has(backend.name)) {
      this.accounting.set(backend.name, { liveTensors: 0, liveBuffers: 0, liveBytes: 0, peakBytes: 0 })
    }
    return backend
  }

  /** Disposes a started backend (its tensors become unusable). */
  disposeBackend(name: string): void {
    const b = this.instances.get(name)
    if (!b) return
    b.dispose()
    this.instances.delete(name)
    this.accounting.delete(name)
    if (this.current === b) this.current = undefined
  }

  // ---------------------------------------------------------------- tensors & memory

  /** Wraps kernel output in a Tensor, registering (or referencing) its data. */
  makeTensor(info: TensorInfo, backend: Backend): Tensor {
    const acc = this.accountingOf(backend)
    let entry = this.dataEntries.get(info.dataId)
    if (entry) {
      entry.refCount++
    } else {
      entry = { backend, refCount: 1, bytes: sizeOf(info.shape) * byteSize(info.dtype) }
      this.dataEntries.set(info.dataId, entry)
      acc.liveBuffers++
      acc.liveBytes += entry.bytes
      if (acc.liveBytes > acc.peakBytes) acc.peakBytes = acc.liveBytes
    }
    acc.liveTensors++
    const t = new Tensor(info.dataId, [...info.shape], info.dtype, backend, this)
    this.scopes.at(-1)?.add(t)
    return t
  }

  /** Uploads host values as a new tensor on `backend` (the active one by default). */
  fromHost(values: TypedArray, shape: Shape, dtype: DType, backend = this.getBackend()): Tensor {
    if (!backend.supportsDType(dtype)) {
      throw new BackendError(`Backend '${backend.name}' does not support dtype ${dtype}`)
    }
    const dataId = backend.write(values, shape, dtype)
    return this.makeTensor({ dataId, shape, dtype }, backend)
  }

  disposeTensor(t: Tensor): void {
    const acc = this.accounting.get(t.backend.name)
    if (acc) acc.liveTensors--
    for (const s of this.scopes) s.delete(t)
    this.releaseData(t.dataId)
  }

  retainData(dataId: DataId): void {
    const entry = this.dataEntries.get(dataId)
    if (!entry) throw new AttnkitError('retainData: unknown data')
    entry.refCount++
  }

  releaseData(dataId: DataId): void {
    const entry = this.dataEntries.get(dataId)
    if (!entry) return
    if (--entry.refCount > 0) return
    this.dataEntries.delete(dataId)
    const acc = this.accounting.get(entry.backend.name)
    if (acc) {
      acc.liveBuffers--
      acc.liveBytes -= entry.bytes
    }
    entry.backend.release(dataId)
  }

  private accountingOf(backend: Backend): BackendAccounting {
    let acc = this.accounting.get(backend.name)
    if (!acc) {
      this.adopt(backend)
      acc = this.accounting.get(backend.name)!
    }
    return acc
  }

  /** Live tensors, buffers and bytes of one backend (the active one by default). */
  memory(backendName?: string): MemoryReport {
    const name = backendName ?? this.getBackend().name
    const acc = this.accounting.get(name) ?? { liveTensors: 0, liveBuffers: 0, liveBytes: 0, peakBytes: 0 }
    const backend = this.instances.get(name)
    return { backend: name, ...acc, pooledBytes: backend ? backend.memory().pooledBytes : 0 }
  }

  resetPeakMemory(backendName?: string): void {
    const name = backendName ?? this.getBackend().name
    const acc = this.accounting.get(name)
    if (acc) acc.peakBytes = acc.liveBytes
    this.instances.get(name)?.resetPeakMemory()
  }

  // ---------------------------------------------------------------- scopes

  startScope(): void {
    this.scopes.push(new Set())
  }

  /** Ends the innermost scope, disposing its tensors except those in `keep` (which move up). */
  endScope(keep: unknown): void {
    const scope = this.scopes.pop()
    if (!scope) throw new AttnkitError('endScope without startScope')
    const kept = new Set(flattenTree(keep))
    const parent = this.scopes.at(-1)
    for (const t of scope) {
      if (kept.has(t)) parent?.add(t)
      else t.dispose()
    }
  }

  /** Exempts a tensor from every enclosing scope's cleanup. */
  keep<T extends Tensor>(t: T): T {
    for (const s of this.scopes) s.delete(t)
    return t
  }

  // ---------------------------------------------------------------- tape

  get activeTape(): Tape | null {
    return this.tapes.at(-1) ?? null
  }

  pushTape(tape: Tape | null): void {
    this.tapes.push(tape)
  }

  popTape(): void {
    this.tapes.pop()
  }

  private save(t: Tensor): SavedTensor {
    this.retainData(t.dataId)
    return { dataId: t.dataId, shape: t.shape, dtype: t.dtype, backend: t.backend }
  }

  /** Makes a Tensor from a saved reference (adds a reference; dispose it as usual). */
  revive(s: SavedTensor): Tensor {
    return this.makeTensor(s, s.backend)
  }

  releaseSaved(s: SavedTensor): void {
    this.releaseData(s.dataId)
  }

  // ---------------------------------------------------------------- kernels

  /**
   * Runs a registered kernel on the backend that owns the inputs (the active backend when there
   * are none) and records it on the active tape when any input needs a gradient.
   */
  runKernel(kernelName: string, inputs: KernelInputTensors, attrs: unknown = {}, on?: Backend): Tensor[] {
    const backend = on ?? this.backendOfInputs(kernelName, inputs)
    const config = getKernel(kernelName, backend.name) ?? getKernel(kernelName, '*')
    if (!config) {
      throw new KernelNotFoundError(`Kernel '${kernelName}' is not registered for backend '${backend.name}'`)
    }
    const infos: Record<string, TensorInfo | readonly TensorInfo[] | undefined> = {}
    for (const [name, v] of Object.entries(inputs)) {
      if (Array.isArray(v)) for (const t of v as Tensor[]) t.assertAlive(`${kernelName} (input '${name}')`)
      else if (v) (v as Tensor).assertAlive(`${kernelName} (input '${name}')`)
      infos[name] = v
    }
    const result = config.kernelFunc({ inputs: infos as KernelInputs, attrs, backend })
    const outputs = (Array.isArray(result) ? result : [result]).map((info) => this.makeTensor(info, backend))
    const tape = this.activeTape
    if (tape) this.record(tape, kernelName, inputs, attrs, outputs)
    return outputs
  }

  /** Runs an input-less kernel (fill) on a given backend; returns its single output. */
  runKernelOn(backend: Backend, kernelName: string, attrs: unknown): Tensor {
    return this.runKernel(kernelName, {}, attrs, this.adopt(backend))[0]
  }

  private backendOfInputs(kernelName: string, inputs: KernelInputTensors): Backend {
    let found: Backend | undefined
    let foundArg = ''
    for (const [name, v] of Object.entries(inputs)) {
      for (const t of Array.isArray(v) ? (v as Tensor[]) : v ? [v as Tensor] : []) {
        if (!found) {
          found = t.backend
          foundArg = name
        } else if (t.backend !== found) {
          throw new ArgumentError(
            `${kernelName}: argument '${name}' is on backend '${t.backend.name}' but '${foundArg}' is on '${found.name}'; move one with toBackend()`,
          )
        }
      }
    }
    return found ?? this.getBackend()
  }

  private record(
    tape: Tape,
    kernelName: string,
    inputs: KernelInputTensors,
    attrs: unknown,
    outputs: Tensor[],
  ): void {
    const needs = Object.values(inputs).some((v) =>
      Array.isArray(v)
        ? (v as Tensor[]).some((t) => tape.watched.has(t.id))
        : v && tape.watched.has((v as Tensor).id),
    )
    if (!needs || isNonDifferentiable(kernelName)) return
    const grad = getGradient(kernelName)
    if (!grad) {
      throw new AttnkitError(
        `Kernel '${kernelName}' has no gradient registered, but one of its inputs requires a gradient`,
      )
    }
    const node: TapeNode = {
      kernelName,
      attrs,
      inputIds: {},
      inputMeta: {},
      saved: {},
      outputIds: outputs.map((o) => o.id),
      outputMeta: outputs.map((o) => ({ shape: o.shape, dtype: o.dtype, backend: o.backend })),
      savedOutputs: grad.saveOutputs ? outputs.map((o) => this.save(o)) : [],
    }
    const saveSet = new Set(grad.saveInputs ?? [])
    for (const [name, v] of Object.entries(inputs)) {
      if (!v) continue
      if (Array.isArray(v)) {
        const list = v as Tensor[]
        node.inputIds[name] = list.map((t) => t.id)
        node.inputMeta[name] = list.map((t) => ({ shape: t.shape, dtype: t.dtype }))
        if (saveSet.has(name)) node.saved[name] = list.map((t) => this.save(t))
      } else {
        const t = v as Tensor
        node.inputIds[name] = t.id
        node.inputMeta[name] = { shape: t.shape, dtype: t.dtype }
        if (saveSet.has(name)) node.saved[name] = this.save(t)
      }
    }
    tape.nodes.push(node)
    for (const o of outputs) if (isFloat(o.dtype)) tape.watched.add(o.id)
  }
}

/** The process-wide engine, with the CPU reference backend always registered. */
export const ENGINE: Engine = new Engine()
ENGINE.registerBackend(cpuProvider)

export function describeTensor(t: { shape: Shape; dtype: DType }): string {
  return `${fmtShape(t.shape)} ${t.dtype}`
}
