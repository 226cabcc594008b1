// Bundles bench/h100.ts for the device machine (Node only, no install):
//   pnpm --filter @attnkit/core build && pnpm --filter @attnkit/backend-cuda build
//   node packages/lte/bench/bundle.mjs          (from the repo root)
// -> .carry/lte-bench/{run.sh, bin/h100.mjs, kernels/ (the CUDA backend's .cu/.cuh sources, which
//    it reads at run time from <bundle>/../kernels), node_modules/koffi + @koromix/koffi-linux-x64}
import { chmodSync, cpSync, existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'tsup'

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const root = resolve(pkg, '../..')
const out = join(root, '.carry', 'lte-bench')
const cuda = join(root, 'packages', 'backend-cuda')
if (!existsSync(join(cuda, 'dist', 'index.js')))
  throw new Error(
    'bundle: @attnkit/backend-cuda is not built: run pnpm --filter @attnkit/backend-cuda build first',
  )
if (!existsSync(join(root, 'packages', 'core', 'dist', 'index.js')))
  throw new Error('bundle: @attnkit/core is not built: run pnpm --filter @attnkit/core build first')

rmSync(out, { recursive: true, force: true })
await build({
  entry: { h100: join(pkg, 'bench', 'h100.ts') },
  outDir: join(out, 'bin'),
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  bundle: true,
  splitting: false,
  dts: false,
  sourcemap: false,
  clean: false,
  silent: true,
  noExternal: [/.*/],
  external: ['koffi', 'webgpu'],
  outExtension: () => ({ js: '.mjs' }),
  tsconfig: join(pkg, 'tsconfig.json'),
})

// koffi 3 loads its native binary from <koffi>/../@koromix/koffi-<platform>-<arch>.
const koffi = realpathSync(join(cuda, 'node_modules', 'koffi'))
const modules = join(out, 'node_modules')
mkdirSync(join(modules, '@koromix'), { recursive: true })
cpSync(koffi, join(modules, 'koffi'), { recursive: true, dereference: true })
cpSync(
  realpathSync(join(koffi, '..', '@koromix', 'koffi-linux-x64')),
  join(modules, '@koromix', 'koffi-linux-x64'),
  {
    recursive: true,
    dereference: true,
  },
)
cpSync(join(cuda, 'kernels'), join(out, 'kernels'), { recursive: true, dereference: true })
writeFileSync(
  join(out, 'run.sh'),
  `#!/bin/sh
# Runs the @attnkit/lte H100 benchmark with NODE (default: node on PATH).
here=$(cd "$(dirname "$0")" && pwd)
export ATTNKIT_CUDA_KERNELS_DIR="$here/kernels"
exec "\${NODE:-node}" "$here/bin/h100.mjs" "$@"
`,
)
chmodSync(join(out, 'run.sh'), 0o755)
console.log(`bundled ${out}; run on the device:`)
console.log(
  '  xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && NODE=/tmp/node .carry/lte-bench/run.sh --out $OUT',
)
