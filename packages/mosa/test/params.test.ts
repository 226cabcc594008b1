import { add, dispose, mapTree, memory, Rng, serializeHostTensors, type Tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import {
  configOf,
  forward,
  init,
  loadParams,
  type MosaConfig,
  paramSpecs,
  saveParams,
  withConfig,
} from '../src/index.js'
import { problem, relError } from './helpers.js'

const config: MosaConfig = { dModel: 6, headDim: 4, denseHeads: 1, sparseHeads: 2, sparsity: 2 }

describe('parameters', () => {
  it('names, shapes and layouts ([out, in] like torch.nn.Linear)', () => {
    expect(paramSpecs(config).map((s) => [s.name, s.shape])).toEqual([
      ['router.weight', [2, 6]],
      ['dense.q.weight', [4, 6]],
      ['dense.k.weight', [4, 6]],
      ['dense.v.weight', [4, 6]],
      ['dense.o.weight', [6, 4]],
      ['sparse.q.weight', [8, 6]],
      ['sparse.k.weight', [8, 6]],
      ['sparse.v.weight', [8, 6]],
      ['sparse.o.weight', [6, 8]],
    ])
  })

  it('the config survives a tree map of the parameters (moving or transforming them)', () => {
    const p = problem(config, 2, 8, 3)
    const mapped = mapTree(p.params, (t: Tensor) => add(t, 0)) as typeof p.params
    expect(configOf(mapped)).toEqual(configOf(p.params))
    const a = forward(p.params, p.x)
    const b = forward(mapped, p.x)
    expect(relError(b.dataSync(), a.dataSync())).toBe(0)
    dispose([a, b, mapped, p.params, p.x])
  })

  it('save then load gives the same layer (config from the metadata)', async () => {
    const p = problem(config, 2, 8, 1)
    const bytes = await saveParams(p.params)
    const live = memory().liveTensors
    const loaded = loadParams(bytes)
    expect(configOf(loaded)).toEqual(config)
    const a = forward(p.params, p.x)
    const b = forward(loaded, p.x)
    expect(relError(b.dataSync(), a.dataSync())).toBe(0)
    dispose([a, b, loaded])
    expect(memory().liveTensors).toBe(live)
    dispose([p.params, p.x])
  })

  it('loads a state_dict written elsewhere (float64 cast to the config dtype, extra tensors ignored, prefix)', () => {
    const rng = new Rng(2)
    const tensors: Record<string, { dtype: 'float64'; shape: number[]; values: Float64Array }> = {}
    for (const s of paramSpecs(config)) {
      tensors[`layers.0.attn.${s.name}`] = {
        dtype: 'float64',
        shape: s.shape,
        values: rng.normalArray(s.shape[0] * s.shape[1]),
      }
    }
    tensors['layers.0.norm.weight'] = { dtype: 'float64', shape: [6], values: rng.normalArray(6) }
    const live = memory().liveTensors
    const loaded = loadParams(serializeHostTensors(tensors), { config, prefix: 'layers.0.attn.' })
    expect(loaded.sparse!.q.dtype).toBe('float32')
    expect(Array.from(loaded.router!.dataSync())).toEqual(
      Array.from(Float32Array.from(tensors['layers.0.attn.router.weight'].values)),
    )
    dispose(loaded)
    expect(memory().liveTensors).toBe(live)
  })

  it('missing or misshapen tensors are errors naming them', async () => {
    const params = init(config, new Rng(1))
    const other = init({ ...config, headDim: 2 }, new Rng(1))
    const bytes = await saveParams(other)
    const live = memory().liveTensors
    expect(() => loadParams(bytes, { config })).toThrow(
      /tensor 'router.weight'|tensor 'dense.q.weight' expected shape \[4, 6\]/,
    )
    expect(() => loadParams(bytes, { config, prefix: 'x.' })).toThrow(
      /tensor 'x.router.weight' \[2, 6\] is missing/,
    )
    expect(memory().liveTensors).toBe(live)
    expect(() => forward(withConfig(config, { router: params.router }), params.router!)).toThrow(
      /parameter 'dense.q' \(dense.q.weight\) is missing/,
    )
    dispose([params, other])
  })
})
