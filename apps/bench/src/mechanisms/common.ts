import { isTensor, mul, sum, type Tensor, type TensorTree, tidy, valueAndGrad } from '@attnkit/core'
import { staleBuildHint } from '../optional-imports.js'
import type { Workload } from './adapter.js'

/**
 * Checks that a dynamically imported package has the functions an adapter calls; the error
 * becomes the reason its cells are unavailable.
 */
export function requireFunctions<T>(mod: Record<string, unknown>, pkg: string, names: readonly string[]): T {
  const missing = names.filter((n) => typeof mod[n] !== 'function')
  if (missing.length > 0)
    throw new Error(
      `${pkg} does not export ${missing.join(', ')}, which the bench's adapter calls${staleBuildHint(pkg) || ' (its API changed?)'}`,
    )
  return mod as T
}

/** The tensors of a tree, by dotted path (e.g. "q_proj.weight", "layers.0.attn.A_log"). */
export function namedLeaves(tree: unknown, prefix = ''): Record<string, Tensor> {
  const out: Record<string, Tensor> = {}
  const walk = (node: unknown, path: string) => {
    if (isTensor(node)) out[path || 'value'] = node
    else if (Array.isArray(node)) {
      for (const [i, n] of node.entries()) walk(n, path ? `${path}.${i}` : String(i))
    } else if (node !== null && typeof node === 'object')
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k)
  }
  walk(tree, prefix)
  return out
}

export function disposeAll(...trees: unknown[]): void {
  for (const t of trees) for (const x of Object.values(namedLeaves(t))) x.dispose()
}

/**
 * Forward+backward of `f(params)` (any tensor output) weighted by a fixed random cotangent `w`
 * of the output's shape: run() returns every gradient, named "d" + its path in params.
 */
export function gradientWorkload<P extends TensorTree>(
  params: P,
  f: (p: P) => Tensor,
  cotangent: Tensor,
  dispose: () => void,
): Workload {
  const lossAndGrads = valueAndGrad((p: P) => sum(mul(f(p), cotangent)))
  return {
    run: () =>
      tidy(() => {
        const { grads } = lossAndGrads(params)
        return namedLeaves(grads, 'd')
      }),
    dispose: () => {
      cotangent.dispose()
      dispose()
    },
  }
}
