/**
 * @attnkit/backend-cuda: the op contract on NVIDIA GPUs through the CUDA driver API, NVRTC and
 * cuBLASLt, called through koffi (no native addon). Importing registers the 'cuda' backend
 * (priority 300); nothing native loads until the backend is created.
 */
import { registerBackend } from '@attnkit/core'
import { CudaBackend, type CudaBackendOptions } from './backend.js'
import { registerCudaKernels } from './kernels/index.js'

/** Creates a CUDA backend with explicit options (library paths, device, TF32). */
export async function createCudaBackend(options: CudaBackendOptions = {}): Promise<CudaBackend> {
  registerCudaKernels()
  return CudaBackend.create(options)
}

registerBackend({ name: 'cuda', priority: 300, create: () => createCudaBackend() })

export { type AllocatorStats, CachingAllocator, sizeClass } from './allocator.js'
export { CudaBackend, type CudaBackendOptions, CudaData, type CudaKernel } from './backend.js'
export {
  type AttentionBenchResult,
  attentionFlops,
  benchAttention,
  benchMatmul,
  type MatmulBenchResult,
  matmulFlops,
  runTorchReference,
  TORCH_REFERENCE_SCRIPT,
  type TorchReference,
} from './bench.js'
export { defaultCacheDir } from './compiler.js'
export { CudaCallError } from './ffi/status.js'
export { type CudaLibrary, type CudaLibraryOptions, searchDirectories } from './libraries.js'
export { registerCudaKernels }
