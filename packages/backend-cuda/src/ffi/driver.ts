import { bindVersioned, type KoffiLibrary } from './koffi.js'
import { CudaCallError } from './status.js'

/** Device attributes the backend reads (values from cuda.h's CUdevice_attribute). */
export const CU_DEVICE_ATTRIBUTE = {
  clockRateKHz: 13,
  multiprocessorCount: 16,
  memoryClockRateKHz: 36,
  globalMemoryBusWidth: 37,
  l2CacheSize: 38,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  maxSharedMemoryPerBlockOptin: 97,
} as const

export const CU_FUNC_ATTRIBUTE = {
  sharedSizeBytes: 1,
  localSizeBytes: 3,
  numRegs: 4,
  maxDynamicSharedSizeBytes: 8,
} as const

export const CU_STREAM_NON_BLOCKING = 1
export const CU_EVENT_DEFAULT = 0

/**
 * The CUDA driver API calls the backend makes. Every method checks the status and throws a
 * CudaCallError naming the call. Handles and device pointers are bigints.
 */
export interface Driver {
  readonly path: string
  init(): void
  driverVersion(): number
  deviceCount(): number
  device(ordinal: number): number
  deviceName(dev: number): string
  deviceAttribute(attr: number, dev: number): number
  deviceTotalMem(dev: number): number
  primaryContextRetain(dev: number): bigint
  primaryContextRelease(dev: number): void
  contextSetCurrent(ctx: bigint): void
  contextSynchronize(): void
  memAlloc(bytes: number): bigint
  memFree(ptr: bigint): void
  memGetInfo(): { free: number; total: number }
  memcpyHtoDAsync(dst: bigint, src: ArrayBufferView, bytes: number, stream: bigint): void
  memcpyDtoHAsync(dst: ArrayBufferView, src: bigint, bytes: number, stream: bigint): void
  memcpyDtoDAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void
  memsetD8Async(ptr: bigint, value: number, count: number, stream: bigint): void
  memsetD16Async(ptr: bigint, value: number, count: number, stream: bigint): void
  memsetD32Async(ptr: bigint, value: number, count: number, stream: bigint): void
  streamCreate(flags: number): bigint
  streamDestroy(stream: bigint): void
  streamSynchronize(stream: bigint): void
  eventCreate(flags: number): bigint
  eventDestroy(ev: bigint): void
  eventRecord(ev: bigint, stream: bigint): void
  eventSynchronize(ev: bigint): void
  eventElapsedMs(start: bigint, end: bigint): number
  moduleLoadData(image: Uint8Array): bigint
  moduleUnload(mod: bigint): void
  moduleGetFunction(mod: bigint, name: string): bigint
  funcSetAttribute(fn: bigint, attr: number, value: number): void
  funcGetAttribute(fn: bigint, attr: number): number
  launchKernel(
    fn: bigint,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    stream: bigint,
    params: bigint,
  ): void
  /**
   * cuLaunchKernelEx with a CUlaunchConfig the caller wrote in native memory (`config`); absent
   * where the driver has no cuLaunchKernelEx (before CUDA 12.0).
   */
  launchKernelEx?(config: bigint, fn: bigint, params: bigint): void
  errorName(code: number): string
}

/** A function the library may lack (newer driver API): undefined when it cannot be bound. */
function optionalFunc(lib: KoffiLibrary, def: string): ((...a: unknown[]) => number) | undefined {
  try {
    return lib.func(def) as (...a: unknown[]) => number
  } catch {
    return undefined
  }
}

/** Binds libcuda through koffi. */
export function bindDriver(lib: KoffiLibrary, path: string): Driver {
  const f = (def: string) => lib.func(def) as (...a: unknown[]) => number
  const v = (name: string, params: string, suffixes = ['_v2', '']) =>
    bindVersioned(lib, 'int', name, params, suffixes) as (...a: unknown[]) => number
  const raw = {
    cuInit: f('int cuInit(unsigned int flags)'),
    cuDriverGetVersion: f('int cuDriverGetVersion(int *v)'),
    cuDeviceGetCount: f('int cuDeviceGetCount(int *n)'),
    cuDeviceGet: f('int cuDeviceGet(int *dev, int ordinal)'),
    cuDeviceGetName: f('int cuDeviceGetName(char *name, int len, int dev)'),
    cuDeviceGetAttribute: f('int cuDeviceGetAttribute(int *v, int attr, int dev)'),
    cuDeviceTotalMem: v('cuDeviceTotalMem', 'uint64_t *bytes, int dev'),
    cuDevicePrimaryCtxRetain: f('int cuDevicePrimaryCtxRetain(uint64_t *ctx, int dev)'),
    cuDevicePrimaryCtxRelease: v('cuDevicePrimaryCtxRelease', 'int dev'),
    cuCtxSetCurrent: f('int cuCtxSetCurrent(uintptr_t ctx)'),
    cuCtxSynchronize: f('int cuCtxSynchronize()'),
    cuMemAlloc: v('cuMemAlloc', 'uint64_t *ptr, size_t bytes'),
    cuMemFree: v('cuMemFree', 'uint64_t ptr'),
    cuMemGetInfo: v('cuMemGetInfo', 'uint64_t *free, uint64_t *total'),
    cuMemcpyHtoDAsync: v(
      'cuMemcpyHtoDAsync',
      'uint64_t dst, const void *src, size_t bytes, uintptr_t stream',
    ),
    cuMemcpyDtoHAsync: v('cuMemcpyDtoHAsync', 'void *dst, uint64_t src, size_t bytes, uintptr_t stream'),
    cuMemcpyDtoDAsync: v('cuMemcpyDtoDAsync', 'uint64_t dst, uint64_t src, size_t bytes, uintptr_t stream'),
    cuMemsetD8Async: f('int cuMemsetD8Async(uint64_t dst, uint8_t v, size_t n, uintptr_t stream)'),
    cuMemsetD16Async: f('int cuMemsetD16Async(uint64_t dst, uint16_t v, size_t n, uintptr_t stream)'),
    cuMemsetD32Async: f('int cuMemsetD32Async(uint64_t dst, uint32_t v, size_t n, uintptr_t stream)'),
    cuStreamCreate: f('int cuStreamCreate(uint64_t *stream, unsigned int flags)'),
    cuStreamDestroy: v('cuStreamDestroy', 'uintptr_t stream'),
    cuStreamSynchronize: f('int cuStreamSynchronize(uintptr_t stream)'),
    cuEventCreate: f('int cuEventCreate(uint64_t *ev, unsigned int flags)'),
    cuEventDestroy: v('cuEventDestroy', 'uintptr_t ev'),
    cuEventRecord: f('int cuEventRecord(uintptr_t ev, uintptr_t stream)'),
    cuEventSynchronize: f('int cuEventSynchronize(uintptr_t ev)'),
    cuEventElapsedTime: v('cuEventElapsedTime', 'float *ms, uintptr_t start, uintptr_t end'),
    cuModuleLoadData: f('int cuModuleLoadData(uint64_t *mod, const void *image)'),
    cuModuleUnload: f('int cuModuleUnload(uintptr_t mod)'),
    cuModuleGetFunction: f('int cuModuleGetFunction(uint64_t *fn, uintptr_t mod, const char *name)'),
    cuFuncSetAttribute: f('int cuFuncSetAttribute(uintptr_t fn, int attr, int value)'),
    cuFuncGetAttribute: f('int cuFuncGetAttribute(int *v, int attr, uintptr_t fn)'),
    cuLaunchKernel: f(
      'int cuLaunchKernel(uintptr_t fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem, uintptr_t stream, uintptr_t params, uintptr_t extra)',
    ),
    cuLaunchKernelEx: optionalFunc(
      lib,
      'int cuLaunchKernelEx(uintptr_t config, uintptr_t fn, uintptr_t params, uintptr_t extra)',
    ),
    cuGetErrorName: lib.func('int cuGetErrorName(int err, _Out_ const char **name)') as (
      code: number,
      out: (string | null)[],
    ) => number,
  }
  const errorName = (code: number): string => {
    const out: (string | null)[] = [null]
    try {
      if (raw.cuGetErrorName(code, out) === 0 && out[0]) return out[0]
    } catch {
      // fall through to the number alone
    }
    return `CUDA_ERROR_${code}`
  }
  const check = (call: string, code: number) => {
    if (code !== 0) throw new CudaCallError(call, code, errorName(code))
  }
  const i32 = new Int32Array(1)
  const u64 = new BigUint64Array(1)
  const u64b = new BigUint64Array(1)
  const f32 = new Float32Array(1)
  const outI = (call: string, fn: () => number) => {
    check(call, fn())
    return i32[0]
  }
  const outP = (call: string, fn: () => number) => {
    check(call, fn())
    return u64[0]
  }
  return {
    path,
    init: () => check('cuInit', raw.cuInit(0)),
    driverVersion: () => outI('cuDriverGetVersion', () => raw.cuDriverGetVersion(i32)),
    deviceCount: () => outI('cuDeviceGetCount', () => raw.cuDeviceGetCount(i32)),
    device: (ordinal) => outI('cuDeviceGet', () => raw.cuDeviceGet(i32, ordinal)),
    deviceName: (dev) => {
      const buf = Buffer.alloc(256)
      check('cuDeviceGetName', raw.cuDeviceGetName(buf, 256, dev))
      const end = buf.indexOf(0)
      return buf.subarray(0, end < 0 ? 256 : end).toString('utf8')
    },
    deviceAttribute: (attr, dev) =>
      outI(`cuDeviceGetAttribute(${attr})`, () => raw.cuDeviceGetAttribute(i32, attr, dev)),
    deviceTotalMem: (dev) => Number(outP('cuDeviceTotalMem', () => raw.cuDeviceTotalMem(u64, dev))),
    primaryContextRetain: (dev) =>
      outP('cuDevicePrimaryCtxRetain', () => raw.cuDevicePrimaryCtxRetain(u64, dev)),
    primaryContextRelease: (dev) => check('cuDevicePrimaryCtxRelease', raw.cuDevicePrimaryCtxRelease(dev)),
    contextSetCurrent: (ctx) => check('cuCtxSetCurrent', raw.cuCtxSetCurrent(ctx)),
    contextSynchronize: () => check('cuCtxSynchronize', raw.cuCtxSynchronize()),
    memAlloc: (bytes) => outP('cuMemAlloc', () => raw.cuMemAlloc(u64, bytes)),
    memFree: (ptr) => check('cuMemFree', raw.cuMemFree(ptr)),
    memGetInfo: () => {
      check('cuMemGetInfo', raw.cuMemGetInfo(u64, u64b))
      return { free: Number(u64[0]), total: Number(u64b[0]) }
    },
    memcpyHtoDAsync: (dst, src, bytes, stream) =>
      check('cuMemcpyHtoDAsync', raw.cuMemcpyHtoDAsync(dst, src, bytes, stream)),
    memcpyDtoHAsync: (dst, src, bytes, stream) =>
      check('cuMemcpyDtoHAsync', raw.cuMemcpyDtoHAsync(dst, src, bytes, stream)),
    memcpyDtoDAsync: (dst, src, bytes, stream) =>
      check('cuMemcpyDtoDAsync', raw.cuMemcpyDtoDAsync(dst, src, bytes, stream)),
    memsetD8Async: (ptr, value, count, stream) =>
      check('cuMemsetD8Async', raw.cuMemsetD8Async(ptr, value, count, stream)),
    memsetD16Async: (ptr, value, count, stream) =>
      check('cuMemsetD16Async', raw.cuMemsetD16Async(ptr, value, count, stream)),
    memsetD32Async: (ptr, value, count, stream) =>
      check('cuMemsetD32Async', raw.cuMemsetD32Async(ptr, value, count, stream)),
    streamCreate: (flags) => outP('cuStreamCreate', () => raw.cuStreamCreate(u64, flags)),
    streamDestroy: (s) => check('cuStreamDestroy', raw.cuStreamDestroy(s)),
    streamSynchronize: (s) => check('cuStreamSynchronize', raw.cuStreamSynchronize(s)),
    eventCreate: (flags) => outP('cuEventCreate', () => raw.cuEventCreate(u64, flags)),
    eventDestroy: (e) => check('cuEventDestroy', raw.cuEventDestroy(e)),
    eventRecord: (e, s) => check('cuEventRecord', raw.cuEventRecord(e, s)),
    eventSynchronize: (e) => check('cuEventSynchronize', raw.cuEventSynchronize(e)),
    eventElapsedMs: (a, b) => {
      check('cuEventElapsedTime', raw.cuEventElapsedTime(f32, a, b))
      return f32[0]
    },
    moduleLoadData: (image) => outP('cuModuleLoadData', () => raw.cuModuleLoadData(u64, image)),
    moduleUnload: (m) => check('cuModuleUnload', raw.cuModuleUnload(m)),
    moduleGetFunction: (m, name) =>
      outP(`cuModuleGetFunction(${name})`, () => raw.cuModuleGetFunction(u64, m, name)),
    funcSetAttribute: (fn, attr, value) =>
      check(`cuFuncSetAttribute(${attr})`, raw.cuFuncSetAttribute(fn, attr, value)),
    funcGetAttribute: (fn, attr) =>
      outI(`cuFuncGetAttribute(${attr})`, () => raw.cuFuncGetAttribute(i32, attr, fn)),
    launchKernel: (fn, grid, block, sharedBytes, stream, params) =>
      check(
        'cuLaunchKernel',
        raw.cuLaunchKernel(
          fn,
          grid[0],
          grid[1],
          grid[2],
          block[0],
          block[1],
          block[2],
          sharedBytes,
          stream,
          params,
          0n,
        ),
      ),
    launchKernelEx: raw.cuLaunchKernelEx
      ? (config, fn, params) => check('cuLaunchKernelEx', raw.cuLaunchKernelEx!(config, fn, params, 0n))
      : undefined,
    errorName,
  }
}
