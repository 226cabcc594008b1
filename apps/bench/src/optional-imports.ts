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

export function firstLine(s: string): string {
  const line = s.split('\n').find((l) => l.trim() !== '') ?? s
  return line.length > 300 ? `${line.slice(0, 300)}...` : line
}
