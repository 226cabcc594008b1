import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { main } from '../src/main.js'
import type { BenchResults } from '../src/schema.js'

/** The results.json a run wrote to `dir`. */
export function readResults(dir: string): BenchResults {
  return JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as BenchResults
}

export function tempDir(prefix = 'attnkit-bench-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix))
}

class Capture extends Writable {
  text = ''
  isTTY = false
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString()
    cb()
  }
}

/** Runs the CLI in this process, capturing what it writes. */
export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture()
  const err = new Capture()
  const code = await main(args, { out, err: err as unknown as NodeJS.WriteStream })
  return { code, out: out.text, err: err.text }
}

/**
 * The CLI built from src into this package's node_modules/.cache (so that its imports resolve as
 * dist/cli.js's do), for tests that need real child processes (one per backend).
 */
export async function builtCli(): Promise<string> {
  const { build } = await import('esbuild')
  const root = path.resolve(import.meta.dirname, '..')
  const outfile = path.join(
    root,
    'node_modules',
    '.cache',
    'attnkit-bench-test',
    String(process.pid),
    'cli.js',
  )
  await build({
    entryPoints: [path.join(root, 'src', 'cli.ts')],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node22',
    logLevel: 'error',
  })
  return outfile
}

export interface CliRun {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs a built CLI in a child process (node from this process). */
export function runBuiltCli(cli: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}
