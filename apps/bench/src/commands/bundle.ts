import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { UsageError } from '../args.js'
import { OPTIONAL_PACKAGES } from '../optional-imports.js'
import { findRepoRoot } from '../paths.js'
import { fmtBytes } from '../report/format.js'
import { type BundleInfo, CUDA_KERNELS_DIR, gitInfo, packageVersions } from '../versions.js'

export const BUNDLE_HELP = `attnkit-bench bundle [--out <dir>]

Writes one folder that runs the bench on a Linux x64 machine with Node >= 22 and no install step:
cli.js (the bench and every built @attnkit package, bundled by esbuild), the native parts beside
it (Dawn's dawn.node for linux-x64, koffi and its linux-x64 binary), bundle-info.json (versions
and commit) and run.sh (uses a 'node' binary next to it, else node from PATH).
Unbuilt optional packages are left out and reported; the bundled CLI then says they are missing.

  --out <dir>   default: .carry/bench-bundle at the repository root (git-ignored)
`

/** The folder of this package (apps/bench), from wherever this module runs (src or dist). */
function benchRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pj = path.join(dir, 'package.json')
    if (
      existsSync(pj) &&
      (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === '@attnkit/bench'
    )
      return dir
    const up = path.dirname(dir)
    if (up === dir)
      throw new Error(
        'bundle: cannot find the @attnkit/bench package folder (bundle runs from a checkout, not from a bundle)',
      )
    dir = up
  }
}

function dirSize(p: string): number {
  const st = statSync(p)
  if (!st.isDirectory()) return st.size
  return readdirSync(p).reduce((sum, f) => sum + dirSize(path.join(p, f)), 0)
}

/** A package's root folder, resolved the way `fromDir` would import it (symlinks followed). */
function packageDir(name: string, fromDir: string): string | null {
  const req = createRequire(path.join(fromDir, 'package.json'))
  let entry: string
  try {
    entry = req.resolve(name)
  } catch {
    return null
  }
  let dir = path.dirname(entry)
  while (
    !existsSync(path.join(dir, 'package.json')) ||
    (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== name
  ) {
    const up = path.dirname(dir)
    if (up === dir) return null
    dir = up
  }
  return realpathSync(dir)
}

function copyFiles(fromDir: string, toDir: string, relPaths: string[]): void {
  for (const rel of relPaths) {
    const src = path.join(fromDir, rel)
    if (!existsSync(src))
      throw new Error(`bundle: expected ${src} (native dependency file) but it is missing`)
    mkdirSync(path.dirname(path.join(toDir, rel)), { recursive: true })
    cpSync(src, path.join(toDir, rel), { recursive: true, dereference: true })
  }
}

/** Copies the files under fromDir whose relative path passes `keep`. */
function copyTree(fromDir: string, toDir: string, keep: (rel: string) => boolean): void {
  for (const f of readdirSync(fromDir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue
    const rel = path.relative(fromDir, path.join(f.parentPath, f.name))
    if (!keep(rel)) continue
    mkdirSync(path.dirname(path.join(toDir, rel)), { recursive: true })
    cpSync(path.join(fromDir, rel), path.join(toDir, rel))
  }
}

const RUN_SH = `#!/bin/sh
# Runs the bundled attnkit bench with a 'node' binary next to this script, else node from PATH.
here="$(cd "$(dirname "$0")" && pwd)"
if [ -x "$here/node" ]; then NODE="$here/node"
elif command -v node >/dev/null 2>&1; then NODE=node
else echo "run.sh: no node: put a Node >= 22 binary at $here/node or on PATH" >&2; exit 127
fi
major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 22 ]; then echo "run.sh: $NODE is Node $major; the bench needs Node >= 22" >&2; exit 1; fi
exec "$NODE" "$here/cli.js" "$@"
`

export interface BundleResult {
  dir: string
  bytes: number
  included: Record<string, string>
  leftOut: Record<string, string>
}

export async function buildBundle(outDir: string): Promise<BundleResult> {
  let esbuild: typeof import('esbuild')
  try {
    esbuild = await import('esbuild')
  } catch (e) {
    throw new Error(
      `bundle: needs esbuild (a dev dependency of @attnkit/bench, present in a checkout): ${(e as Error).message}`,
    )
  }
  const root = benchRoot()
  const entry = path.join(root, 'src', 'cli.ts')
  if (!existsSync(entry)) throw new Error(`bundle: expected the CLI source at ${entry}`)
  const included: Record<string, string> = {}
  const leftOut: Record<string, string> = {}
  const external = ['webgpu', 'koffi', 'esbuild']
  for (const name of Object.keys(OPTIONAL_PACKAGES)) {
    const dir = packageDir(name, root)
    if (dir) included[name] = path.relative(root, dir)
    else {
      leftOut[name] = `not built (no entry point to import); run: pnpm --filter ${name} build`
      external.push(name)
    }
  }

  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  await esbuild.build({
    entryPoints: [entry],
    outfile: path.join(outDir, 'cli.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    external,
    legalComments: 'none',
    logLevel: 'error',
    // Bundled CommonJS code may call require(); ESM output has none unless we make one.
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __attnkitCreateRequire } from 'node:module'\nconst require = __attnkitCreateRequire(import.meta.url)",
    },
  })

  const modules = path.join(outDir, 'node_modules')
  if (included['@attnkit/backend-webgpu']) {
    const webgpu = packageDir('webgpu', path.join(root, included['@attnkit/backend-webgpu']))
    if (!webgpu)
      throw new Error("bundle: @attnkit/backend-webgpu is built but its 'webgpu' dependency cannot be found")
    // index.js loads dist/<platform>-<arch>/dawn.node relative to itself; only linux-x64 is shipped.
    copyFiles(webgpu, path.join(modules, 'webgpu'), ['package.json', 'index.js', 'dist/linux-x64'])
    included.webgpu = 'node_modules/webgpu (dist/linux-x64 only)'
  }
  if (included['@attnkit/backend-cuda']) {
    const koffi = packageDir('koffi', path.join(root, included['@attnkit/backend-cuda']))
    if (!koffi)
      throw new Error("bundle: @attnkit/backend-cuda is built but its 'koffi' dependency cannot be found")
    // Its JavaScript only (the C++ sources, docs and vendored headers are for building it).
    copyTree(
      koffi,
      path.join(modules, 'koffi'),
      (rel) => /\.(c?js|json)$/.test(rel) && !rel.startsWith('vendor/'),
    )
    // koffi 3 looks for its binary at <koffi>/../@koromix/koffi-<platform>-<arch>.
    const native = realpathSync(path.join(koffi, '..', '@koromix', 'koffi-linux-x64'))
    copyFiles(native, path.join(modules, '@koromix', 'koffi-linux-x64'), [
      'package.json',
      'index.js',
      'linux_x64',
    ])
    included.koffi = 'node_modules/koffi + @koromix/koffi-linux-x64'
    // The backend reads its CUDA C sources at run time from <its module>/../kernels, which a
    // bundle does not have: they go to cuda-kernels/ and the bundled CLI points the backend there.
    const cudaPackage = path.resolve(root, included['@attnkit/backend-cuda'])
    copyTree(path.join(cudaPackage, 'kernels'), path.join(outDir, CUDA_KERNELS_DIR), (rel) =>
      /\.cuh?$/.test(rel),
    )
    included[CUDA_KERNELS_DIR] = 'the CUDA backend kernel sources (ATTNKIT_CUDA_KERNELS_DIR)'
  }

  const info: BundleInfo = {
    createdAt: new Date().toISOString(),
    packages: packageVersions(),
    git: gitInfo(),
    included,
    leftOut,
  }
  writeFileSync(path.join(outDir, 'bundle-info.json'), `${JSON.stringify(info, null, 1)}\n`)
  writeFileSync(path.join(outDir, 'run.sh'), RUN_SH)
  chmodSync(path.join(outDir, 'run.sh'), 0o755)
  chmodSync(path.join(outDir, 'cli.js'), 0o755)
  return { dir: outDir, bytes: dirSize(outDir), included, leftOut }
}

export async function bundleCommand(argv: string[], io: { out: NodeJS.WritableStream }): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { out: { type: 'string' } },
  })
  if (positionals.length > 0) throw new UsageError(`bundle: unexpected argument '${positionals[0]}'`)
  const repo = findRepoRoot()
  const out = path.resolve(
    values.out ?? path.join(repo ?? process.cwd(), repo ? '.carry/bench-bundle' : 'bench-bundle'),
  )
  const r = await buildBundle(out)
  const lines = [
    `Wrote ${r.dir} (${fmtBytes(r.bytes)}): run it with ${path.join(r.dir, 'run.sh')} run --preset smoke`,
  ]
  for (const [k, v] of Object.entries(r.included)) lines.push(`  included ${k}: ${v}`)
  for (const [k, v] of Object.entries(r.leftOut)) lines.push(`  left out ${k}: ${v}`)
  io.out.write(`${lines.join('\n')}\n`)
  return 0
}
