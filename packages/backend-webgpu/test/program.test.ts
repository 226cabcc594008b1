import { add, full, memory, Rng, tensor } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { startWebGPU } from './helpers.js'

const { gpu, reason } = await startWebGPU()

describe.skipIf(!gpu)(
  `runProgram (ProgramSpec binding convention)${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    const saxpy = `
struct Scalars { n: u32, alpha: f32, offset: i32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> count: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> s: Scalars;
@compute @workgroup_size(64)
fn saxpy(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= s.n) { return; }
  out[g.x] = s.alpha * x[g.x] + y[g.x] + f32(s.offset);
  atomicAdd(&count[0], 1u);
}`

    it('binds inputs, outputs (zeroInit) and packed scalars as documented', async () => {
      const b = gpu!
      const rng = new Rng(3)
      const n = 1000
      const xs = rng.normalArray(n)
      const ys = rng.normalArray(n)
      const x = tensor(Float32Array.from(xs), [n], { backend: b })
      const y = tensor(Float32Array.from(ys), [n], { backend: b })
      const [outInfo, countInfo] = b.runProgram({
        language: 'wgsl',
        name: 'test-saxpy',
        source: saxpy,
        entryPoint: 'saxpy',
        grid: [Math.ceil(n / 64), 1, 1],
        inputs: [x, y],
        outputs: [
          { shape: [n], dtype: 'float32' },
          { shape: [1], dtype: 'uint32', zeroInit: true },
        ],
        scalars: [
          { type: 'u32', value: n },
          { type: 'f32', value: 2.5 },
          { type: 'i32', value: -3 },
        ],
      })
      const out = await b.read(outInfo.dataId)
      const count = await b.read(countInfo.dataId)
      for (let i = 0; i < n; i++)
        expect(out[i]).toBeCloseTo(Math.fround(2.5 * Math.fround(xs[i])) + Math.fround(ys[i]) - 3, 4)
      expect(count[0]).toBe(n)
      b.release(outInfo.dataId)
      b.release(countInfo.dataId)
      x.dispose()
      y.dispose()
    })

    it('compiles each program once and reuses the pipeline', () => {
      const b = gpu!
      const before = b.pipelines.compiles
      const x = full([8], 1, { backend: b })
      for (let k = 0; k < 3; k++) {
        const [o, c] = b.runProgram({
          language: 'wgsl',
          name: 'test-saxpy',
          source: saxpy,
          entryPoint: 'saxpy',
          grid: [1, 1, 1],
          inputs: [x, x],
          outputs: [
            { shape: [8], dtype: 'float32' },
            { shape: [1], dtype: 'uint32', zeroInit: true },
          ],
          scalars: [
            { type: 'u32', value: 8 },
            { type: 'f32', value: 1 },
            { type: 'i32', value: 0 },
          ],
        })
        b.release(o.dataId)
        b.release(c.dataId)
      }
      expect(b.pipelines.compiles - before).toBeLessThanOrEqual(1)
      x.dispose()
    })

    it('reports a WGSL compile error with the program name on the next read', async () => {
      const b = gpu!
      const x = full([4], 1, { backend: b })
      const [o] = b.runProgram({
        language: 'wgsl',
        name: 'broken-program',
        source: '@compute @workgroup_size(1) fn main() { let a: u32 = 1.5; }',
        entryPoint: 'main',
        grid: [1, 1, 1],
        inputs: [],
        outputs: [{ shape: [4], dtype: 'float32' }],
      })
      await expect(b.read(o.dataId)).rejects.toThrow(/broken-program/)
      b.release(o.dataId)
      // The backend stays usable after reporting the error.
      const y = add(x, x)
      expect(Array.from(await y.data())).toEqual([2, 2, 2, 2])
      x.dispose()
      y.dispose()
    })

    it('rejects CUDA programs and bad grids with a clear error', () => {
      const b = gpu!
      const base = { name: 'p', source: '', entryPoint: 'main', inputs: [], outputs: [] }
      expect(() => b.runProgram({ ...base, language: 'cuda', grid: [1, 1, 1] })).toThrow(
        /runs 'wgsl' programs/,
      )
      expect(() => b.runProgram({ ...base, language: 'wgsl', grid: [1e9, 1, 1] })).toThrow(/grid/)
    })

    it('throws on readSync, naming the async alternative', () => {
      const t = full([2], 1, { backend: gpu! })
      expect(() => t.dataSync()).toThrow(/await tensor.data\(\)/)
      t.dispose()
      expect(memory('webgpu').liveTensors).toBe(0)
    })
  },
)
