import { allCases, runCase } from '@attnkit/core/testing'
import { describe, expect, it } from 'vitest'
import { createWebGPUBackend } from '../src/index.js'
import { startWebGPU } from './helpers.js'

const { gpu, cpu, reason } = await startWebGPU()
// A second device without shader-f16 and subgroups: float16 lives packed in u32 words and
// reductions go through workgroup memory. The subset covers every code path that differs.
const basic = gpu
  ? await createWebGPUBackend({ name: 'webgpu-basic', disableFeatures: ['shader-f16', 'subgroups'] })
  : undefined

const CASES = [
  'fill/full',
  'cast/float->float16',
  'cast/float->bfloat16',
  'unary/gelu',
  'binary/mul/broadcast',
  'compare/less',
  'where/broadcast',
  'reduce/sum/two',
  'reduce/max/last',
  'softmax/wide',
  'rmsNorm/weight',
  'layerNorm/affine',
  'matmul/odd',
  'transpose/rank3',
  'concat',
  'pad',
  'gather/axis1',
  'scatterAdd/duplicates',
  'topk/largest',
  'conv1d/causal',
  'rope/full',
  'attention/causal',
  'attention/keep-mask',
  'gatedDeltaRule/recurrent',
]

describe.skipIf(!basic)(
  `webgpu without shader-f16 and subgroups${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    it('has neither feature', () => {
      expect(basic!.features.has('shader-f16')).toBe(false)
      expect(basic!.subgroupSize).toBe(0)
      expect(basic!.info().details.float16Storage).toMatch(/packed/)
    })
    for (const c of allCases().filter((x) => CASES.includes(x.name))) {
      for (const dtype of c.dtypes.filter((d) => d !== 'float32' || c.dtypes.length === 1)) {
        it(`${c.name} ${dtype}`, async () => {
          for (const r of await runCase(c, dtype, basic!, cpu))
            expect(r.ok, `${r.check}: ${r.detail} (error ${r.error}, tol ${r.tolerance})`).toBe(true)
        })
      }
    }
  },
)
