import { type Backend, listBackends, backend as startBackend } from '@attnkit/core'
import { firstLine, importOptional, type OptionalPackage } from './optional-imports.js'
import type { BackendReport } from './schema.js'
import { packageVersion } from './versions.js'

export const BACKEND_NAMES = ['cpu', 'webgpu', 'cuda'] as const

const PACKAGES: Record<string, OptionalPackage | '@attnkit/core'> = {
  cpu: '@attnkit/core',
  webgpu: '@attnkit/backend-webgpu',
  cuda: '@attnkit/backend-cuda',
}

export interface LoadedBackend {
  name: string
  backend?: Backend
  /** Why it is not available: the import error or the backend's own start-up error. */
  reason?: string
}

/**
 * Imports and starts each named backend. A backend that cannot load or start is returned with
 * the reason (never thrown), so the caller can report it and go on with the others.
 */
export async function loadBackends(names: readonly string[]): Promise<LoadedBackend[]> {
  const out: LoadedBackend[] = []
  for (const name of names) out.push(await loadBackend(name))
  return out
}

async function loadBackend(name: string): Promise<LoadedBackend> {
  const pkg = PACKAGES[name]
  if (!pkg) return { name, reason: `unknown backend '${name}' (expected one of ${BACKEND_NAMES.join(', ')})` }
  if (pkg !== '@attnkit/core') {
    try {
      await importOptional(pkg)
    } catch (e) {
      return { name, reason: (e as Error).message }
    }
    if (!listBackends().some((b) => b.name === name))
      return {
        name,
        reason: `${pkg} loaded but registered no backend named '${name}' (registered: ${listBackends()
          .map((b) => b.name)
          .join(', ')})`,
      }
  }
  try {
    return { name, backend: await startBackend(name) }
  } catch (e) {
    const listed = listBackends().find((b) => b.name === name)?.reason
    // In full: a backend's start-up error names what it tried and the fix.
    return { name, reason: firstLine(listed ?? (e as Error).message, 2000) }
  }
}

export function backendReport(loaded: LoadedBackend): BackendReport {
  const version = packageVersion(PACKAGES[loaded.name] ?? '')
  if (!loaded.backend) return { name: loaded.name, status: 'unavailable', reason: loaded.reason, version }
  const info = loaded.backend.info()
  return {
    name: loaded.name,
    status: 'ok',
    device: info.device,
    details: info.details,
    features: info.features,
    peak: info.peak
      ? {
          flopsPerSecond: info.peak.flopsPerSecond as Record<string, number> | undefined,
          bytesPerSecond: info.peak.bytesPerSecond,
        }
      : undefined,
    version,
  }
}
