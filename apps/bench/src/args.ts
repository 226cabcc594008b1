/** Parsing helpers for command-line values; errors name the option, what it expects and what it got. */

export class UsageError extends Error {}

export function list(option: string, value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (items.length === 0) throw new UsageError(`--${option}: expected a comma-separated list, got '${value}'`)
  return items
}

export function oneOfList<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
  aliases: Record<string, T> = {},
): T[] | undefined {
  return list(option, value)?.map((v) => {
    const resolved = aliases[v] ?? v
    if (!allowed.includes(resolved as T))
      throw new UsageError(`--${option}: expected one of ${allowed.join(', ')}, got '${v}'`)
    return resolved as T
  })
}

export function positiveInts(option: string, value: string | undefined): number[] | undefined {
  return list(option, value)?.map((v) => positiveInt(option, v))
}

export function positiveInt(option: string, value: string, min = 1): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${option}: expected an integer >= ${min}, got '${value}'`)
  return n
}

export function positiveNumber(option: string, value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${option}: expected a number > 0, got '${value}'`)
  return n
}
