import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { main } from '../src/main.js'

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
