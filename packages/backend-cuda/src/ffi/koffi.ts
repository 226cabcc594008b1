import type { BackendError } from '@attnkit/core'

/** The subset of koffi the backend uses (imported lazily so that importing the package never loads it). */
export interface KoffiLike {
  load(path: string): KoffiLibrary
  alloc(type: string, length: number): bigint
  free(ptr: bigint): void
  view(ptr: bigint, length: number): ArrayBuffer
}

export interface KoffiLibrary {
  func(definition: string): (...args: unknown[]) => unknown
}

let cached: KoffiLike | undefined

export async function loadKoffi(makeError: (msg: string) => BackendError): Promise<KoffiLike> {
  if (cached) return cached
  try {
    const mod = (await import('koffi')) as unknown as { default?: KoffiLike } & KoffiLike
    cached = (mod.default ?? mod) as KoffiLike
    return cached
  } catch (e) {
    throw makeError(
      `CUDA backend: could not load koffi, the FFI it calls CUDA through (${(e as Error).message}). ` +
        'Fix: reinstall @attnkit/backend-cuda so that koffi and its prebuilt binary for this platform ' +
        '(@koromix/koffi-<os>-<arch>) are installed.',
    )
  }
}

/** Binds `definition` trying each symbol suffix in turn (e.g. cuMemAlloc_v2, then cuMemAlloc). */
export function bindVersioned(
  lib: KoffiLibrary,
  ret: string,
  name: string,
  params: string,
  suffixes: readonly string[],
): (...args: unknown[]) => unknown {
  let last: unknown
  for (const s of suffixes) {
    try {
      return lib.func(`${ret} ${name}${s}(${params})`)
    } catch (e) {
      last = e
    }
  }
  throw last
}
