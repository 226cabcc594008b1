import { existsSync } from 'node:fs'
import path from 'node:path'

/** The workspace root above `from` (where pnpm-workspace.yaml is), or null outside a checkout. */
export function findRepoRoot(from = process.cwd()): string | null {
  let dir = path.resolve(from)
  for (;;) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir
    const up = path.dirname(dir)
    if (up === dir) return null
    dir = up
  }
}

/** bench-results/<timestamp>/ at the repository root (or the current directory outside one). */
export function defaultResultsDir(now = new Date()): string {
  const stamp = now.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '')
  return path.join(findRepoRoot() ?? process.cwd(), 'bench-results', stamp)
}
