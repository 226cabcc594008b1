import { matmul, matmulCost, type Tensor } from '@attnkit/core'
import type { MechanismAdapter } from './adapter.js'

/** A plain [m, k] x [k, n] product: the backend's GEMM rate, the yardstick for everything else. */
export const matmulAdapter: MechanismAdapter = {
  name: 'matmul',
  description: 'a single [m, k] x [k, n] matrix product (the GEMM rate)',
  variants: [{ name: 'nn', description: 'no transposes' }],
  modes: ['forward'],
  requiredDims: ['m', 'n', 'k'],
  label: (d) => `${d.m}x${d.n}x${d.k}`,
  // The full reduction length, so accumulation error is checked at the size that is timed.
  checkDims: (d) => ({ m: Math.min(d.m, 128), n: Math.min(d.n, 128), k: Math.min(d.k, 4096) }),
  cost: (d, _variant, _mode, dtype) => matmulCost(d.m, d.n, d.k, dtype),
  kvCacheBytes: () => null,
  setup(ctx, d) {
    const a = ctx.normal([d.m, d.k])
    const b = ctx.normal([d.k, d.n])
    return {
      run: () => ({ out: matmul(a, b) }),
      dispose: () => {
        for (const t of [a, b] as Tensor[]) t.dispose()
      },
    }
  },
}
