import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import type { MachineInfo } from './schema.js'

export const ATTNKIT_PACKAGES = [
  '@attnkit/core',
  '@attnkit/backend-webgpu',
  '@attnkit/backend-cuda',
  '@attnkit/mosa',
  '@attnkit/tpa',
  '@attnkit/lte',
  '@attnkit/bench',
] as const

/** Written beside the bundled cli.js by `bundle`: versions and commit at bundle time. */
export interface BundleInfo {
  createdAt: string
  packages: Record<string, string | null>
  git: { commit: string | null; dirty: boolean | null }
  included: Record<string, string>
  /** Optional packages not in the bundle, with why. */
  leftOut: Record<string, string>
}

/** Where a bundle keeps the CUDA backend's kernel sources, beside cli.js. */
export const CUDA_KERNELS_DIR = 'cuda-kernels'

/**
 * In a bundle, points the CUDA backend at the kernel sources shipped beside cli.js (unless the
 * environment already says where they are). Child processes inherit it.
 */
export function applyBundleEnvironment(): void {
  const info = bundleInfo()
  if (!info?.included[CUDA_KERNELS_DIR] || process.env.ATTNKIT_CUDA_KERNELS_DIR) return
  process.env.ATTNKIT_CUDA_KERNELS_DIR = fileURLToPath(new URL(`./${CUDA_KERNELS_DIR}`, import.meta.url))
}

let bundleInfoCache: BundleInfo | null | undefined

export function bundleInfo(): BundleInfo | null {
  if (bundleInfoCache === undefined) {
    const file = new URL('./bundle-info.json', import.meta.url)
    bundleInfoCache = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as BundleInfo) : null
  }
  return bundleInfoCache
}

const require = createRequire(import.meta.url)

/** The installed version of a package, or null when it cannot be found. */
export function packageVersion(name: string): string | null {
  const fromBundle = bundleInfo()?.packages[name]
  if (fromBundle !== undefined) return fromBundle
  if (name === '@attnkit/bench') {
    const own = new URL('../package.json', import.meta.url)
    return existsSync(own) ? (JSON.parse(readFileSync(own, 'utf8')) as { version: string }).version : null
  }
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string })
      .version
  } catch {
    return null
  }
}

export function packageVersions(): Record<string, string | null> {
  return Object.fromEntries(ATTNKIT_PACKAGES.map((p) => [p, packageVersion(p)]))
}

/** The commit of the repository the bench runs from (or was bundled from). */
export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  const b = bundleInfo()
  if (b) return b.git
  const cwd = new URL('.', import.meta.url).pathname
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    return { commit, dirty: status.trim() !== '' }
  } catch {
    return { commit: null, dirty: null }
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus()
  return {
    hostname: os.hostname(),
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    memoryBytes: os.totalmem(),
    node: process.versions.node,
  }
}
