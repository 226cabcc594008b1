import { isFloat } from './dtype.js'
import { ENGINE, type SavedTensor, Tape, type TapeNode } from './engine.js'
import { ArgumentError, AttnkitError, fmtShape } from './errors.js'
import { type GradResult, getGradient } from './registry.js'
import { flattenTree, mapTree, Tensor, type TensorTree } from './tensor.js'

export interface ValueAndGrad<P> {
  value: Tensor
  grads: P
}

export interface ValueAndGradWithAux<P, X> extends ValueAndGrad<P> {
  aux: X
}

/**
 * Reverse-mode autodiff. `valueAndGrad(f)(params, ...rest)` runs f, which must return a scalar
 * float tensor, and returns it with the gradient of every tensor in `params` (a tensor, or an
 * array/object tree of tensors), in the same structure. Every intermediate tensor created on
 * the way is freed; the value and the gradients are yours to dispose.
 */
export function valueAndGrad<P extends TensorTree, R extends unknown[]>(
  f: (params: P, ...rest: R) => Tensor,
): (params: P, ...rest: R) => ValueAndGrad<P> {
  return (params, ...rest) => {
    const { value, grads } = run((p) => ({ loss: f(p, ...rest), aux: undefined }), params)
    return { value, grads }
  }
}

/**
 * Like valueAndGrad, for a function returning `[loss, aux]`: aux (any tensors or data) is
 * returned untouched and kept alive.
 */
export function valueAndGradWithAux<P extends TensorTree, X, R extends unknown[]>(
  f: (params: P, ...rest: R) => [Tensor, X],
): (params: P, ...rest: R) => ValueAndGradWithAux<P, X> {
  return (params, ...rest) =>
    run((p) => {
      const [loss, aux] = f(p, ...rest)
      return { loss, aux }
    }, params)
}

/** The gradient of f with respect to params (see valueAndGrad); the value is freed. */
export function grad<P extends TensorTree, R extends unknown[]>(
  f: (params: P, ...rest: R) => Tensor,
): (params: P, ...rest: R) => P {
  const vg = valueAndGrad(f)
  return (params, ...rest) => {
    const { value, grads } = vg(params, ...rest)
    value.dispose()
    return grads
  }
}

function run<P extends TensorTree, X>(
  f: (params: P) => { loss: Tensor; aux: X },
  params: P,
): ValueAndGradWithAux<P, X> {
  const sources = flattenTree(params)
  for (const s of sources) {
    s.assertAlive('valueAndGrad')
    if (!isFloat(s.dtype)) {
      throw new ArgumentError(
        `valueAndGrad: parameter ${s} has dtype ${s.dtype}; only float tensors have gradients`,
      )
    }
  }
  ENGINE.startScope()
  const tape = new Tape()
  for (const s of sources) tape.watched.add(s.id)
  let result: ValueAndGradWithAux<P, X> | undefined
  try {
    ENGINE.pushTape(tape)
    let out: { loss: Tensor; aux: X }
    try {
      out = f(params)
    } finally {
      ENGINE.popTape()
    }
    const { loss, aux } = out
    if (!(loss instanceof Tensor) || loss.size !== 1 || !isFloat(loss.dtype)) {
      throw new ArgumentError(
        `valueAndGrad: the function must return a float tensor with one element, got ${
          loss instanceof Tensor ? `${fmtShape(loss.shape)} ${loss.dtype}` : typeof loss
        }`,
      )
    }
    const gradById = backward(tape, loss, new Set(sources.map((t) => t.id)))
    const grads = mapTree(params, (p) => gradById.get(p.id) ?? zerosLike(p)) as P
    result = { value: loss, grads, aux }
  } finally {
    for (const node of tape.nodes) releaseNode(node)
    ENGINE.endScope(result)
  }
  return result!
}

function releaseNode(node: TapeNode): void {
  for (const v of Object.values(node.saved)) {
    for (const s of Array.isArray(v) ? v : [v]) ENGINE.releaseSaved(s)
  }
  for (const s of node.savedOutputs) ENGINE.releaseSaved(s)
  node.saved = {}
  node.savedOutputs = []
}

// Fills run on the tensor's own backend, not the active one (the loss may live elsewhere).
function zerosLike(t: Tensor): Tensor {
  return ENGINE.runKernel('fill', {}, { shape: [...t.shape], dtype: t.dtype, value: 0 }, t.backend)[0]
}

function ones(t: Tensor): Tensor {
  return ENGINE.runKernel('fill', {}, { shape: [...t.shape], dtype: t.dtype, value: 1 }, t.backend)[0]
}

/**
 * Walks the tape backwards from `loss`, returning gradients by tensor id. Gradients of
 * intermediate tensors are freed as soon as the node that produced them has been processed.
 */
function backward(tape: Tape, loss: Tensor, sourceIds: Set<number>): Map<number, Tensor> {
  const grads = new Map<number, Tensor>()
  ENGINE.pushTape(null)
  try {
    grads.set(loss.id, ones(loss))
    for (let n = tape.nodes.length - 1; n >= 0; n--) {
      const node = tape.nodes[n]
      if (!node.outputIds.some((id) => grads.has(id))) continue
      const config = getGradient(node.kernelName)!
      const temporaries: Tensor[] = []
      const dys = node.outputIds.map((id, i) => {
        const g = grads.get(id)
        if (g) return g
        const m = node.outputMeta[i]
        const z = ENGINE.runKernel(
          'fill',
          {},
          { shape: [...m.shape], dtype: m.dtype, value: 0 },
          m.backend,
        )[0]
        temporaries.push(z)
        return z
      })
      const revive = (s: SavedTensor) => {
        const t = ENGINE.revive(s)
        temporaries.push(t)
        return t
      }
      const inputs: Record<string, Tensor | Tensor[]> = {}
      for (const [name, v] of Object.entries(node.saved)) {
        inputs[name] = Array.isArray(v) ? v.map(revive) : revive(v)
      }
      const outputs = node.savedOutputs.map(revive)
      // A scope per node frees the gradient function's temporaries right away.
      ENGINE.startScope()
      let inputGrads: GradResult = {}
      try {
        inputGrads = config.gradFunc({ dys, inputs, inputMeta: node.inputMeta, outputs, attrs: node.attrs })
      } finally {
        ENGINE.endScope(inputGrads)
      }
      releaseNode(node)
      const handedOut = new Set<Tensor>()
      const skip = new Set(config.nonDifferentiableInputs ?? [])
      for (const [name, ids] of Object.entries(node.inputIds)) {
        if (ids === undefined || skip.has(name)) continue
        const g = inputGrads[name]
        const idList = Array.isArray(ids) ? ids : [ids]
        const gList = g === undefined ? [] : Array.isArray(g) ? g : [g]
        idList.forEach((id, i) => {
          let gi = gList[i]
          if (!tape.watched.has(id) || gi === undefined) return
          const meta = Array.isArray(node.inputMeta[name])
            ? (node.inputMeta[name] as { shape: readonly number[] }[])[i]
            : (node.inputMeta[name] as { shape: readonly number[] })
          if (gi.shape.length !== meta.shape.length || gi.shape.some((d, k) => d !== meta.shape[k])) {
            throw new AttnkitError(
              `gradient of '${node.kernelName}' for input '${name}' has shape ${fmtShape(gi.shape)}, expected ${fmtShape(meta.shape)}`,
            )
          }
          // One tensor object must not be held under two ids (each is disposed on its own).
          if (handedOut.has(gi) || [...grads.values()].includes(gi)) gi = ENGINE.makeTensor(gi, gi.backend)
          handedOut.add(gi)
          accumulate(grads, id, gi)
        })
      }
      for (const id of node.outputIds) {
        const g = grads.get(id)
        if (!g || sourceIds.has(id)) continue
        grads.delete(id)
        if (!handedOut.has(g)) g.dispose()
      }
      for (const t of temporaries) if (!handedOut.has(t)) t.dispose()
    }
  } finally {
    ENGINE.popTape()
  }
  return grads
}

function accumulate(grads: Map<number, Tensor>, id: number, g: Tensor): void {
  const prev = grads.get(id)
  if (!prev) {
    grads.set(id, g)
    return
  }
  const sum = ENGINE.runKernel('binary', { a: prev, b: g }, { op: 'add' })[0]
  prev.dispose()
  g.dispose()
  grads.set(id, sum)
}
