// Bundles device/runner.ts (with @attnkit/core and this package's sources) into
// <out>/runner.mjs for the H100 run, copies koffi beside it (it loads a native binary, so it cannot
// be bundled), and copies what the run needs from this checkout: kernels/, run.sh, the PyTorch
// script, and (where nvcc is here) the wgmma self-test built for sm_90a. <out> defaults to
// <repo>/.carry/cuda. Run from packages/backend-cuda: node device/bundle.mjs [out]
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, realpathSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const repo = join(pkg, '..', '..')
const out = process.argv[2] ? resolve(process.argv[2]) : join(repo, '.carry', 'cuda')
rmSync(out, { recursive: true, force: true })
mkdirSync(join(out, 'node_modules', '@koromix'), { recursive: true })
const esbuild = process.env.ESBUILD ?? join(repo, 'node_modules', '.pnpm', 'node_modules', '.bin', 'esbuild')
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
cpSync(join(pkg, 'kernels'), join(out, 'kernels'), { recursive: true })
cpSync(join(pkg, 'device', 'run.sh'), join(out, 'run.sh'))
cpSync(join(pkg, 'bench', 'torch_reference.py'), join(out, 'torch_reference.py'))
const nvcc = spawnSync(
  'nvcc',
  [
    '-gencode=arch=compute_90a,code=sm_90a',
    '-std=c++17',
    `-I${join(pkg, 'kernels')}`,
    '-o',
    join(out, 'wgmma_selftest'),
    join(pkg, 'device', 'wgmma_selftest.cu'),
  ],
  { stdio: 'inherit' },
)
if (nvcc.error || nvcc.status !== 0) console.log('nvcc not available or failed: no wgmma self-test bundled')
console.log(`bundled to ${out}`)
