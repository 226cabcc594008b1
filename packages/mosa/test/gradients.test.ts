import { dispose, memory, mul, Rng, sum, type Tensor, tensor, valueAndGrad } from '@attnkit/core'
import { numericGradient } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { forward, type MosaConfig, type MosaParams, namedParams, withConfig } from '../src/index.js'
import { problem, relError } from './helpers.js'

/** Rebuilds MosaParams from the flat safetensors-style names (so numericGradient can perturb them). */
function fromNamed(config: MosaConfig, named: Record<string, Tensor>): MosaParams {
  const g = (group: string) =>
    named[`${group}.q.weight`]
      ? {
          q: named[`${group}.q.weight`],
          k: named[`${group}.k.weight`],
          v: named[`${group}.v.weight`],
          o: named[`${group}.o.weight`],
        }
      : undefined
  return withConfig(config, { router: named['router.weight'], sparse: g('sparse'), dense: g('dense') })
}

function gradCheck(config: MosaConfig, B: number, T: number, seed: number, zeroGrad: string[] = []) {
  const p = problem(config, B, T, seed)
  const w = tensor(new Rng(seed + 7).normalArray(B * T * config.dModel), [B, T, config.dModel], 'float64')
  const loss = (named: Record<string, Tensor>) => {
    const { x, ...rest } = named
    return sum(mul(forward(fromNamed(config, rest), x, { path: 'portable' }), w))
  }
  const params = { ...namedParams(p.params), x: p.x }
  const live = memory().liveTensors
  const { value, grads } = valueAndGrad(loss)(params)
  const numeric = numericGradient(loss, params, 1e-6)
  const errors: Record<string, number> = {}
  for (const name of Object.keys(params)) {
    errors[name] = relError(grads[name].dataSync(), numeric[name])
    // A gradient that is zero everywhere would pass trivially: only the listed ones may be.
    const largest = Math.max(...numeric[name].map(Math.abs))
    if (zeroGrad.includes(name)) expect(largest, `|d loss / d ${name}|`).toBeLessThan(1e-9)
    else expect(largest, `|d loss / d ${name}|`).toBeGreaterThan(1e-3)
  }
  dispose([value, grads])
  expect(memory().liveTensors).toBe(live)
  dispose([p.params, p.x, w])
  return errors
}

describe('gradients against finite differences (CPU, float64)', () => {
  it('every parameter, the router included, and the input', () => {
    const errors = gradCheck(
      { dModel: 5, headDim: 4, denseHeads: 1, sparseHeads: 2, sparsity: 2, dtype: 'float64' },
      2,
      7,
      11,
    )
    expect(Object.keys(errors).sort()).toEqual(
      [
        'dense.k.weight',
        'dense.o.weight',
        'dense.q.weight',
        'dense.v.weight',
        'router.weight',
        'sparse.k.weight',
        'sparse.o.weight',
        'sparse.q.weight',
        'sparse.v.weight',
        'x',
      ].sort(),
    )
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(1e-7)
  })

  it('RoPE off, k = 1 and k = T heads', () => {
    for (const sparsity of [1, 100]) {
      const errors = gradCheck(
        { dModel: 4, headDim: 2, denseHeads: 0, sparseHeads: 2, sparsity, rope: false, dtype: 'float64' },
        2,
        5,
        13 + sparsity,
        // k = 1: each selected token attends only to itself, so queries and keys do not matter.
        sparsity === 100 ? ['sparse.q.weight', 'sparse.k.weight'] : [],
      )
      for (const [name, e] of Object.entries(errors))
        expect(e, `${name} sparsity ${sparsity}`).toBeLessThan(1e-7)
    }
  })
})
