import {
  type Backend,
  BackendError,
  byteSize,
  type DType,
  type KernelArgs,
  type ProgramSpec,
  registerKernel,
  registerNonDifferentiable,
  type TensorInfo,
} from '@attnkit/core'
import { fusedBackends, fusedLanguage, type Language, setFusedLanguage } from './languages.js'
import {
  CACHE_WRITE_KERNEL,
  COPY_KERNEL,
  DECODE_COMBINE_KERNEL,
  DECODE_PARTIAL_KERNEL,
  DEVICE_DELAY_KERNEL,
} from './names.js'
import {
  CUDA_COMBINE,
  CUDA_SUB,
  cudaDecodeLayout,
  cudaMmaLayout,
  type DecodeShape,
  wgslDecodeLayout,
} from './plan.js'
import { cudaSource } from './tpa.cu.js'
import { wgslCacheWrite, wgslCopy, wgslDecodeCombine, wgslDecodePartial } from './tpa.wgsl.js'

/** Dtypes the fused kernels take on each backend. */
export function fusedDTypes(backendName: string): DType[] {
  const lang = fusedLanguage(backendName)
  if (lang === 'cuda') return ['float32', 'float16', 'bfloat16']
  if (lang === 'wgsl') return ['float32']
  return []
}

const DT_DEFINE: Partial<Record<DType, string>> = {
  float32: 'DT_F32',
  float16: 'DT_F16',
  bfloat16: 'DT_BF16',
}

function dtypeDefine(dtype: DType): Record<string, number> {
  const d = DT_DEFINE[dtype]
  if (!d)
    throw new BackendError(`tpa cuda kernels: dtype ${dtype} is not supported (float32, float16, bfloat16)`)
  return { [d]: 1 }
}

function runProgram(backend: Backend, spec: ProgramSpec): TensorInfo[] {
  if (typeof backend.runProgram !== 'function')
    throw new BackendError(`tpa: backend '${backend.name}' cannot run programs (it has no runProgram)`)
  return backend.runProgram(spec)
}

const u32 = (value: number) => ({ type: 'u32' as const, value })
const f32 = (value: number) => ({ type: 'f32' as const, value })

export interface DecodePartialAttrs {
  shape: DecodeShape
  /** CUDA only: which decode kernel (see cudaDecodeKernel). */
  kernel?: 'fma' | 'mma'
  splits: number
  tokensPerSplit: number
  /** log2(e) / sqrt(d_h) / R_K: scores come out in the log2 domain. */
  scoreScale: number
  /** CUDA, tensor-core kernel: launch as a programmatic dependent (DecodeTuning.programmaticLaunch). */
  programmaticLaunch?: boolean
}

type DecodePartialInputs = {
  q: TensorInfo
  store: TensorInfo
  tail: TensorInfo
  aKc?: TensorInfo
  aVc?: TensorInfo
}

function decodePartial(
  lang: Language,
  { inputs, attrs, backend }: KernelArgs<Backend, DecodePartialAttrs, DecodePartialInputs>,
): TensorInfo[] {
  const { shape: s, splits, tokensPerSplit, scoreScale } = attrs
  const ins = [inputs.q, inputs.store, inputs.tail]
  if (inputs.aKc) ins.push(inputs.aKc)
  if (inputs.aVc) ins.push(inputs.aVc)
  const base = {
    name: DECODE_PARTIAL_KERNEL,
    inputs: ins,
    outputs: [
      { shape: [s.batch, splits, s.heads, s.headDim], dtype: 'float32' as const },
      { shape: [s.batch, splits, s.heads, 2], dtype: 'float32' as const },
    ],
    scalars: [
      u32(s.storeLen),
      u32(s.tailLen),
      u32(tokensPerSplit),
      u32(s.storeCap),
      u32(s.tailCap),
      u32(splits),
      f32(scoreScale),
    ],
    grid: [splits, s.batch, 1] as const,
  }
  if (lang === 'wgsl') {
    const l = wgslDecodeLayout(s)
    if (typeof l === 'string') throw new BackendError(`tpa.decodePartial (wgsl): ${l}`)
    return runProgram(backend, {
      ...base,
      language: 'wgsl',
      source: wgslDecodePartial(s, l),
      entryPoint: 'main',
    })
  }
  if (attrs.kernel === 'mma') {
    const m = cudaMmaLayout(s)
    if (typeof m === 'string') throw new BackendError(`tpa.decodePartial (cuda, tensor cores): ${m}`)
    const source = cudaSource({
      ...dtypeDefine(s.dtype),
      TPA_DECODE_MMA: 1,
      H: s.heads,
      D: s.headDim,
      R: s.kRank,
      REC: s.layout.size,
      OFF_AK: s.layout.aK!.offset,
      OFF_BK: s.layout.bK.offset,
      OFF_AV: s.layout.aV!.offset,
      OFF_BV: s.layout.bV.offset,
      P_B: m.pB,
      // griddepcontrol.wait at entry, so the launch may overlap the previous kernel's end.
      TPA_PDL: 1,
    })
    return runProgram(backend, {
      ...base,
      inputs: [inputs.q, inputs.store, inputs.tail],
      language: 'cuda',
      source,
      entryPoint: 'tpa_decode_partial_mma',
      block: [128, 1, 1],
      programmaticLaunch: attrs.programmaticLaunch === true,
    })
  }
  const l = cudaDecodeLayout(s)
  if (typeof l === 'string') throw new BackendError(`tpa.decodePartial (cuda): ${l}`)
  const source = cudaSource({
    ...dtypeDefine(s.dtype),
    TPA_DECODE: 1,
    H: s.heads,
    D: s.headDim,
    RK: s.kRank,
    RV: s.vRank,
    REC: s.layout.size,
    OFF_AK: s.layout.aK?.offset ?? 0,
    OFF_BK: s.layout.bK.offset,
    OFF_AV: s.layout.aV?.offset ?? 0,
    OFF_BV: s.layout.bV.offset,
    SO_AK: Math.max(0, l.so.aK),
    SO_BK: l.so.bK,
    SO_AV: Math.max(0, l.so.aV),
    SO_BV: l.so.bV,
    REC_PAD: l.recPad,
    TILE: l.tile,
    SUB: CUDA_SUB,
    NT: l.threads,
    WS_STRIDE: l.wsStride,
    VEC: l.vec,
    AK_FIXED: s.layout.aK ? 0 : 1,
    AV_FIXED: s.layout.aV ? 0 : 1,
  })
  return runProgram(backend, {
    ...base,
    language: 'cuda',
    source,
    entryPoint: 'tpa_decode_partial',
    block: [l.threads, 1, 1],
  })
}

export interface DecodeCombineAttrs {
  shape: DecodeShape
  splits: number
  outScale: number
  /** CUDA: launch as a programmatic dependent of the partial launch (DecodeTuning.programmaticLaunch). */
  programmaticLaunch?: boolean
}

function decodeCombine(
  lang: Language,
  {
    inputs,
    attrs,
    backend,
  }: KernelArgs<Backend, DecodeCombineAttrs, { partO: TensorInfo; partML: TensorInfo }>,
): TensorInfo {
  const { shape: s, splits, outScale } = attrs
  const base = {
    name: DECODE_COMBINE_KERNEL,
    inputs: [inputs.partO, inputs.partML],
    outputs: [{ shape: [s.batch, s.heads, s.headDim], dtype: s.dtype }],
    scalars: [u32(splits), f32(outScale)],
    grid: [s.heads, s.batch, 1] as const,
  }
  if (lang === 'wgsl')
    return runProgram(backend, {
      ...base,
      language: 'wgsl',
      source: wgslDecodeCombine(s),
      entryPoint: 'main',
    })[0]
  const { chunk, threads } = CUDA_COMBINE
  if (s.headDim % chunk !== 0)
    throw new BackendError(`tpa.decodeCombine (cuda): headDim ${s.headDim} is not a multiple of ${chunk}`)
  const source = cudaSource({
    ...dtypeDefine(s.dtype),
    TPA_COMBINE: 1,
    H: s.heads,
    D: s.headDim,
    COMBINE_CHUNK: chunk,
    COMBINE_THREADS: threads,
    TPA_PDL: 1,
  })
  return runProgram(backend, {
    ...base,
    language: 'cuda',
    source,
    entryPoint: 'tpa_decode_combine',
    grid: [s.heads * (s.headDim / chunk), s.batch, 1],
    block: [threads, 1, 1],
    // It waits (griddepcontrol.wait) for the partial launch's writes before reading them.
    programmaticLaunch: attrs.programmaticLaunch === true,
  })[0]
}

function cacheWrite(
  lang: Language,
  { inputs, attrs, backend }: KernelArgs<Backend, { offset: number }, { store: TensorInfo; src: TensorInfo }>,
): TensorInfo {
  const { store, src } = inputs
  const [B, cap, rec] = store.shape
  const n = src.shape[1]
  const { offset } = attrs
  const base = {
    name: CACHE_WRITE_KERNEL,
    inputs: [store, src],
    outputs: [{ shape: [...store.shape], dtype: store.dtype }],
    scalars: [u32(offset), u32(n), u32(cap)],
  }
  if (lang === 'wgsl') {
    const used = (offset + n) * rec
    return runProgram(backend, {
      ...base,
      language: 'wgsl',
      source: wgslCacheWrite(rec),
      entryPoint: 'main',
      grid: [Math.max(1, Math.min(Math.ceil(used / 256), 4096)), B, 1],
    })[0]
  }
  const rowBytes = rec * byteSize(store.dtype)
  const vec = rowBytes % 16 === 0
  const rowUnits = vec ? rowBytes / 16 : rec
  const used = (offset + n) * rowUnits
  return runProgram(backend, {
    ...base,
    language: 'cuda',
    source: cudaSource({
      ...dtypeDefine(store.dtype),
      TPA_CACHE_WRITE: 1,
      ROW_UNITS: rowUnits,
      CW_VEC: vec ? 1 : 0,
    }),
    entryPoint: 'tpa_cache_write',
    grid: [Math.max(1, Math.min(Math.ceil(used / 256), 4096)), B, 1],
    block: [256, 1, 1],
  })[0]
}

function copy(
  lang: Language,
  { inputs, backend }: KernelArgs<Backend, object, { x: TensorInfo }>,
): TensorInfo {
  const { x } = inputs
  const bytes = x.shape.reduce((a, d) => a * d, 1) * byteSize(x.dtype)
  const base = { name: COPY_KERNEL, inputs: [x], outputs: [{ shape: [...x.shape], dtype: x.dtype }] }
  if (lang === 'wgsl') {
    if (x.dtype !== 'float32') throw new BackendError(`tpa.copy (wgsl): expected float32, got ${x.dtype}`)
    const n = bytes / 4
    return runProgram(backend, {
      ...base,
      language: 'wgsl',
      source: wgslCopy(),
      entryPoint: 'main',
      scalars: [u32(n)],
      grid: [Math.max(1, Math.min(Math.ceil(n / 256), 4096)), 1, 1],
    })[0]
  }
  if (bytes % 16 !== 0)
    throw new BackendError(`tpa.copy (cuda): expected a multiple of 16 bytes, got ${bytes}`)
  const n16 = bytes / 16
  return runProgram(backend, {
    ...base,
    language: 'cuda',
    source: cudaSource({ DT_F32: 1 }),
    entryPoint: 'tpa_copy',
    scalars: [u32(n16)],
    grid: [Math.max(1, Math.min(Math.ceil(n16 / 256), 132 * 16)), 1, 1],
    block: [256, 1, 1],
  })[0]
}

/** CUDA: spins one thread for `micros` microseconds of GPU time (the bench queues timed work behind it). */
function deviceDelay(backend: Backend, micros: number): TensorInfo {
  if (!Number.isInteger(micros) || micros < 0 || micros > 0xffffffff)
    throw new BackendError(`tpa.deviceDelay: micros expected an unsigned 32-bit integer, got ${micros}`)
  return runProgram(backend, {
    name: DEVICE_DELAY_KERNEL,
    language: 'cuda',
    source: cudaSource({ DT_F32: 1, TPA_DEVICE_DELAY: 1 }),
    entryPoint: 'tpa_device_delay',
    inputs: [],
    outputs: [{ shape: [1], dtype: 'float32' }],
    scalars: [u32(micros)],
    grid: [1, 1, 1],
    block: [1, 1, 1],
  })[0]
}

const registered = new Set<string>()

/**
 * Registers the fused kernels (tpa.decodePartial, tpa.decodeCombine, tpa.cacheWrite, tpa.copy;
 * tpa.deviceDelay for CUDA)
 * for a backend name running `language` programs through runProgram: 'webgpu' and 'cuda' are
 * built in; this adds others (e.g. a second CUDA backend registered under its own name).
 */
export function registerFusedKernels(backendName: string, language: Language): void {
  setFusedLanguage(backendName, language)
  if (registered.has(backendName)) return
  registered.add(backendName)
  const lang = language
  registerKernel<Backend, DecodePartialAttrs, DecodePartialInputs>({
    kernelName: DECODE_PARTIAL_KERNEL,
    backendName,
    kernelFunc: (args) => decodePartial(lang, args),
  })
  registerKernel<Backend, DecodeCombineAttrs, { partO: TensorInfo; partML: TensorInfo }>({
    kernelName: DECODE_COMBINE_KERNEL,
    backendName,
    kernelFunc: (args) => decodeCombine(lang, args),
  })
  registerKernel<Backend, { offset: number }, { store: TensorInfo; src: TensorInfo }>({
    kernelName: CACHE_WRITE_KERNEL,
    backendName,
    kernelFunc: (args) => cacheWrite(lang, args),
  })
  registerKernel<Backend, object, { x: TensorInfo }>({
    kernelName: COPY_KERNEL,
    backendName,
    kernelFunc: (args) => copy(lang, args),
  })
  // WGSL has no clock to spin on: the bench times WebGPU as issued.
  if (lang === 'cuda')
    registerKernel<Backend, { micros: number }, Record<string, never>>({
      kernelName: DEVICE_DELAY_KERNEL,
      backendName,
      kernelFunc: ({ attrs, backend }) => deviceDelay(backend, attrs.micros),
    })
  registerNonDifferentiable(
    DECODE_PARTIAL_KERNEL,
    DECODE_COMBINE_KERNEL,
    CACHE_WRITE_KERNEL,
    COPY_KERNEL,
    DEVICE_DELAY_KERNEL,
  )
}

/** Registers the fused kernels for every known backend name (idempotent; called before first use). */
export function ensureKernelsRegistered(): void {
  for (const [backendName, language] of fusedBackends()) registerFusedKernels(backendName, language)
}
