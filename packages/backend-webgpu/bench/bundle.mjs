// Bundles bench/speed.ts and bench/conformance.ts for a machine without node_modules (the H100
// device): one ESM file each with @attnkit/* inlined, plus the `webgpu` package (its index.js
// and dawn.node, xz-compressed) beside them. Output: <repo>/.carry/webgpu (git-ignored).
//   node bench/bundle.mjs
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'tsup'

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(pkg, '../../.carry/webgpu')
rmSync(out, { recursive: true, force: true })
await build({
  config: false,
  entry: { speed: join(pkg, 'bench/speed.ts'), conformance: join(pkg, 'bench/conformance.ts') },
  outDir: out,
  format: ['esm'],
  platform: 'node',
  target: 'node22',
  noExternal: [/^@attnkit\//],
  external: ['webgpu'],
  splitting: false,
  dts: false,
  silent: true,
  outExtension: () => ({ js: '.mjs' }),
})
const webgpu = join(pkg, 'node_modules/webgpu')
const dest = join(out, 'node_modules/webgpu')
mkdirSync(join(dest, 'dist/linux-x64'), { recursive: true })
copyFileSync(join(webgpu, 'index.js'), join(dest, 'index.js'))
copyFileSync(join(webgpu, 'package.json'), join(dest, 'package.json'))
writeFileSync(
  join(dest, 'dist/linux-x64/dawn.node.xz'),
  execFileSync('xz', ['-9', '-c', join(webgpu, 'dist/linux-x64/dawn.node')], { maxBuffer: 1 << 30 }),
)
console.log(`bundled into ${out}`)
