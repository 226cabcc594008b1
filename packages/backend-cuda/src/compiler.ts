import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { BackendError } from '@attnkit/core'
import type { Nvrtc } from './ffi/nvrtc.js'

export type Defines = Readonly<Record<string, string | number>>

/** Compiler options for a source: architecture, includes, defines (sorted, so the key is stable). */
export function compileOptions(arch: string, includeDirs: readonly string[], defines: Defines): string[] {
  const opts = [`--gpu-architecture=${arch}`, '-std=c++17', '-default-device', '-DATTNKIT_NVRTC=1']
  for (const d of includeDirs) opts.push(`-I${d}`)
  for (const k of Object.keys(defines).sort()) opts.push(`-D${k}=${defines[k]}`)
  return opts
}

/** The disk-cache key: source, the headers it can include, options, and the compiler's version. */
export function cacheKey(
  source: string,
  headers: string,
  options: readonly string[],
  compiler: string,
): string {
  return createHash('sha256')
    .update(JSON.stringify([source, headers, options, compiler]))
    .digest('hex')
    .slice(0, 32)
}

export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.ATTNKIT_CUDA_CACHE) return env.ATTNKIT_CUDA_CACHE
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'attnkit', 'cuda')
}

export interface CompileStats {
  compiled: number
  cacheHits: number
  compileMs: number
}

/**
 * NVRTC compilation to a cubin for the device's own architecture, cached on disk by source hash
 * + architecture + options (+ NVRTC version), so a second process loads instead of compiling.
 */
export class KernelCompiler {
  readonly stats: CompileStats = { compiled: 0, cacheHits: 0, compileMs: 0 }
  private readonly headers: string
  private readonly compilerId: string

  constructor(
    private readonly nvrtc: Nvrtc,
    readonly arch: string,
    private readonly kernelsDir: string,
    private readonly extraIncludes: readonly string[],
    private readonly cacheDir: string | false,
  ) {
    this.headers = readHeaders(kernelsDir)
    const v = nvrtc.version()
    this.compilerId = `nvrtc-${v.major}.${v.minor}`
  }

  /** Reads a kernel file shipped in the package. */
  source(file: string): string {
    try {
      return readFileSync(join(this.kernelsDir, file), 'utf8')
    } catch (e) {
      throw new BackendError(
        `CUDA backend: kernel source ${file} not found in ${this.kernelsDir} (${(e as Error).message}). ` +
          'Fix: reinstall @attnkit/backend-cuda (its kernels/ folder ships the CUDA C sources), or set ATTNKIT_CUDA_KERNELS_DIR.',
      )
    }
  }

  compile(name: string, source: string, defines: Defines): Uint8Array {
    const options = compileOptions(this.arch, [this.kernelsDir, ...this.extraIncludes], defines)
    const key = cacheKey(source, this.headers, options, this.compilerId)
    const file = this.cacheDir
      ? join(this.cacheDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${key}.cubin`)
      : ''
    if (file) {
      try {
        const cached = readFileSync(file)
        this.stats.cacheHits++
        return new Uint8Array(cached.buffer, cached.byteOffset, cached.byteLength)
      } catch {
        // not cached yet
      }
    }
    const t0 = performance.now()
    const r = this.nvrtc.compile(source, name, options)
    this.stats.compileMs += performance.now() - t0
    this.stats.compiled++
    if (!r.ok || !r.cubin) {
      throw new BackendError(
        `CUDA backend: NVRTC failed to compile ${name} for ${this.arch} (options ${options.join(' ')}):\n${r.log}`,
      )
    }
    if (file && this.cacheDir) {
      try {
        mkdirSync(this.cacheDir, { recursive: true })
        const tmp = `${file}.${process.pid}.tmp`
        writeFileSync(tmp, r.cubin)
        renameSync(tmp, file)
      } catch {
        // A read-only cache folder only costs the next process a compile.
      }
    }
    return r.cubin
  }
}

function readHeaders(dir: string): string {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cuh'))
      .sort()
      .map((f) => `${f}\n${readFileSync(join(dir, f), 'utf8')}`)
      .join('\n')
  } catch {
    return ''
  }
}
