import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildBundle } from '../src/commands/bundle.js'
import { validateResults } from '../src/schema.js'
import { readResults, tempDir } from './helpers.js'

/** Every file under dir, relative, sorted. */
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir)
    .flatMap((f) => {
      const p = path.join(dir, f)
      return statSync(p).isDirectory() ? listFiles(p, `${prefix}${f}/`) : [`${prefix}${f}`]
    })
    .sort()
}

// The lead carries the bundle with a 29.6 MB xz'd Node binary under a 64 MiB limit.
const MAX_BUNDLE_BYTES = 64 * 2 ** 20 - 29.6e6 - 1e6

describe('bench bundle', () => {
  it('is one folder of the bundled CLI and its native parts that runs from outside the repository', async () => {
    const dir = path.join(tempDir(), 'bench-bundle')
    const b = await buildBundle(dir)
    expect(b.bytes).toBeLessThan(MAX_BUNDLE_BYTES)
    const files = listFiles(dir)
    const allowed = [
      /^cli\.js$/,
      /^run\.sh$/,
      /^bundle-info\.json$/,
      /^node_modules\/webgpu\/(package\.json|index\.js|dist\/linux-x64\/.+)$/,
      /^node_modules\/koffi\/(.+\/)?[^/]+\.(c?js|json)$/,
      /^node_modules\/@koromix\/koffi-linux-x64\/(package\.json|index\.js|linux_x64\/.+)$/,
      /^cuda-kernels\/[^/]+\.cuh?$/,
    ]
    for (const f of files)
      expect(
        allowed.some((re) => re.test(f)),
        `unexpected file in the bundle: ${f}`,
      ).toBe(true)
    const info = JSON.parse(readFileSync(path.join(dir, 'bundle-info.json'), 'utf8'))
    expect(info.packages['@attnkit/core']).toMatch(/^\d+\.\d+\.\d+/)

    // Run from an empty directory outside the repository, with node from PATH.
    const cwd = tempDir()
    const out = path.join(cwd, 'out')
    const withWebgpu = Boolean(b.included['@attnkit/backend-webgpu'])
    const run = spawnSync(
      path.join(dir, 'run.sh'),
      [
        'run',
        '--preset',
        'smoke',
        '--backend',
        withWebgpu ? 'cpu,webgpu' : 'cpu',
        '--mechanism',
        'matmul,dense',
        '--out',
        out,
        '--quiet',
        '--repeats',
        '3',
      ],
      {
        cwd,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` },
      },
    )
    // Dawn writes its own warnings to stderr; a crash of the bench would start with its name.
    expect(run.stderr).not.toContain('attnkit-bench:')
    const results = readResults(out)
    expect(validateResults(results)).toEqual([])
    // Exit 1 exactly when a cell failed or errored (WebGPU cells can, while its kernels are written).
    expect(run.status).toBe(results.summary.failed + results.summary.error > 0 ? 1 : 0)
    expect(run.stdout).toContain('matmul 1024^3 float32 on cpu:')
    const cpuCells = results.cells.filter((c) => c.backend === 'cpu')
    expect(cpuCells.length).toBeGreaterThanOrEqual(4)
    for (const c of cpuCells) expect([c.key, c.status, c.correctness?.passed]).toEqual([c.key, 'ok', true])
    // The versions come from bundle-info.json, not from a node_modules that is not there.
    expect(results.packages['@attnkit/core']).toBe(info.packages['@attnkit/core'])
    if (withWebgpu) {
      // Dawn loads from the bundle's own node_modules: the backend starts (its kernels are its own business).
      expect(results.backends.find((x) => x.name === 'webgpu')).toMatchObject({ status: 'ok' })
    } else
      console.log('bundle test: @attnkit/backend-webgpu is not built, so the bundle has no WebGPU to try')
  })
})
