import type { DType } from '@attnkit/core'
import type { MechanismAdapter } from './mechanisms/adapter.js'
import type { CellGroup, Preset } from './presets.js'
import type { Dims, Mode } from './schema.js'

export interface PlannedCell {
  mechanism: string
  variant: string
  mode: Mode
  dtype: DType
  dims: Dims
  headline?: string
  /** Cells of one sweep share a series id; the runner stops a series where a size no longer fits. */
  series?: string
}

/** What the command line narrows or overrides in a preset. */
export interface PlanFilters {
  mechanisms?: string[]
  /** "mechanism:variant" or a bare variant name. */
  variants?: string[]
  modes?: Mode[]
  dtypes?: DType[]
  /** Replace these dims in every cell that has them (seqLen, batch, heads, headDim). */
  overrides?: Partial<Record<'seqLen' | 'batch' | 'heads' | 'headDim', number[]>>
}

export function cellKey(c: {
  mechanism: string
  variant: string
  backend: string
  mode: Mode
  dtype: string
  dims: Dims
}): string {
  const dims = Object.entries(c.dims)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  return `${c.mechanism}/${c.variant}/${c.backend}/${c.mode}/${c.dtype}/${dims}`
}

function expandOverrides(dims: Dims, overrides: PlanFilters['overrides']): Dims[] {
  let out = [dims]
  for (const [name, values] of Object.entries(overrides ?? {})) {
    if (!values || !(name in dims)) continue
    out = out.flatMap((d) => values.map((v) => ({ ...d, [name]: v })))
  }
  return out
}

function variantWanted(mechanism: string, variant: string, filters: PlanFilters): boolean {
  if (!filters.variants) return true
  return filters.variants.some((f) => f === variant || f === `${mechanism}:${variant}`)
}

/**
 * The preset's cells after the filters, in preset order. Mechanisms whose adapter could not load
 * are planned with their preset variants (or 'default') so the report can say they are unavailable.
 */
export function planCells(
  preset: Preset,
  filters: PlanFilters,
  adapters: ReadonlyMap<string, MechanismAdapter>,
): PlannedCell[] {
  const out: PlannedCell[] = []
  const seen = new Set<string>()
  for (const g of preset.groups) {
    if (filters.mechanisms && !filters.mechanisms.includes(g.mechanism)) continue
    const adapter = adapters.get(g.mechanism)
    const variants = groupVariants(g, adapter).filter((v) => variantWanted(g.mechanism, v, filters))
    const modes = g.modes.filter(
      (m) => (!filters.modes || filters.modes.includes(m)) && (!adapter || adapter.modes.includes(m)),
    )
    const dtypes = filters.dtypes ?? g.dtypes
    const dimsList = g.dims.flatMap((d) => expandOverrides(d, filters.overrides))
    for (const variant of variants)
      for (const mode of modes)
        for (const dtype of dtypes) {
          const series = g.sweep ? `${g.mechanism}/${variant}/${mode}/${dtype}` : undefined
          for (const dims of dimsList) {
            const key = cellKey({ mechanism: g.mechanism, variant, backend: '', mode, dtype, dims })
            if (seen.has(key)) continue
            seen.add(key)
            out.push({ mechanism: g.mechanism, variant, mode, dtype, dims, headline: g.headline, series })
          }
        }
  }
  return out
}

function groupVariants(g: CellGroup, adapter: MechanismAdapter | undefined): string[] {
  if (g.variants) return g.variants
  if (adapter) return adapter.variants.map((v) => v.name)
  return ['default']
}
