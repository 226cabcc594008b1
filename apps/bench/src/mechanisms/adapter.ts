import type { Backend, Cost, DType, Rng, Tensor, TensorTree } from '@attnkit/core'
import type { Dims, Mode } from '../schema.js'

/** A named configuration of a mechanism (e.g. MoSA with sparsity 8). */
export interface Variant {
  name: string
  description: string
}

/**
 * What set-up gets: where to put tensors, in which dtype, and seeded inputs. The correctness
 * check calls set-up twice with the same seed, once on the backend under test and once on the
 * CPU in float64, so every random value must come from the context's methods. The context's
 * backend is the active one while set-up and run() execute.
 */
export interface SetupContext {
  backend: Backend
  /** The dtype to compute in (float64 for the reference run). */
  dtype: DType
  /** The cell's dtype: every random input is rounded to it, in both runs. */
  inputDtype: DType
  /** Seeded stream; draw from it in the same order in every run. */
  rng: Rng
  /** Seeded normal values, rounded to inputDtype, stored as dtype on backend. */
  normal(shape: number[], std?: number): Tensor
  uniform(shape: number[], low: number, high: number): Tensor
  /** Seeded int32 values in [low, high) (token ids), the same in every run. */
  randint(shape: number[], low: number, high: number): Tensor
  /**
   * Runs a mechanism's own initialiser with the CPU as the active backend (so it draws the same
   * values in every run), then places the result (see `place`). The context's backend is active
   * again afterwards.
   */
  initOnCpu<T extends TensorTree>(make: () => T): Promise<T>
  /**
   * Moves a tree of float tensors created on the CPU (by a mechanism's own init) to the
   * context's backend and dtype (rounding through inputDtype), disposing the originals.
   */
  place<T extends TensorTree>(tree: T): T
}

/** A set-up cell: `run` launches one timed unit of work and returns its outputs. */
export interface Workload {
  /**
   * One forward pass, forward+backward pass or decode step. Returns the outputs the
   * correctness check compares, by name; the caller disposes them.
   */
  run(): Record<string, Tensor>
  /** Frees what set-up allocated. */
  dispose(): void
}

export interface MechanismAdapter {
  name: string
  description: string
  variants: Variant[]
  modes: readonly Mode[]
  /** Dims the adapter needs, e.g. ['batch', 'heads', 'seqLen', 'headDim']. */
  requiredDims: readonly string[]
  /** Short label of a cell's dims, e.g. "B1 H8 T512 D64". */
  label(dims: Dims): string
  /** The dims the correctness check runs at: the cell's, shrunk to what the CPU can do quickly. */
  checkDims(dims: Dims, mode: Mode): Dims
  /** Cost-model FLOPs and bytes of one timed unit (a forward pass, a decode step...). */
  cost(dims: Dims, variant: string, mode: Mode, dtype: DType): Cost
  /**
   * Cost-model FLOPs and bytes of set-up beyond drawing inputs (e.g. a prefill that fills a decode
   * cache); the CPU's size limits apply to it too. Zero when absent.
   */
  setupCost?(dims: Dims, variant: string, mode: Mode, dtype: DType): Cost
  /** How set-up prepares this cell, when a reader needs to know (goes into the cell's note). */
  note?(dims: Dims, variant: string, mode: Mode): string | undefined
  /** Decode-cache bytes at `context` tokens; null when the mechanism keeps no cache. */
  kvCacheBytes(dims: Dims, variant: string, dtype: DType, context: number): number | null
  setup(ctx: SetupContext, dims: Dims, variant: string, mode: Mode): Workload | Promise<Workload>
  /**
   * The dtype the correctness check computes in for a cell of `dtype` (default: the same). A
   * mechanism with discrete data-dependent choices returns float32 for 16-bit dtypes: there a
   * 1-ulp difference flips a routing decision and the comparison would measure the flip.
   */
  checkDType?(dtype: DType): DType
  /** Correctness tolerance factor over the dtype's base tolerance (long chains of ops drift more). */
  toleranceFactor?(mode: Mode): number
  /**
   * How many times slower than the cost model's rates the CPU reference runs this mode, where it
   * was measured to differ (default 1): the CPU's size limit then skips such cells up front
   * rather than `--cpu-cell-timeout` stopping them after the fact.
   */
  cpuSlowdown?(mode: Mode): number
}

export function requireDims(adapter: MechanismAdapter, dims: Dims): void {
  for (const d of adapter.requiredDims) {
    const v = dims[d]
    if (!Number.isInteger(v) || v < 1)
      throw new Error(
        `${adapter.name}: dimension '${d}' must be a positive integer, got ${v === undefined ? 'nothing' : v} (dims: ${JSON.stringify(dims)})`,
      )
  }
}

export function requireVariant(adapter: MechanismAdapter, variant: string): void {
  if (!adapter.variants.some((v) => v.name === variant))
    throw new Error(
      `${adapter.name}: unknown variant '${variant}' (expected one of ${adapter.variants.map((v) => v.name).join(', ')})`,
    )
}
