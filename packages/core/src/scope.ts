import { ENGINE } from './engine.js'
import { ArgumentError } from './errors.js'
import { flattenTree, type Tensor } from './tensor.js'

/**
 * Runs `fn` and frees every tensor it created except those in its result (a tensor, or arrays
 * and plain objects holding tensors). `fn` must be synchronous: use explicit `dispose()` or
 * `using` around awaits.
 */
export function tidy<T>(fn: () => T): T {
  ENGINE.startScope()
  let result: T | undefined
  try {
    result = fn()
    if (result instanceof Promise) {
      throw new ArgumentError('tidy: the function returned a Promise; tidy only takes synchronous functions')
    }
    return result
  } finally {
    ENGINE.endScope(result)
  }
}

/** Keeps a tensor out of every enclosing tidy's cleanup. */
export function keep<T extends Tensor>(t: T): T {
  return ENGINE.keep(t)
}

/** Disposes every tensor in a tree (arrays and plain objects of tensors). */
export function dispose(tree: unknown): void {
  for (const t of flattenTree(tree)) t.dispose()
}
