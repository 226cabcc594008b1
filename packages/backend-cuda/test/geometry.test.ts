import { describe, expect, it } from 'vitest'
import { broadcastGeom, collapse } from '../src/geometry.js'

describe('iteration-space collapsing', () => {
  it('merges contiguous dims and drops size-1 dims', () => {
    expect(
      broadcastGeom(
        [2, 3, 4],
        [
          [2, 3, 4],
          [2, 3, 4],
        ],
      ),
    ).toEqual({ rank: 1, shape: [24], strides: [[1], [1]] })
    expect(broadcastGeom([2, 1, 4], [[2, 1, 4], [4]])).toEqual({
      rank: 2,
      shape: [2, 4],
      strides: [
        [4, 1],
        [0, 1],
      ],
    })
  })

  it('keeps broadcast dims apart', () => {
    // [3,1,5] + [4,1] -> [3,4,5]
    const g = broadcastGeom(
      [3, 4, 5],
      [
        [3, 1, 5],
        [4, 1],
      ],
    )
    expect(g).toEqual({
      rank: 3,
      shape: [3, 4, 5],
      strides: [
        [5, 0, 1],
        [0, 1, 0],
      ],
    })
  })

  it('handles scalars and fits high ranks into MAX_RANK', () => {
    expect(broadcastGeom([2, 3], [[2, 3], []])).toEqual({ rank: 1, shape: [6], strides: [[1], [0]] })
    expect(collapse([], [[]])).toEqual({ rank: 1, shape: [1], strides: [[0]] })
    const shape = [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    expect(broadcastGeom(shape, [shape]).rank).toBe(1)
  })

  it('collapses a transpose only where it stays contiguous', () => {
    // [2,3,4] read with perm [0,2,1]: out [2,4,3], source strides [12,1,4].
    expect(
      collapse(
        [2, 4, 3],
        [
          [12, 1, 4],
          [12, 3, 1],
        ],
      ),
    ).toEqual({
      rank: 3,
      shape: [2, 4, 3],
      strides: [
        [12, 1, 4],
        [12, 3, 1],
      ],
    })
  })
})
