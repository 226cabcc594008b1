import type { Backend, TensorInfo } from './backend.js'
import type { DType } from './dtype.js'
import { AttnkitError } from './errors.js'
import type { CoreKernelName, KernelSignatures } from './kernel-contract.js'
import type { Shape } from './shape.js'
import type { Tensor } from './tensor.js'

export type KernelInputs = Readonly<Record<string, TensorInfo | readonly TensorInfo[] | undefined>>
export type KernelResult = TensorInfo | TensorInfo[]

export interface KernelArgs<B extends Backend = Backend, A = unknown, I = KernelInputs> {
  inputs: I
  attrs: A
  backend: B
}

export interface KernelConfig<B extends Backend = Backend, A = unknown, I = KernelInputs> {
  kernelName: string
  backendName: string
  kernelFunc: (args: KernelArgs<B, A, I>) => KernelResult
}

type InputsOf<K extends CoreKernelName> = {
  [P in keyof KernelSignatures[K]['inputs']]: P extends 'xs' ? readonly TensorInfo[] : TensorInfo
}

/** Typed arguments of a core kernel, for backend implementers. */
export type CoreKernelArgs<K extends CoreKernelName, B extends Backend = Backend> = KernelArgs<
  B,
  KernelSignatures[K]['attrs'],
  InputsOf<K>
>

const kernels = new Map<string, KernelConfig>()
const key = (kernelName: string, backendName: string) => `${backendName}\u0000${kernelName}`

/** Registers (or replaces) the kernel `kernelName` for backend `backendName`. */
export function registerKernel<B extends Backend, A, I>(config: KernelConfig<B, A, I>): void {
  kernels.set(key(config.kernelName, config.backendName), config as unknown as KernelConfig)
}

/** Registers a core kernel with typed inputs and attributes (see kernel-contract.ts). */
export function registerCoreKernel<K extends CoreKernelName, B extends Backend>(
  kernelName: K,
  backendName: string,
  kernelFunc: (args: CoreKernelArgs<K, B>) => KernelResult,
): void {
  registerKernel({ kernelName, backendName, kernelFunc } as unknown as KernelConfig)
}

export function unregisterKernel(kernelName: string, backendName: string): void {
  kernels.delete(key(kernelName, backendName))
}

export function getKernel(kernelName: string, backendName: string): KernelConfig | undefined {
  return kernels.get(key(kernelName, backendName))
}

export function hasKernel(kernelName: string, backendName: string): boolean {
  return kernels.has(key(kernelName, backendName))
}

export function listKernels(backendName: string): string[] {
  const prefix = `${backendName}\u0000`
  return [...kernels.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length))
}

/** What a gradient function receives. Inputs not listed in `saveInputs` are absent. */
export interface GradContext<A = unknown> {
  /** Gradient of the loss with respect to each output (zeros where an output was unused). */
  dys: Tensor[]
  inputs: Readonly<Record<string, Tensor | Tensor[] | undefined>>
  /** Shape and dtype of every input, saved or not. */
  inputMeta: Readonly<Record<string, { shape: Shape; dtype: DType } | { shape: Shape; dtype: DType }[]>>
  /** The outputs when `saveOutputs` is true, else empty. */
  outputs: Tensor[]
  attrs: A
}

export type GradResult = Record<string, Tensor | Tensor[] | undefined>

export interface GradientConfig<A = unknown> {
  kernelName: string
  /** Inputs the gradient needs the values of (kept alive until the backward pass). */
  saveInputs?: string[]
  saveOutputs?: boolean
  /** Returns the gradient of each differentiable input, by input name. */
  gradFunc: (ctx: GradContext<A>) => GradResult
  /** Inputs that never receive a gradient (indices, masks, positions). */
  nonDifferentiableInputs?: string[]
}

const gradients = new Map<string, GradientConfig>()
const nonDifferentiable = new Set<string>()

export function registerGradient<A>(config: GradientConfig<A>): void {
  gradients.set(config.kernelName, config as GradientConfig)
}

/** Declares kernels whose outputs carry no gradient (comparisons, argmax, optimiser steps). */
export function registerNonDifferentiable(...kernelNames: string[]): void {
  for (const k of kernelNames) nonDifferentiable.add(k)
}

export function getGradient(kernelName: string): GradientConfig | undefined {
  return gradients.get(kernelName)
}

export function isNonDifferentiable(kernelName: string): boolean {
  return nonDifferentiable.has(kernelName)
}

export class KernelNotFoundError extends AttnkitError {
  override name = 'KernelNotFoundError'
}
