import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ReferenceStore } from '../src/reference-store.js'
import { tempDir } from './helpers.js'

function outputs(seed: number): Map<string, Float64Array> {
  const a = Float64Array.from({ length: 37 }, (_, i) => Math.sin(seed * 13.7 + i) * 1e3 + 1 / (i + 3))
  const b = Float64Array.from({ length: 5 }, (_, i) => Math.cos(seed + i * 0.31) * 1e-300)
  return new Map([
    ['y', a],
    ['dx', b],
  ])
}

/** A pid that is certainly not running: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
  return Number(r.stdout.toString())
}

describe("ReferenceStore (CPU references shared by a run's processes)", () => {
  it('computes a key once; another store on the folder reads the same float64 values back', async () => {
    const dir = tempDir()
    let computed = 0
    const compute = async () => {
      computed++
      return outputs(3)
    }
    const first = await new ReferenceStore(dir).getOrCompute('k', compute)
    const second = await new ReferenceStore(dir).getOrCompute('k', compute)
    expect(computed).toBe(1)
    expect([...second.keys()]).toEqual(['y', 'dx'])
    for (const [name, values] of first) expect(second.get(name)).toEqual(values)
    // Nothing is left but the stored file (no lock, no temporary).
    expect(readdirSync(dir).map((f) => path.extname(f))).toEqual(['.f64'])
  })

  it('a second caller waits for the one computing, and does not compute again', async () => {
    const dir = tempDir()
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    let computed = 0
    const slow = async () => {
      computed++
      await gate
      return outputs(5)
    }
    const a = new ReferenceStore(dir).getOrCompute('k', slow)
    await new Promise((r) => setTimeout(r, 20))
    expect(await new ReferenceStore(dir).computeIfFree('k', slow)).toBe(false)
    const b = new ReferenceStore(dir).getOrCompute('k', slow)
    release()
    const [ra, rb] = await Promise.all([a, b])
    expect(computed).toBe(1)
    expect(rb.get('y')).toEqual(ra.get('y'))
  })

  it('takes over a key whose computing process died', async () => {
    const dir = tempDir()
    const store = new ReferenceStore(dir)
    // The lock a worker killed mid-computation leaves behind.
    const lockName = `${createHash('sha256').update('k').digest('hex').slice(0, 32)}.lock`
    writeFileSync(path.join(dir, lockName), String(deadPid()))
    let computed = 0
    const got = await store.getOrCompute('k', async () => {
      computed++
      return outputs(9)
    })
    expect(computed).toBe(1)
    expect(got.get('dx')).toEqual(outputs(9).get('dx'))
  })

  it('a failed computation releases its lock and rejects', async () => {
    const dir = tempDir()
    const store = new ReferenceStore(dir)
    await expect(
      store.getOrCompute('k', async () => {
        throw new Error('reference failed')
      }),
    ).rejects.toThrow('reference failed')
    expect(readdirSync(dir)).toEqual([])
  })
})
