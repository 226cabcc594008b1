import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { build } from 'tsup'
import { describe, expect, it } from 'vitest'
import { servePage } from '../browser-test/server.js'

const CHROMIUM = process.env.ATTNKIT_CHROMIUM ?? '/usr/bin/chromium'
const here = new URL('..', import.meta.url).pathname
const skip = existsSync(CHROMIUM) ? '' : `no Chromium at ${CHROMIUM} (set ATTNKIT_CHROMIUM)`
if (skip) console.warn(`skipping the browser test: ${skip}`)

// A real browser: the package's browser entry bundled for the web (no Node, no Dawn), a page on
// localhost running the conformance subset on navigator.gpu, Chromium headless with WebGPU on
// (SwiftShader's Vulkan on a machine without a GPU). Fails on any mismatch or no adapter.
describe.skipIf(!!skip)(`browser (Chromium, navigator.gpu)${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  it('runs matmul, softmax and attention (forward and gradients) in agreement with the CPU reference', async () => {
    const out = mkdtempSync(join(tmpdir(), 'attnkit-webgpu-page-'))
    const profile = mkdtempSync(join(tmpdir(), 'attnkit-webgpu-profile-'))
    try {
      await build({
        config: false,
        entry: { page: join(here, 'browser-test/page.ts') },
        outDir: out,
        format: ['esm'],
        platform: 'browser',
        target: 'es2022',
        noExternal: [/^@attnkit\//],
        // core's safetensors file helpers import fs lazily; never reached in a browser.
        external: ['fs/promises', 'node:fs/promises'],
        splitting: false,
        dts: false,
        silent: true,
        metafile: true,
      })
      const bundle = readFileSync(join(out, 'page.js'), 'utf8')
      // Nothing of Node or Dawn may reach the browser build.
      expect(bundle).not.toMatch(/from\s*["']node:|import\(["']webgpu["']\)|require\(["']node:/)
      const meta = JSON.parse(readFileSync(join(out, 'metafile-esm.json'), 'utf8')) as {
        inputs: Record<string, unknown>
      }
      expect(
        Object.keys(meta.inputs).filter((f) => f.includes('node-gpu') || f.includes('src/index.ts')),
      ).toEqual([])

      const { url, server } = await servePage(out, {
        'index.html': join(here, 'browser-test/index.html'),
        'page.js': 'page.js',
      })
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless=new',
          '--no-sandbox',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--enable-unsafe-webgpu',
          '--enable-features=Vulkan',
          '--use-angle=swiftshader',
        ],
      })
      try {
        const page = context.pages()[0] ?? (await context.newPage())
        const logs: string[] = []
        page.on('console', (m) => logs.push(m.text()))
        page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`))
        await page.goto(url)
        await page.waitForFunction(
          () => (globalThis as { __attnkit?: { done: boolean } }).__attnkit?.done,
          undefined,
          {
            timeout: 170_000,
          },
        )
        const result = (await page.evaluate(() => (globalThis as { __attnkit?: unknown }).__attnkit)) as {
          ok: boolean
          adapter: string
          features: string[]
          checks: number
          failures: string[]
          error?: string
        }
        console.log(
          `browser: ${result.adapter} [${result.features.join(', ')}]: ${result.checks} checks, ${result.failures.length} failed${result.error ? `; error: ${result.error}` : ''}`,
        )
        expect(result.error, logs.join('\n')).toBeUndefined()
        expect(result.adapter).not.toBe('')
        expect(result.failures).toEqual([])
        expect(result.checks).toBeGreaterThan(10)
        expect(result.ok).toBe(true)
      } finally {
        await context.close()
        server.close()
      }
    } finally {
      rmSync(out, { recursive: true, force: true })
      rmSync(profile, { recursive: true, force: true })
    }
  }, 240_000)
})
