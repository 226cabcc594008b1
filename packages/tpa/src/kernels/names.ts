/** Kernel names this package registers per backend ('webgpu', 'cuda'). */
export const DECODE_PARTIAL_KERNEL = 'tpa.decodePartial'
export const DECODE_COMBINE_KERNEL = 'tpa.decodeCombine'
export const CACHE_WRITE_KERNEL = 'tpa.cacheWrite'
export const COPY_KERNEL = 'tpa.copy'
/** CUDA only: the bench's launch-queue filler (see benchTpaDecodeAttention's kernel timing). */
export const DEVICE_DELAY_KERNEL = 'tpa.deviceDelay'
