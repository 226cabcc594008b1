// Bundles bench/h100.ts (with @attnkit/core, this package and @attnkit/backend-cuda) into
// <repo>/.carry/tpa/h100.mjs for the H100 run, and copies koffi beside it (it loads a native
// binary, so it cannot be bundled), the CUDA backend's kernel sources (kernels/) and run.sh.
// Run from the repo root: node packages/tpa/bench/bundle.mjs [folder, default .carry/tpa]
// (another folder, relative to the repo root, keeps a worktree's bundle apart from main's).
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, realpathSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const repo = join(pkg, '..', '..')
const out = resolve(repo, process.argv[2] ?? join('.carry', 'tpa'))
rmSync(out, { recursive: true, force: true })
mkdirSync(join(out, 'node_modules', '@koromix'), { recursive: true })
// esbuild's own executable: after its install step bin/esbuild is the native binary, which the
// package manager's .bin shim would hand to node as a script.
const esbuild = join(repo, 'node_modules', '.pnpm', 'node_modules', 'esbuild', 'bin', 'esbuild')
execFileSync(
  esbuild,
  [
    join(pkg, 'bench', 'h100.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node22',
    '--external:koffi',
    '--external:webgpu',
    `--outfile=${join(out, 'h100.mjs')}`,
  ],
  { stdio: 'inherit', cwd: pkg },
)
const cudaPkg = realpathSync(join(pkg, 'node_modules', '@attnkit', 'backend-cuda'))
const koffi = realpathSync(join(cudaPkg, 'node_modules', 'koffi'))
cpSync(koffi, join(out, 'node_modules', 'koffi'), { recursive: true, dereference: true })
const native = realpathSync(join(koffi, '..', '@koromix', 'koffi-linux-x64'))
cpSync(native, join(out, 'node_modules', '@koromix', 'koffi-linux-x64'), {
  recursive: true,
  dereference: true,
})
// The backend reads its .cu kernels from a directory: take this checkout's, not the device tree's.
cpSync(join(cudaPkg, 'kernels'), join(out, 'kernels'), { recursive: true, dereference: true })
cpSync(join(pkg, 'bench', 'run.sh'), join(out, 'run.sh'))
console.log(`bundled to ${out}`)
