import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { bundleInfo } from './versions.js'

/**
 * The packages the bench loads only when asked for, each behind a literal import() so bundlers
 * include them when they are built and the bench still starts when they are not. They are
 * typed as unknown: their APIs are checked at run time by the code that uses them, which then
 * reports a missing export as the reason a backend or mechanism is unavailable.
 */
export const OPTIONAL_PACKAGES = {
  '@attnkit/backend-webgpu': (): Promise<unknown> => import('@attnkit/backend-webgpu'),
  '@attnkit/backend-cuda': (): Promise<unknown> => import('@attnkit/backend-cuda'),
  '@attnkit/mosa': (): Promise<unknown> => import('@attnkit/mosa'),
  '@attnkit/tpa': (): Promise<unknown> => import('@attnkit/tpa'),
  '@attnkit/lte': (): Promise<unknown> => import('@attnkit/lte'),
} as const

export type OptionalPackage = keyof typeof OPTIONAL_PACKAGES

/** Imports an optional package; on failure, throws an error whose message says why and the fix. */
export async function importOptional(name: OptionalPackage): Promise<Record<string, unknown>> {
  try {
    return (await OPTIONAL_PACKAGES[name]()) as Record<string, unknown>
  } catch (e) {
    throw new Error(explainImportFailure(name, e as Error & { code?: string }))
  }
}

function explainImportFailure(name: string, e: Error & { code?: string }): string {
  const msg = firstLine(e.message)
  const leftOut = bundleInfo()?.leftOut[name]
  if (leftOut)
    return `${name} is not in this bundle: when it was bundled, ${name} was ${leftOut}; then bundle again`
  if (
    e.code === 'ERR_MODULE_NOT_FOUND' ||
    /Cannot find (package|module)|Failed to (load|resolve)/i.test(msg)
  ) {
    if (msg.includes(name) && /dist/.test(msg))
      return `${name} is not built (${msg}); run: pnpm --filter ${name} build`
    if (msg.includes(`'${name}'`) || msg.includes(`"${name}"`))
      return `${name} is not installed or has no built entry point (${msg}); run: pnpm --filter ${name} build`
  }
  return `${name} failed to load: ${msg}`
}

/** The first non-blank line of a message, cut at `max` characters. */
export function firstLine(s: string, max = 300): string {
  const line = s.split('\n').find((l) => l.trim() !== '') ?? s
  return line.length > max ? `${line.slice(0, max)}...` : line
}

/** Newest modification time of the files under dir (0 when it does not exist). */
function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0
  let newest = 0
  for (const f of readdirSync(dir, { recursive: true, withFileTypes: true }))
    if (f.isFile()) newest = Math.max(newest, statSync(path.join(f.parentPath, f.name)).mtimeMs)
  return newest
}

/**
 * " (its dist/ is older than its src/: ...)" when a workspace package's build is stale, which is
 * the usual reason an export is missing while its author is still adding it; '' otherwise.
 */
export function staleBuildHint(pkg: string): string {
  if (bundleInfo()) return ''
  try {
    const entry = createRequire(import.meta.url).resolve(pkg)
    const root = path.dirname(path.dirname(entry))
    if (newestMtime(path.join(root, 'src')) > statSync(entry).mtimeMs)
      return ` (its dist/ is older than its src/: rebuild with pnpm --filter ${pkg} build)`
  } catch {
    // Not resolvable: the import itself reports that.
  }
  return ''
}
