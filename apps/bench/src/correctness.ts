import { type Backend, type DType, setBackend, backend as startBackend, type Tensor } from '@attnkit/core'
import { baseTolerance, compareArrays } from '@attnkit/core/testing'
import type { MechanismAdapter } from './mechanisms/adapter.js'
import { makeContext } from './mechanisms/context.js'
import { ReferenceStore } from './reference-store.js'
import type { Correctness, Dims, Mode } from './schema.js'

/** Default factor over core's per-dtype base tolerance (the conformance suite's, for single ops). */
export const DEFAULT_TOLERANCE_FACTOR = 4

export function tolerance(adapter: MechanismAdapter, mode: Mode, dtype: DType): number {
  return baseTolerance(dtype) * (adapter.toleranceFactor?.(mode) ?? DEFAULT_TOLERANCE_FACTOR)
}

/** Runs a workload once at `dims` and reads every output back as float64. */
async function outputsOf(
  adapter: MechanismAdapter,
  variant: string,
  mode: Mode,
  dims: Dims,
  backend: Backend,
  dtype: DType,
  inputDtype: DType,
  seed: number,
): Promise<Map<string, Float64Array>> {
  await setBackend(backend)
  const ctx = makeContext(backend, dtype, inputDtype, seed)
  const workload = await adapter.setup(ctx, dims, variant, mode)
  let outs: Record<string, Tensor> = {}
  try {
    outs = workload.run()
    const values = new Map<string, Float64Array>()
    for (const [name, t] of Object.entries(outs)) values.set(name, Float64Array.from(await t.data()))
    return values
  } finally {
    for (const t of Object.values(outs)) t.dispose()
    workload.dispose()
  }
}

/**
 * CPU float64 reference outputs, cached by everything that determines them, so one reference
 * serves every backend (and the CPU cell itself, whose dtype run is compared against it). With a
 * directory, the cache is shared by the processes of one run (each backend's worker, and the
 * helpers that compute references ahead of the GPU workers): see reference-store.ts.
 */
export class ReferenceCache {
  private readonly cache = new Map<string, Promise<Map<string, Float64Array>>>()
  private readonly store: ReferenceStore | null

  constructor(dir?: string) {
    this.store = dir ? new ReferenceStore(dir) : null
  }

  get(request: ReferenceRequest): Promise<Map<string, Float64Array>> {
    const { key, compute } = reference(request)
    let hit = this.cache.get(key)
    if (!hit) {
      hit = this.store ? this.store.getOrCompute(key, compute) : compute()
      this.cache.set(key, hit)
    }
    return hit
  }

  /**
   * Computes a reference into the shared store unless it is there or another process is on it
   * (then returns false at once); for the helpers that work ahead of the GPU workers.
   */
  async prefetch(request: ReferenceRequest): Promise<boolean> {
    if (!this.store) return false
    const { key, compute } = reference(request)
    return this.store.computeIfFree(key, compute)
  }
}

/** Everything that determines a CPU reference: the workload, at the check's dims, and its inputs. */
export interface ReferenceRequest {
  adapter: MechanismAdapter
  variant: string
  mode: Mode
  /** The check's dims (adapter.checkDims of the cell's). */
  dims: Dims
  /** The cell's dtype: inputs are drawn rounded to it. */
  dtype: DType
  seed: number
}

/** A reference's cache key (everything that determines it) and how to compute it on the CPU. */
function reference({ adapter, variant, mode, dims, dtype, seed }: ReferenceRequest): {
  key: string
  compute: () => Promise<Map<string, Float64Array>>
} {
  return {
    key: JSON.stringify([adapter.name, variant, mode, dims, dtype, seed]),
    compute: () =>
      startBackend('cpu').then((cpu) => outputsOf(adapter, variant, mode, dims, cpu, 'float64', dtype, seed)),
  }
}

/** Compares the backend's outputs at the check dims against the CPU float64 reference. */
export async function checkCorrectness(
  adapter: MechanismAdapter,
  variant: string,
  mode: Mode,
  dims: Dims,
  backend: Backend,
  dtype: DType,
  seed: number,
  references: ReferenceCache,
): Promise<Correctness> {
  const checkDims = adapter.checkDims(dims, mode)
  const computeDType = adapter.checkDType?.(dtype) ?? dtype
  const expected = await references.get({ adapter, variant, mode, dims: checkDims, dtype, seed })
  const actual = await outputsOf(adapter, variant, mode, checkDims, backend, computeDType, dtype, seed)
  const tol = tolerance(adapter, mode, computeDType)
  let worst = 0
  let worstOutput: string | undefined
  let problem: string | undefined
  for (const [name, ref] of expected) {
    const got = actual.get(name)
    if (!got) {
      problem ??= `output '${name}' missing on ${backend.name}`
      worst = Number.POSITIVE_INFINITY
      continue
    }
    const c = compareArrays(got, ref)
    if (c.problem) problem ??= `${name}: ${c.problem}`
    if (c.error > worst || worstOutput === undefined) {
      worst = Math.max(worst, c.error)
      worstOutput = name
    }
  }
  const finite = Number.isFinite(worst)
  return {
    reference: 'cpu-float64',
    dims: checkDims,
    computeDType,
    maxRelError: finite ? worst : null,
    tolerance: tol,
    passed: finite && worst <= tol && problem === undefined,
    outputs: [...expected.keys()],
    ...(worstOutput ? { worstOutput } : {}),
    ...(problem ? { problem } : {}),
  }
}
