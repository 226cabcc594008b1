// Bundles bench/h100.ts for the device machine (Node only, no install):
//   pnpm --filter @attnkit/core build && pnpm --filter @attnkit/backend-cuda build
//   node packages/lte/bench/bundle.mjs          (from the repo root)
// -> .carry/lte-bench/{h100.mjs, node_modules/koffi, node_modules/@koromix/koffi-linux-x64}
import { cpSync, existsSync, mkdirSync, realpathSync, rmSync } from 'node:fs'
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
  outDir: out,
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
console.log(`bundled ${join(out, 'h100.mjs')} (+ koffi); run on the device:`)
console.log(
  '  xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && /tmp/node .carry/lte-bench/h100.mjs --out $OUT',
)
