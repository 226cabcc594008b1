import { type DType, full, type Rng, type Tensor } from '@attnkit/core'

/** Float dtypes parameters may be created in (float64 for reference checks on the CPU). */
export type ParamDType = 'float32' | 'float64' | 'float16' | 'bfloat16'

export const normalInit = (rng: Rng, shape: number[], std: number, dtype: DType): Tensor =>
  rng.normal(shape, 0, std, { dtype })

export const uniformInit = (rng: Rng, shape: number[], bound: number, dtype: DType): Tensor =>
  rng.uniform(shape, -bound, bound, { dtype })

export const constInit = (shape: number[], value: number, dtype: DType): Tensor => full(shape, value, dtype)

/** PyTorch's default Conv1d init bound (kaiming-uniform with a = sqrt(5)): 1 / sqrt(fan_in). */
export const convBound = (cinPerGroup: number, kernelSize: number): number =>
  1 / Math.sqrt(cinPerGroup * kernelSize)
