/**
 * CPU references on disk, shared by the processes of one run. The float64 CPU reference of a
 * large mechanism (MoSA with hundreds of FLOP-matched heads) takes seconds to minutes; without
 * sharing, every backend's worker computed it again. One process computes a key at a time: it
 * holds `<hash>.lock` (created exclusively, holding its pid) until `<hash>.f64` is renamed into
 * place, and the others wait for the file. A lock whose process is gone is taken over.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

type Outputs = Map<string, Float64Array>

const POLL_MS = 100

export class ReferenceStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true })
  }

  /** The stored outputs for key; else computes them (or waits for the process computing them). */
  async getOrCompute(key: string, compute: () => Promise<Outputs>): Promise<Outputs> {
    for (;;) {
      const stored = this.read(key)
      if (stored) return stored
      if (this.tryLock(key)) return this.computeLocked(key, compute)
      await sleep(POLL_MS)
    }
  }

  /** Computes key when nobody has and nobody is; false when it was already there or taken. */
  async computeIfFree(key: string, compute: () => Promise<Outputs>): Promise<boolean> {
    if (this.read(key) || !this.tryLock(key)) return false
    await this.computeLocked(key, compute)
    return true
  }

  private async computeLocked(key: string, compute: () => Promise<Outputs>): Promise<Outputs> {
    try {
      const outputs = await compute()
      this.write(key, outputs)
      return outputs
    } finally {
      rmSync(this.file(key, 'lock'), { force: true })
    }
  }

  private file(key: string, ext: string): string {
    return path.join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.${ext}`)
  }

  private tryLock(key: string): boolean {
    const lock = this.file(key, 'lock')
    if (createExclusive(lock)) return true
    if (holderAlive(lock)) return false
    // Its holder died mid-computation (a crashed or killed worker): take the key over.
    rmSync(lock, { force: true })
    return createExclusive(lock)
  }

  /** Layout: uint32 header length, JSON [[name, length], ...], padding to 8, float64 values. */
  private write(key: string, outputs: Outputs): void {
    const header = Buffer.from(JSON.stringify([...outputs].map(([n, v]) => [n, v.length])))
    const start = align8(4 + header.length)
    const total = start + [...outputs.values()].reduce((s, v) => s + v.byteLength, 0)
    const buf = Buffer.alloc(total)
    buf.writeUInt32LE(header.length, 0)
    header.copy(buf, 4)
    let at = start
    for (const v of outputs.values()) {
      Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(buf, at)
      at += v.byteLength
    }
    const final = this.file(key, 'f64')
    const tmp = `${final}.${process.pid}.tmp`
    writeFileSync(tmp, buf)
    renameSync(tmp, final)
  }

  private read(key: string): Outputs | null {
    let buf: Buffer
    try {
      buf = readFileSync(this.file(key, 'f64'))
    } catch {
      return null
    }
    const headerLength = buf.readUInt32LE(0)
    const entries = JSON.parse(buf.subarray(4, 4 + headerLength).toString()) as [string, number][]
    const out: Outputs = new Map()
    let at = align8(4 + headerLength)
    for (const [name, length] of entries) {
      // A copy: the Buffer's pool offset need not be 8-aligned.
      out.set(name, new Float64Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + at + length * 8)))
      at += length * 8
    }
    return out
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8
}

function createExclusive(file: string): boolean {
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' })
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw e
  }
}

function holderAlive(lock: string): boolean {
  let pid: number
  try {
    pid = Number(readFileSync(lock, 'utf8'))
  } catch {
    return true // just created, pid not written yet: treat as held
  }
  if (!Number.isInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
