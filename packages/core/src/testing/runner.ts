import { valueAndGrad } from '../autograd.js'
import type { Backend } from '../backend.js'
import { type DType, isFloat, type TypedArray, toHostArray } from '../dtype.js'
import { ENGINE } from '../engine.js'
import * as o from '../ops/index.js'
import { Rng } from '../rng.js'
import { dispose, tidy } from '../scope.js'
import { sizeOf } from '../shape.js'
import type { Tensor } from '../tensor.js'
import { allCases, type InputSpec, type OpCase } from './cases.js'
import { baseTolerance, compareArrays, compareExact } from './compare.js'

export interface CheckResult {
  case: string
  dtype: DType
  check: string
  ok: boolean
  skipped?: string
  error: number
  tolerance: number
  detail?: string
}

function hashString(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0
  return h
}

/** Host values for one input: identical for target and reference runs (same seed). */
export function makeInputValues(spec: InputSpec, rng: Rng): Float64Array {
  const n = sizeOf(spec.shape)
  const dist = spec.dist ?? (spec.dtype === 'int32' ? 'int' : spec.dtype === 'bool' ? 'bool' : 'normal')
  switch (dist) {
    case 'normal':
      return rng.normalArray(n)
    case 'wide':
      return rng.normalArray(n).map((z) => 3 * z)
    case 'positive':
      return rng.uniformArray(n).map((u) => 0.5 + 1.5 * u)
    case 'prob':
      return rng.uniformArray(n).map((u) => 0.05 + 0.9 * u)
    case 'logdecay':
      return rng.uniformArray(n).map((u) => -0.5 + 0.49 * u)
    case 'smallint':
      return rng.uniformArray(n).map((u) => Math.floor(u * 5) - 2)
    case 'int': {
      const lo = spec.low ?? 0
      const hi = spec.high ?? 10
      return rng.uniformArray(n).map((u) => lo + Math.floor(u * (hi - lo)))
    }
    case 'bool':
      return rng.uniformArray(n).map((u) => (u < 0.5 ? 1 : 0))
    case 'unit': {
      const z = rng.normalArray(n)
      const d = spec.shape[spec.shape.length - 1]
      for (let r = 0; r < n / d; r++) {
        let s = 0
        for (let j = 0; j < d; j++) s += z[r * d + j] ** 2
        const inv = 1 / Math.sqrt(s)
        for (let j = 0; j < d; j++) z[r * d + j] *= inv
      }
      return z
    }
  }
}

function inputDType(spec: InputSpec, caseDType: DType): DType {
  if (spec.dtype) return spec.dtype
  return caseDType
}

/** Uploads the case's inputs to a backend; floats in `floatDType` (float64 for the reference). */
function upload(
  c: OpCase,
  values: Record<string, Float64Array>,
  caseDType: DType,
  backend: Backend,
  reference: boolean,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {}
  for (const [name, spec] of Object.entries(c.inputs)) {
    let dtype = inputDType(spec, caseDType)
    if (reference && isFloat(dtype)) dtype = 'float64'
    // Values are rounded to the dtype under test first, so both sides see the same numbers.
    const rounded = isFloat(inputDType(spec, caseDType))
      ? toHostArray(inputDType(spec, caseDType), values[name])
      : values[name]
    out[name] = ENGINE.fromHost(toHostArray(dtype, rounded), spec.shape, dtype, backend)
  }
  return out
}

async function readAll(ts: Tensor[]): Promise<TypedArray[]> {
  const out: TypedArray[] = []
  for (const t of ts) out.push(await t.data())
  return out
}

function asList(r: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(r) ? r : [r]
}

/** Runs one case at one dtype on `target` and checks it against `reference` in float64. */
export async function runCase(
  c: OpCase,
  dtype: DType,
  target: Backend,
  reference: Backend,
  seed = 1234,
): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  const tol = baseTolerance(dtype) * (c.tol ?? 1)
  const base = { case: c.name, dtype }
  if (!target.supportsDType(dtype)) {
    return [
      {
        ...base,
        check: 'forward',
        ok: true,
        skipped: `${target.name} does not support ${dtype}`,
        error: 0,
        tolerance: tol,
      },
    ]
  }
  const rng = new Rng(seed + hashString(`${c.name}/${dtype}`))
  const values: Record<string, Float64Array> = {}
  for (const [name, spec] of Object.entries(c.inputs)) values[name] = makeInputValues(spec, rng)
  const before = ENGINE.memory(target.name).liveTensors
  const tIn = upload(c, values, dtype, target, false)
  const rIn = upload(c, values, dtype, reference, true)
  try {
    // Forward.
    let tOut: Tensor[] = []
    let rOut: Tensor[] = []
    try {
      tOut = tidy(() => asList(c.fn(tIn)))
      rOut = tidy(() => asList(c.fn(rIn)))
      const [ta, ra] = [await readAll(tOut), await readAll(rOut)]
      ta.forEach((a, i) => {
        const exact = !isFloat(tOut[i].dtype)
        const cmp = exact ? compareExact(a, ra[i]) : compareArrays(a, ra[i])
        const shapeOk = tOut[i].shape.join() === rOut[i].shape.join()
        const ok = shapeOk && !cmp.problem && cmp.error <= (exact ? 0 : tol)
        results.push({
          ...base,
          check: `forward[${i}]`,
          ok,
          error: cmp.error,
          tolerance: exact ? 0 : tol,
          detail: !shapeOk
            ? `shape [${tOut[i].shape}] vs reference [${rOut[i].shape}]`
            : (cmp.problem ??
              (cmp.worst
                ? `worst at ${cmp.worst.index}: ${cmp.worst.actual} vs ${cmp.worst.expected}`
                : undefined)),
        })
      })
    } catch (e) {
      results.push({
        ...base,
        check: 'forward',
        ok: false,
        error: Number.POSITIVE_INFINITY,
        tolerance: tol,
        detail: (e as Error).message,
      })
      return results
    } finally {
      dispose(tOut)
      dispose(rOut)
    }

    // Gradients of sum(out0 * w) with respect to the float inputs.
    const gradNames = Object.entries(c.inputs)
      .filter(([, s]) => isFloat(inputDType(s, dtype)) && s.grad !== false)
      .map(([n]) => n)
    if ((c.grad ?? true) && gradNames.length > 0 && isFloat(dtype)) {
      try {
        const gradsOn = async (
          inputs: Record<string, Tensor>,
          wValues: TypedArray | undefined,
          backend: Backend,
        ) => {
          const params = Object.fromEntries(gradNames.map((n) => [n, inputs[n]]))
          const probe = tidy(() => asList(c.fn(inputs))[0])
          // The weights are rounded to the target's output dtype, then given to each side in its own.
          const wv = wValues ?? toHostArray(probe.dtype, new Rng(seed + 7).normalArray(probe.size))
          const w = ENGINE.fromHost(toHostArray(probe.dtype, wv), probe.shape, probe.dtype, backend)
          probe.dispose()
          const f = valueAndGrad((p: Record<string, Tensor>) =>
            o.sum(o.mul(asList(c.fn({ ...inputs, ...p }))[0], w)),
          )
          const { value, grads } = f(params)
          const arrays: Record<string, TypedArray> = {}
          for (const n of gradNames) arrays[n] = await grads[n].data()
          dispose([value, grads, w])
          return { arrays, wv }
        }
        const t = await gradsOn(tIn, undefined, target)
        const r = await gradsOn(rIn, t.wv, reference)
        for (const n of gradNames) {
          const cmp = compareArrays(t.arrays[n], r.arrays[n])
          const gtol = tol * 3
          results.push({
            ...base,
            check: `grad[${n}]`,
            ok: !cmp.problem && cmp.error <= gtol,
            error: cmp.error,
            tolerance: gtol,
            detail:
              cmp.problem ??
              (cmp.worst
                ? `worst at ${cmp.worst.index}: ${cmp.worst.actual} vs ${cmp.worst.expected}`
                : undefined),
          })
        }
      } catch (e) {
        results.push({
          ...base,
          check: 'grad',
          ok: false,
          error: Number.POSITIVE_INFINITY,
          tolerance: tol,
          detail: (e as Error).message,
        })
      }
    }
  } finally {
    dispose(tIn)
    dispose(rIn)
  }
  const leaked = ENGINE.memory(target.name).liveTensors - before
  if (leaked !== 0) {
    results.push({
      ...base,
      check: 'no-leak',
      ok: false,
      error: leaked,
      tolerance: 0,
      detail: `${leaked} tensors left alive on ${target.name}`,
    })
  }
  return results
}

export interface ConformanceOptions {
  /** Dtypes to run (default: those each case lists that the backend supports). */
  dtypes?: DType[]
  /** Only cases whose name starts with one of these. */
  only?: string[]
  seed?: number
  /** Called after each case (progress). */
  onResult?: (r: CheckResult[]) => void
}

export interface ConformanceSummary {
  backend: string
  device: string
  passed: number
  failed: number
  skipped: number
  results: CheckResult[]
}

/** Runs the whole suite on a started backend against the CPU reference. */
export async function runConformance(
  target: Backend,
  opts: ConformanceOptions = {},
): Promise<ConformanceSummary> {
  const reference = ENGINE.backendSync('cpu')
  const results: CheckResult[] = []
  for (const c of selectCases(opts)) {
    for (const dtype of c.dtypes) {
      if (opts.dtypes && !opts.dtypes.includes(dtype)) continue
      const r = await runCase(c, dtype, target, reference, opts.seed)
      results.push(...r)
      opts.onResult?.(r)
    }
  }
  return {
    backend: target.name,
    device: target.info().device,
    passed: results.filter((r) => r.ok && !r.skipped).length,
    failed: results.filter((r) => !r.ok).length,
    skipped: results.filter((r) => r.skipped).length,
    results,
  }
}

export function selectCases(opts: Pick<ConformanceOptions, 'only'> = {}): OpCase[] {
  return allCases().filter((c) => !opts.only || opts.only.some((p) => c.name.startsWith(p)))
}

/** A short text summary: counts, then each failure with its error and detail. */
export function formatSummary(s: ConformanceSummary): string {
  const lines = [
    `conformance on ${s.backend} (${s.device}): ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`,
  ]
  const worst = new Map<string, number>()
  for (const r of s.results) {
    if (r.skipped || !Number.isFinite(r.error) || r.tolerance === 0) continue
    const k = r.dtype
    worst.set(k, Math.max(worst.get(k) ?? 0, r.error / r.tolerance))
  }
  for (const [dtype, ratio] of worst)
    lines.push(`  ${dtype}: worst error at ${(ratio * 100).toFixed(1)}% of tolerance`)
  for (const r of s.results.filter((x) => !x.ok)) {
    lines.push(
      `  FAIL ${r.case} ${r.dtype} ${r.check}: error ${r.error.toExponential(2)} > ${r.tolerance.toExponential(1)}${r.detail ? ` (${r.detail})` : ''}`,
    )
  }
  return lines.join('\n')
}
