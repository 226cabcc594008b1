import { describe, expect, it } from 'vitest'
import { flattenTree, mapTree, Rng, type Tensor } from '../src/index.js'

describe('mapTree', () => {
  it('maps every tensor of nested objects and arrays and keeps symbol-keyed metadata as it is', () => {
    const META = Symbol('config')
    const rng = new Rng(1)
    const config = { dModel: 8 }
    const tree = { [META]: config, a: rng.normal([2]), b: [rng.normal([3]), { c: rng.normal([1]) }], n: 5 }
    const mapped = mapTree(tree, (t: Tensor) => t.shape[0]) as Record<string | symbol, unknown>
    expect(mapped).toEqual({ [META]: config, a: 2, b: [3, { c: 1 }], n: 5 })
    expect(mapped[META]).toBe(config)
    expect(flattenTree(tree)).toHaveLength(3)
    for (const t of flattenTree(tree)) t.dispose()
  })
})
