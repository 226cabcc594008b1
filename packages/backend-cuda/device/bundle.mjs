// Bundles device/runner.ts (with @attnkit/core and this package's sources) into
// <repo>/.carry/cuda/runner.mjs for the H100 run, and copies koffi beside it (it loads a native
// binary, so it cannot be bundled). Run from packages/backend-cuda: node device/bundle.mjs
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, realpathSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const repo = join(pkg, '..', '..')
const out = join(repo, '.carry', 'cuda')
rmSync(out, { recursive: true, force: true })
mkdirSync(join(out, 'node_modules', '@koromix'), { recursive: true })
const esbuild = join(repo, 'node_modules', '.pnpm', 'node_modules', '.bin', 'esbuild')
execFileSync(
  esbuild,
  [
    join(pkg, 'device', 'runner.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node22',
    '--external:koffi',
    `--outfile=${join(out, 'runner.mjs')}`,
  ],
  { stdio: 'inherit', cwd: pkg },
)
const koffi = realpathSync(join(pkg, 'node_modules', 'koffi'))
cpSync(koffi, join(out, 'node_modules', 'koffi'), { recursive: true, dereference: true })
const native = realpathSync(join(koffi, '..', '@koromix', 'koffi-linux-x64'))
cpSync(native, join(out, 'node_modules', '@koromix', 'koffi-linux-x64'), {
  recursive: true,
  dereference: true,
})
console.log(`bundled to ${out}`)
