import {
  type Backend,
  backend,
  cast,
  getBackend,
  memory,
  type Rng,
  type Tensor,
  toBackend,
} from '@attnkit/core'
import { createCache, type TpaCache, type TpaConfig } from '../src/index.js'

/** Starts a GPU backend package if it is built and the machine has the device; else says why not. */
export async function tryBackend(name: 'webgpu' | 'cuda'): Promise<{ gpu?: Backend; reason?: string }> {
  try {
    await import(`@attnkit/backend-${name}`)
  } catch (e) {
    return { reason: `@attnkit/backend-${name} is not built (${(e as Error).message.split('\n')[0]})` }
  }
  try {
    return { gpu: await backend(name) }
  } catch (e) {
    return { reason: `${name} backend cannot start: ${(e as Error).message.split('\n')[0]}` }
  }
}

/**
 * The same cache contents on two backends: random records (normal, never zeros) written to the
 * store in one append of `storeTokens` and then `tailTokens` more in the tail. The device cache
 * has the config's dtype; the CPU one holds the same (rounded) values in float32.
 */
export async function twinCaches(
  config: TpaConfig,
  gpu: Backend,
  rng: Rng,
  o: { batch: number; storeTokens: number; tailTokens: number; maxLen: number },
): Promise<{ cpu: TpaCache; dev: TpaCache; dispose: () => void }> {
  const cpuBackend = getBackend()
  const cpu = createCache(
    { ...config, dtype: 'float32' },
    { batch: o.batch, maxLen: o.maxLen, tailCapacity: 1 << 20, backend: cpuBackend },
  )
  const dev = createCache(config, { batch: o.batch, maxLen: o.maxLen, tailCapacity: 1 << 20, backend: gpu })
  const owned: Tensor[] = []
  for (const n of [o.storeTokens, o.tailTokens]) {
    if (n === 0) continue
    const rounded = rng.normal([o.batch, n, cpu.layout.size], 0, 1, {
      dtype: dev.config.dtype,
      backend: cpuBackend,
    })
    const recs = cast(rounded, 'float32')
    const recsDev = await toBackend(rounded, gpu)
    owned.push(rounded, recs, recsDev)
    cpu.append(recs)
    dev.append(recsDev)
    if (n === o.storeTokens) {
      cpu.flush()
      dev.flush()
    }
  }
  return {
    cpu,
    dev,
    dispose: () => {
      cpu.dispose()
      dev.dispose()
      for (const t of owned) t.dispose()
    },
  }
}

export function liveOn(name: string): number {
  return memory(name).liveTensors
}
