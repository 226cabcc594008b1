#!/usr/bin/env node
// Checks every public package as it would be published: packs it with pnpm (workspace:
// ranges become versions), lints the tarball with publint and @arethetypeswrong/cli (ESM-only
// profile), checks that every package the sources import is declared and every declared
// runtime dependency is imported, that nothing but dist/README/CHANGELOG/kernel sources ships,
// and reports the sizes. Exits non-zero on any problem.
//   node scripts/check-packages.mjs [--no-lint] [--json out.json] [--only core,mosa]
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const args = process.argv.slice(2)
const lint = !args.includes('--no-lint')
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined
const bin = (name) => join(root, 'node_modules', '.bin', name)
const problems = []
const report = []

function sourceFiles(dir) {
  const out = []
  if (!existsSync(dir)) return out
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(p))
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !/\.d\.ts$/.test(entry.name)) out.push(p)
  }
  return out
}

/** Bare package names imported (statically or dynamically) by the package's src. */
function importedPackages(dir) {
  const names = new Set()
  const re = /(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"./][^'"]*)['"]/g
  for (const f of sourceFiles(join(dir, 'src'))) {
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(re)) {
      const spec = m[1]
      if (spec.includes('${') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]))
        continue
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]
      names.add(name)
    }
  }
  return names
}

const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined
const packagesDir = join(root, 'packages')
for (const name of readdirSync(packagesDir).sort()) {
  if (only && !only.includes(name)) continue
  const dir = join(packagesDir, name)
  let pkg
  try {
    pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  } catch {
    continue
  }
  if (pkg.private) continue
  const entry = { name: pkg.name, version: pkg.version, problems: [] }
  const fail = (msg) => {
    entry.problems.push(msg)
    problems.push(`${pkg.name}: ${msg}`)
  }

  // Dependencies: imported <=> declared (peer/optional/regular), type-only packages excepted.
  const imported = importedPackages(dir)
  const runtime = { ...pkg.dependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies }
  for (const dep of imported)
    if (!(dep in runtime) && dep !== pkg.name) fail(`imports '${dep}' but does not declare it`)
  for (const dep of Object.keys(runtime))
    if (!imported.has(dep)) fail(`declares '${dep}' but never imports it`)
  if (pkg.name !== '@attnkit/core' && !pkg.peerDependencies?.['@attnkit/core'])
    fail(`must have @attnkit/core as a peer dependency`)
  if (pkg.dependencies?.['@attnkit/core']) fail(`@attnkit/core must be a peer, not a regular dependency`)
  for (const native of ['koffi', 'webgpu']) {
    const owner = native === 'koffi' ? '@attnkit/backend-cuda' : '@attnkit/backend-webgpu'
    if (native in runtime && pkg.name !== owner) fail(`'${native}' belongs only to ${owner}`)
  }

  // Pack and inspect the tarball.
  const tmp = mkdtempSync(join(tmpdir(), 'attnkit-pack-'))
  try {
    execFileSync('pnpm', ['pack', '--pack-destination', tmp], { cwd: dir, stdio: 'pipe' })
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'))
    const tarball = join(tmp, tgz)
    entry.tarballBytes = statSync(tarball).size
    const listing = execFileSync('tar', ['-tvzf', tarball], { encoding: 'utf8' }).trim().split('\n')
    const files = listing.map((l) =>
      l
        .split(/\s+/)
        .slice(5)
        .join(' ')
        .replace(/^package\//, ''),
    )
    entry.unpackedBytes = listing.reduce((s, l) => s + Number(l.split(/\s+/)[2]), 0)
    entry.files = files.length
    const allowed = /^(dist\/|README\.md$|CHANGELOG\.md$|LICENSE|package\.json$|kernels\/)/
    for (const f of files) {
      if (!allowed.test(f)) fail(`ships an unexpected file: ${f}`)
      if (/(^|\/)(test|tests|__tests__|fixtures)\//.test(f) || /\.test\.[jt]s$/.test(f))
        fail(`ships a test or fixture: ${f}`)
    }
    if (!files.includes('README.md')) fail('ships no README.md')
    const packed = JSON.parse(
      execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }),
    )
    for (const field of ['dependencies', 'peerDependencies']) {
      for (const [d, range] of Object.entries(packed[field] ?? {})) {
        if (String(range).startsWith('workspace:')) fail(`packed ${field}.${d} still says ${range}`)
      }
    }
    if (lint) {
      try {
        execFileSync(bin('publint'), ['run', tarball, '--strict', '--pack', 'false'], {
          stdio: 'pipe',
          encoding: 'utf8',
        })
      } catch (e) {
        fail(`publint: ${(e.stdout || e.stderr || e.message).trim().split('\n').slice(0, 6).join(' | ')}`)
      }
      try {
        execFileSync(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii', '--no-emoji'], {
          stdio: 'pipe',
          encoding: 'utf8',
        })
      } catch (e) {
        fail(`attw: ${(e.stdout || e.stderr || e.message).trim().split('\n').slice(-6).join(' | ')}`)
      }
    }
  } catch (e) {
    fail(`pack failed: ${(e.stderr?.toString() || e.message).trim().split('\n')[0]}`)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  report.push(entry)
}

const kb = (n) => (n === undefined ? '?' : `${(n / 1024).toFixed(1)} kB`)
console.log('package                    tarball    unpacked  files  status')
for (const e of report) {
  console.log(
    `${e.name.padEnd(26)} ${kb(e.tarballBytes).padStart(9)} ${kb(e.unpackedBytes).padStart(10)} ${String(e.files ?? '?').padStart(6)}  ${e.problems.length ? `${e.problems.length} problem(s)` : 'ok'}`,
  )
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(report, null, 2))
if (problems.length) {
  console.error(`\n${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`)
  process.exit(1)
}
console.log(`\nall ${report.length} public packages ok (${relative(process.cwd(), root) || '.'})`)
