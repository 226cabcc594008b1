import { registerCoreKernel, sizeOf } from '@attnkit/core'
import type { CudaBackend } from '../backend.js'
import { ctype } from '../host-convert.js'

const CONV_ARGS = ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'] as const

export function registerConvRopeOptimKernels(): void {
  registerCoreKernel<'conv1d', CudaBackend>('conv1d', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, weight, bias } = inputs
    const [B, T, cin] = x.shape
    const [cout, cinPG, K] = weight.shape
    const { dilation, padLeft, padRight, groups } = attrs
    const Tout = T + padLeft + padRight - dilation * (K - 1)
    const out = backend.alloc([B, Tout, cout], x.dtype)
    const n = B * Tout * cout
    if (n === 0) return out
    const k = backend.kernel('conv_rope.cu', { DT: ctype(x.dtype) }, 'conv1d_k', [
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      ...CONV_ARGS,
      'i32',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(x),
      backend.ptr(weight),
      bias ? backend.ptr(bias) : 0n,
      backend.ptr(out),
      B,
      T,
      cin,
      cout,
      cinPG,
      K,
      Tout,
      dilation,
      padLeft,
      groups,
      bias ? 1 : 0,
    ])
    return out
  })

  registerCoreKernel<'conv1dBackwardInput', CudaBackend>(
    'conv1dBackwardInput',
    'cuda',
    ({ inputs, attrs, backend }) => {
      const { dy, weight } = inputs
      const [B, Tout, cout] = dy.shape
      const [, cinPG, K] = weight.shape
      const { dilation, padLeft, groups, inputLength: T } = attrs
      const cin = cinPG * groups
      const out = backend.alloc([B, T, cin], dy.dtype)
      const n = B * T * cin
      if (n === 0) return out
      const k = backend.kernel('conv_rope.cu', { DT: ctype(dy.dtype) }, 'conv1d_bwd_input_k', [
        'ptr',
        'ptr',
        'ptr',
        ...CONV_ARGS,
      ])
      backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
        backend.ptr(dy),
        backend.ptr(weight),
        backend.ptr(out),
        B,
        T,
        cin,
        cout,
        cinPG,
        K,
        Tout,
        dilation,
        padLeft,
        groups,
      ])
      return out
    },
  )

  registerCoreKernel<'conv1dBackwardWeight', CudaBackend>(
    'conv1dBackwardWeight',
    'cuda',
    ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs
      const [B, T, cin] = x.shape
      const [, Tout, cout] = dy.shape
      const { dilation, padLeft, groups, kernelSize: K } = attrs
      const cinPG = cin / groups
      const out = backend.alloc([cout, cinPG, K], x.dtype)
      const n = cout * cinPG * K
      if (n === 0) return out
      const k = backend.kernel('conv_rope.cu', { DT: ctype(x.dtype) }, 'conv1d_bwd_weight_k', [
        'ptr',
        'ptr',
        'ptr',
        ...CONV_ARGS,
      ])
      backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
        backend.ptr(x),
        backend.ptr(dy),
        backend.ptr(out),
        B,
        T,
        cin,
        cout,
        cinPG,
        K,
        Tout,
        dilation,
        padLeft,
        groups,
      ])
      return out
    },
  )

  registerCoreKernel<'rope', CudaBackend>('rope', 'cuda', ({ inputs, attrs, backend }) => {
    const { x, positions } = inputs
    const D = x.shape[3]
    const rows = sizeOf(x.shape) / (D || 1)
    const out = backend.alloc(x.shape, x.dtype)
    if (rows * D === 0) return out
    const k = backend.kernel('conv_rope.cu', { DT: ctype(x.dtype) }, 'rope_k', [
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'i32',
      'i32',
      'f32',
      'f32',
    ])
    backend.launch(k, backend.grid1d(rows * D), [256, 1, 1], 0, [
      backend.ptr(x),
      backend.ptr(positions),
      backend.ptr(out),
      rows,
      D,
      attrs.rotaryDim,
      attrs.base,
      attrs.inverse ? -1 : 1,
    ])
    return out
  })

  registerCoreKernel<'adamW', CudaBackend>('adamW', 'cuda', ({ inputs, attrs, backend }) => {
    const { param, grad, m, v } = inputs
    const { lr, beta1, beta2, eps, weightDecay, step } = attrs
    const p2 = backend.alloc(param.shape, param.dtype)
    const m2 = backend.alloc(m.shape, m.dtype)
    const v2 = backend.alloc(v.shape, v.dtype)
    const n = sizeOf(param.shape)
    if (n === 0) return [p2, m2, v2]
    if (m.dtype !== v.dtype)
      throw new Error(`adamW: m (${m.dtype}) and v (${v.dtype}) must share a dtype on cuda`)
    const k = backend.kernel('adamw.cu', { DTP: ctype(param.dtype), DTS: ctype(m.dtype) }, 'adamw_k', [
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'ptr',
      'i64',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
    ])
    backend.launch(k, backend.grid1d(n), [256, 1, 1], 0, [
      backend.ptr(param),
      backend.ptr(grad),
      backend.ptr(m),
      backend.ptr(v),
      backend.ptr(p2),
      backend.ptr(m2),
      backend.ptr(v2),
      n,
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      1 / (1 - beta1 ** step),
      1 / (1 - beta2 ** step),
    ])
    return [p2, m2, v2]
  })
}
