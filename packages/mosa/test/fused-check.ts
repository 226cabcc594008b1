import { dispose, memory, mul, Rng, sum, type Tensor, tensor, valueAndGrad } from '@attnkit/core'
import { expect } from 'vitest'
import { forwardWithRouting, type MosaConfig, type MosaParams, type MosaPath } from '../src/index.js'
import { problem, relError } from './helpers.js'

async function read(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data())
}

export interface PathRun {
  y: Float64Array
  indices: Float64Array
  scores: Float64Array
  grads: Record<string, Float64Array>
  path: string
}

/** Forward + backward of sum(y * w) through one path on the active backend, read back to the host. */
export async function runPath(p: ReturnType<typeof problem>, w: Tensor, path: MosaPath): Promise<PathRun> {
  const flat = (params: MosaParams & { x: Tensor }) => ({
    router: params.router!,
    sq: params.sparse!.q,
    sk: params.sparse!.k,
    sv: params.sparse!.v,
    so: params.sparse!.o,
    x: params.x,
  })
  const f = valueAndGrad((q: ReturnType<typeof flat>) => {
    const params: MosaParams = {
      ...p.params,
      router: q.router,
      sparse: { q: q.sq, k: q.sk, v: q.sv, o: q.so },
    }
    const r = forwardWithRouting(params, q.x, { path })
    expect(r.path).toBe(path)
    r.indices?.dispose()
    r.scores?.dispose()
    return sum(mul(r.y, w))
  })
  const { value, grads } = f(flat({ ...p.params, x: p.x }))
  const out = forwardWithRouting(p.params, p.x, { path })
  const result: PathRun = {
    y: await read(out.y),
    indices: await read(out.indices!),
    scores: await read(out.scores!),
    grads: {},
    path: out.path,
  }
  for (const [name, g] of Object.entries(grads)) result.grads[name] = await read(g as Tensor)
  dispose([value, grads, out])
  return result
}

/**
 * Runs the fused and the portable path on the active backend and expects the same selection,
 * outputs and gradients (float32 sums in a different order: tol of the max-normalised error).
 */
export async function expectFusedMatchesPortable(
  config: MosaConfig,
  B: number,
  T: number,
  seed: number,
  tol = 2e-5,
) {
  const p = problem(config, B, T, seed)
  const w = tensor(new Rng(seed + 1).normalArray(B * T * config.dModel), [B, T, config.dModel], 'float32')
  const live = memory().liveTensors
  const fused = await runPath(p, w, 'fused')
  const portable = await runPath(p, w, 'portable')
  expect(memory().liveTensors).toBe(live)
  expect(Array.from(fused.indices)).toEqual(Array.from(portable.indices))
  const errors: Record<string, number> = {
    y: relError(fused.y, portable.y),
    scores: relError(fused.scores, portable.scores),
  }
  for (const name of Object.keys(portable.grads))
    errors[`d${name}`] = relError(fused.grads[name], portable.grads[name])
  for (const [name, e] of Object.entries(errors))
    expect(e, `${name}: ${JSON.stringify(errors)}`).toBeLessThan(tol)
  dispose([p.params, p.x, w])
  return errors
}
