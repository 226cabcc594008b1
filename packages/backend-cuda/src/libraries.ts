import { existsSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { BackendError } from '@attnkit/core'

/** The three native libraries the backend drives. */
export type CudaLibrary = 'cuda' | 'nvrtc' | 'cublasLt'

/** Where to look for the libraries, beyond the usual places. */
export interface CudaLibraryOptions {
  /** Full paths, tried before any search. */
  cuda?: string
  nvrtc?: string
  cublasLt?: string
  /** Extra directories searched first (ATTNKIT_CUDA_LIB_DIR adds to these, colon-separated). */
  libDirs?: string[]
}

const SONAMES: Record<CudaLibrary, string[]> = {
  cuda: ['libcuda.so.1', 'libcuda.so'],
  nvrtc: ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'],
  cublasLt: ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'],
}

const LABELS: Record<CudaLibrary, string> = {
  cuda: 'libcuda (the CUDA driver API)',
  nvrtc: 'libnvrtc (NVRTC, runtime compilation of CUDA C)',
  cublasLt: 'libcublasLt (cuBLASLt, the matmul library)',
}

const FIXES: Record<CudaLibrary, string> = {
  cuda:
    'install the NVIDIA driver (libcuda.so.1 ships with it; in a container, run it with the NVIDIA container toolkit, e.g. --gpus all), ' +
    'or set ATTNKIT_CUDA_LIB_DIR to the folder holding libcuda.so.1, or pass createCudaBackend({ libraries: { cuda: "/path/libcuda.so.1" } })',
  nvrtc:
    'install NVRTC from the CUDA toolkit (12 or 13; e.g. apt install cuda-nvrtc-13-0, or pip install nvidia-cuda-nvrtc), ' +
    'then set ATTNKIT_CUDA_LIB_DIR to the folder holding libnvrtc.so.13, or pass createCudaBackend({ libraries: { nvrtc: "/path/libnvrtc.so.13" } })',
  cublasLt:
    'install cuBLAS from the CUDA toolkit (12 or 13; e.g. apt install libcublas-13-0, or pip install nvidia-cublas), ' +
    'then set ATTNKIT_CUDA_LIB_DIR to the folder holding libcublasLt.so.13, or pass createCudaBackend({ libraries: { cublasLt: "/path/libcublasLt.so.13" } })',
}

/** Globs like /usr/local/lib/python3.*\/dist-packages/nvidia/*\/lib, expanded one level at a time. */
function expand(pattern: string, exists: (p: string) => boolean, list: (p: string) => string[]): string[] {
  const parts = pattern.split('/').filter((p) => p !== '')
  let paths = ['/']
  for (const part of parts) {
    const next: string[] = []
    for (const base of paths) {
      if (!part.includes('*')) {
        const p = join(base, part)
        if (exists(p)) next.push(p)
        continue
      }
      const re = new RegExp(`^${part.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`)
      for (const name of list(base)) if (re.test(name)) next.push(join(base, name))
    }
    paths = next
    if (paths.length === 0) break
  }
  return paths
}

export interface SearchEnvironment {
  env: Record<string, string | undefined>
  exists(path: string): boolean
  list(dir: string): string[]
  home: string
}

export const realSearchEnvironment = (): SearchEnvironment => ({
  env: process.env,
  exists: existsSync,
  list: (dir) => {
    try {
      return readdirSync(dir)
    } catch {
      return []
    }
  },
  home: homedir(),
})

/** Directories searched, in order: explicit, ATTNKIT_CUDA_LIB_DIR, CUDA_HOME, LD_LIBRARY_PATH, system, Python wheels. */
export function searchDirectories(opts: CudaLibraryOptions, se: SearchEnvironment): string[] {
  const dirs: string[] = [...(opts.libDirs ?? [])]
  for (const d of (se.env.ATTNKIT_CUDA_LIB_DIR ?? '').split(':')) if (d) dirs.push(d)
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDA_ROOT']) {
    const root = se.env[v]
    if (root) dirs.push(join(root, 'lib64'), join(root, 'targets/x86_64-linux/lib'), join(root, 'lib'))
  }
  for (const d of (se.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d)
  dirs.push(
    '/usr/local/cuda/lib64',
    '/usr/local/cuda/targets/x86_64-linux/lib',
    '/usr/local/nvidia/lib64',
    '/usr/local/nvidia/lib',
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib64',
    '/usr/lib/wsl/lib',
  )
  const wheelRoots = [
    '/usr/local/lib/python3*/dist-packages/nvidia',
    '/usr/lib/python3/dist-packages/nvidia',
    '/usr/local/lib/python3*/site-packages/nvidia',
    '/opt/*/.venv/lib/python3*/site-packages/nvidia',
    '/opt/conda/lib/python3*/site-packages/nvidia',
    `${se.home}/.local/lib/python3*/site-packages/nvidia`,
  ]
  for (const root of wheelRoots) {
    for (const nv of expand(root, se.exists, se.list)) {
      for (const sub of se.list(nv)) {
        dirs.push(join(nv, sub, 'lib'))
      }
    }
  }
  return [...new Set(dirs)]
}

/** A library that loaded, and where from. */
export interface LoadedLibrary<H> {
  handle: H
  path: string
}

/**
 * Tries the explicit path, then each soname in each directory, then each soname on the
 * dynamic loader's own search path. Throws a BackendError naming the library, every path
 * tried (with why it failed) and the fix.
 */
export function loadLibrary<H>(
  lib: CudaLibrary,
  opts: CudaLibraryOptions,
  load: (path: string) => H,
  se: SearchEnvironment = realSearchEnvironment(),
): LoadedLibrary<H> {
  const tried: string[] = []
  const attempt = (path: string, mustExist: boolean): LoadedLibrary<H> | undefined => {
    if (mustExist && !se.exists(path)) {
      tried.push(`${path} (not found)`)
      return undefined
    }
    try {
      return { handle: load(path), path }
    } catch (e) {
      tried.push(`${path} (${firstLine((e as Error).message)})`)
      return undefined
    }
  }
  const explicit = opts[lib]
  if (explicit) {
    const r = attempt(explicit, false)
    if (r) return r
  }
  for (const dir of searchDirectories(opts, se)) {
    for (const so of SONAMES[lib]) {
      const p = join(dir, so)
      if (!se.exists(p)) continue
      const r = attempt(p, true)
      if (r) return r
    }
  }
  for (const so of SONAMES[lib]) {
    const r = attempt(so, false)
    if (r) return r
  }
  const dirs = searchDirectories(opts, se)
  throw new BackendError(
    `CUDA backend: could not load ${LABELS[lib]}. Tried: ${tried.join('; ')}` +
      `${dirs.length ? `; searched folders: ${dirs.join(', ')}` : ''}. Fix: ${FIXES[lib]}.`,
  )
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 200)
}

/** The toolkit's include folder (for cuda_fp16.h / cuda_bf16.h), when one is installed. */
export function findCudaInclude(se: SearchEnvironment = realSearchEnvironment()): string | undefined {
  const roots = [se.env.CUDA_HOME, se.env.CUDA_PATH, '/usr/local/cuda']
  for (const r of roots) {
    if (!r) continue
    const inc = join(r, 'include')
    if (se.exists(join(inc, 'cuda_fp16.h'))) return inc
  }
  return undefined
}
