import { importOptional } from '../optional-imports.js'

/**
 * The parts of the mechanism packages' APIs the training code calls. The bench loads these
 * packages on demand (a missing or unbuilt one only disables the models that need it), so they
 * are typed here and their functions checked when loaded.
 */

import type * as Lte from '@attnkit/lte'
import type * as Mosa from '@attnkit/mosa'
import type * as Tpa from '@attnkit/tpa'

export type {
  AttentionCache,
  AttentionConfig as LteAttentionConfig,
  AttentionKind as LteAttentionKind,
  AttentionParams as LteAttentionParams,
  GdnConfig,
  GdnParams,
  GdnState,
  ModelConfig as LteModelConfig,
  ModelOptions as LteModelOptions,
} from '@attnkit/lte'
// Types come from the packages themselves (erased at run time); the modules are loaded on
// demand and their functions checked when loaded.
export type { MosaConfig, MosaParams } from '@attnkit/mosa'
export type { TpaCache, TpaConfig } from '@attnkit/tpa'
export type MosaModule = typeof Mosa
export type TpaModule = typeof Tpa
export type LteModule = typeof Lte

export interface Packages {
  mosa?: MosaModule
  tpa?: TpaModule
  lte?: LteModule
}

const loaded: Packages = {}

/** The module, once it is known to export every function the training code calls. */
function requireFunctions<T>(mod: Record<string, unknown>, pkg: string, names: readonly string[]): T {
  const missing = names.filter((n) => typeof mod[n] !== 'function')
  if (missing.length > 0)
    throw new Error(
      `${pkg} does not export ${missing.join(', ')} (attnkit-bench train needs them; rebuild it with pnpm --filter ${pkg} build, or its API changed)`,
    )
  return mod as T
}

export async function loadMosa(): Promise<MosaModule> {
  loaded.mosa ??= requireFunctions<MosaModule>(await importOptional('@attnkit/mosa'), '@attnkit/mosa', [
    'init',
    'forward',
    'computeMatchedHeads',
    'cost',
  ])
  return loaded.mosa
}

export async function loadTpa(): Promise<TpaModule> {
  loaded.tpa ??= requireFunctions<TpaModule>(await importOptional('@attnkit/tpa'), '@attnkit/tpa', [
    'init',
    'forward',
    'paramSpecs',
    'createCache',
    'prefill',
    'cost',
  ])
  return loaded.tpa
}

export async function loadLte(): Promise<LteModule> {
  loaded.lte ??= requireFunctions<LteModule>(await importOptional('@attnkit/lte'), '@attnkit/lte', [
    'initGdn',
    'gdnForward',
    'createGdnState',
    'gdnDecode',
    'initAttention',
    'attentionForward',
    'createAttentionCache',
    'attentionDecode',
    'attentionCacheTensors',
    'laLTEConfig',
    'gdnConfig',
    'gdnSwaConfig',
    'fullAttentionConfig',
    'gdnLayerConfig',
    'attentionLayerConfig',
  ])
  return loaded.lte
}
