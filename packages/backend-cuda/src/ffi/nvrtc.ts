import type { KoffiLibrary } from './koffi.js'
import { CudaCallError } from './status.js'

/** Result of one NVRTC compilation: the cubin, or the compiler's log on failure. */
export interface NvrtcResult {
  ok: boolean
  cubin?: Uint8Array
  log: string
}

export interface Nvrtc {
  readonly path: string
  version(): { major: number; minor: number }
  /** Architectures this NVRTC can target, e.g. [75, 80, 86, 89, 90, 100, 120]. */
  supportedArchs(): number[]
  compile(source: string, name: string, options: readonly string[]): NvrtcResult
}

export function bindNvrtc(lib: KoffiLibrary, path: string): Nvrtc {
  const f = (def: string) => lib.func(def) as (...a: unknown[]) => number
  const raw = {
    nvrtcVersion: f('int nvrtcVersion(int *major, int *minor)'),
    nvrtcGetNumSupportedArchs: f('int nvrtcGetNumSupportedArchs(int *n)'),
    nvrtcGetSupportedArchs: f('int nvrtcGetSupportedArchs(int *archs)'),
    nvrtcCreateProgram: f(
      'int nvrtcCreateProgram(uint64_t *prog, const char *src, const char *name, int numHeaders, const char **headers, const char **includeNames)',
    ),
    nvrtcCompileProgram: f('int nvrtcCompileProgram(uintptr_t prog, int numOptions, const char **options)'),
    nvrtcGetProgramLogSize: f('int nvrtcGetProgramLogSize(uintptr_t prog, size_t *size)'),
    nvrtcGetProgramLog: f('int nvrtcGetProgramLog(uintptr_t prog, char *log)'),
    nvrtcGetCUBINSize: f('int nvrtcGetCUBINSize(uintptr_t prog, size_t *size)'),
    nvrtcGetCUBIN: f('int nvrtcGetCUBIN(uintptr_t prog, char *cubin)'),
    nvrtcDestroyProgram: f('int nvrtcDestroyProgram(uint64_t *prog)'),
    nvrtcGetErrorString: lib.func('const char *nvrtcGetErrorString(int result)') as (code: number) => string,
  }
  const check = (call: string, code: number, detail?: string) => {
    if (code !== 0) {
      let name = `NVRTC_ERROR_${code}`
      try {
        name = raw.nvrtcGetErrorString(code) ?? name
      } catch {
        // keep the number
      }
      throw new CudaCallError(call, code, name, detail)
    }
  }
  const i32a = new Int32Array(1)
  const i32b = new Int32Array(1)
  const size = new BigUint64Array(1)
  return {
    path,
    version: () => {
      check('nvrtcVersion', raw.nvrtcVersion(i32a, i32b))
      return { major: i32a[0], minor: i32b[0] }
    },
    supportedArchs: () => {
      check('nvrtcGetNumSupportedArchs', raw.nvrtcGetNumSupportedArchs(i32a))
      const archs = new Int32Array(i32a[0])
      check('nvrtcGetSupportedArchs', raw.nvrtcGetSupportedArchs(archs))
      return [...archs]
    },
    compile: (source, name, options) => {
      const prog = new BigUint64Array(1)
      check('nvrtcCreateProgram', raw.nvrtcCreateProgram(prog, source, name, 0, null, null))
      try {
        const status = raw.nvrtcCompileProgram(prog[0], options.length, [...options])
        check('nvrtcGetProgramLogSize', raw.nvrtcGetProgramLogSize(prog[0], size))
        const logBuf = Buffer.alloc(Math.max(1, Number(size[0])))
        check('nvrtcGetProgramLog', raw.nvrtcGetProgramLog(prog[0], logBuf))
        const end = logBuf.indexOf(0)
        const log = logBuf.subarray(0, end < 0 ? logBuf.length : end).toString('utf8')
        if (status !== 0) return { ok: false, log }
        check('nvrtcGetCUBINSize', raw.nvrtcGetCUBINSize(prog[0], size))
        const cubin = new Uint8Array(Number(size[0]))
        check('nvrtcGetCUBIN', raw.nvrtcGetCUBIN(prog[0], cubin))
        return { ok: true, cubin, log }
      } finally {
        raw.nvrtcDestroyProgram(prog)
      }
    },
  }
}
