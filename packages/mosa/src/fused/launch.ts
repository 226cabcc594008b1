import type { ProgramSpec, TensorInfo } from '@attnkit/core'

/** Launches one entry point of the layer's kernel module (programs.ts's runner builds it per language). */
export type Run = (
  entry: string,
  grid: [number, number, number],
  inputs: TensorInfo[],
  outputs: ProgramSpec['outputs'],
  scalars: ProgramSpec['scalars'],
  block?: ProgramSpec['block'],
) => TensorInfo[]

export const cdiv = (a: number, b: number) => Math.ceil(a / b)
export const i32 = (value: number) => ({ type: 'i32' as const, value })
export const f32 = (value: number) => ({ type: 'f32' as const, value })
