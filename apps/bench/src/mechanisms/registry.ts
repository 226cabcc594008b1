import { importOptional, type OptionalPackage } from '../optional-imports.js'
import type { MechanismReport } from '../schema.js'
import { packageVersion } from '../versions.js'
import type { MechanismAdapter } from './adapter.js'
import { denseAdapter } from './dense.js'
import { matmulAdapter } from './matmul.js'

interface MechanismEntry {
  /** The package the mechanism lives in ('@attnkit/core' for the built-in ones). */
  pkg: OptionalPackage | '@attnkit/core'
  /** Builds the adapter; throws an error saying why when the package cannot serve it. */
  load(): Promise<MechanismAdapter>
}

const builtIn = (adapter: MechanismAdapter): MechanismEntry => ({
  pkg: '@attnkit/core',
  load: async () => adapter,
})

/** Each mechanism the bench knows, in report order. */
export const MECHANISMS: Record<string, MechanismEntry> = {
  matmul: builtIn(matmulAdapter),
  dense: builtIn(denseAdapter),
  mosa: {
    pkg: '@attnkit/mosa',
    load: async () => (await import('./mosa.js')).mosaAdapter(await importOptional('@attnkit/mosa')),
  },
  tpa: {
    pkg: '@attnkit/tpa',
    load: async () => (await import('./tpa.js')).tpaAdapter(await importOptional('@attnkit/tpa')),
  },
  gdn: {
    pkg: '@attnkit/lte',
    load: async () => (await import('./lte.js')).gdnAdapter(await importOptional('@attnkit/lte')),
  },
  lalte: {
    pkg: '@attnkit/lte',
    load: async () => (await import('./lte.js')).lalteAdapter(await importOptional('@attnkit/lte')),
  },
}

export type LoadedMechanism = { name: string; adapter: MechanismAdapter } | { name: string; reason: string }

export async function loadMechanisms(names: readonly string[]): Promise<LoadedMechanism[]> {
  const out: LoadedMechanism[] = []
  for (const name of names) {
    const entry = MECHANISMS[name]
    if (!entry) {
      out.push({
        name,
        reason: `unknown mechanism '${name}' (expected one of ${Object.keys(MECHANISMS).join(', ')})`,
      })
      continue
    }
    try {
      out.push({ name, adapter: await entry.load() })
    } catch (e) {
      out.push({ name, reason: (e as Error).message })
    }
  }
  return out
}

export function mechanismReport(m: LoadedMechanism): MechanismReport {
  const version = packageVersion(MECHANISMS[m.name]?.pkg ?? '')
  return 'adapter' in m
    ? { name: m.name, status: 'ok', variants: m.adapter.variants.map((v) => v.name), version }
    : { name: m.name, status: 'unavailable', reason: m.reason, version }
}
