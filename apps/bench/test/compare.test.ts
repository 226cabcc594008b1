import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { compareResults } from '../src/commands/compare.js'
import { cell, results } from './fixtures.js'
import { runCli, tempDir } from './helpers.js'

const dims = (seqLen: number) => ({ batch: 1, heads: 8, seqLen, headDim: 64 })

describe('compare', () => {
  const a = results([
    cell({ dims: dims(256), medianMs: 2 }),
    cell({ dims: dims(512), medianMs: 8 }),
    cell({ dims: dims(1024), medianMs: 9 }),
  ])
  const b = results([
    cell({ dims: dims(256), medianMs: 1 }),
    cell({ dims: dims(512), medianMs: 16 }),
    cell({ dims: dims(512), backend: 'webgpu', medianMs: 1 }),
  ])

  it('matches cells by key and gives B/A ratios', () => {
    const c = compareResults(a, b)
    expect(c.map((x) => [x.key.split('/').slice(2).join('/'), x.ratio])).toEqual([
      ['cpu/forward/float32/batch=1,heads=8,seqLen=256,headDim=64', 0.5],
      ['cpu/forward/float32/batch=1,heads=8,seqLen=512,headDim=64', 2],
      ['cpu/forward/float32/batch=1,heads=8,seqLen=1024,headDim=64', null],
      ['webgpu/forward/float32/batch=1,heads=8,seqLen=512,headDim=64', null],
    ])
  })

  it('prints the table and summary, and writes Markdown', async () => {
    const dir = tempDir()
    const fa = path.join(dir, 'a.json')
    const fb = path.join(dir, 'b.json')
    writeFileSync(fa, JSON.stringify(a))
    writeFileSync(fb, JSON.stringify(b))
    const md = path.join(dir, 'cmp.md')
    const r = await runCli(['compare', fa, fb, '--md', md])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(
      /cpu\s+dense\/causal\s+forward\s+B1 H8 T256 D64\s+float32\s+2\.00 ms\s+1\.00 ms\s+0\.50x\s+ok\s+ok/,
    )
    expect(r.out).toMatch(/B1 H8 T1024 D64\s+float32\s+9\.00 ms\s+absent\s+-\s+ok\s+absent/)
    expect(r.out).toContain('2 cells timed in both; geometric mean B/A 1.000x; 1 only in B, 1 only in A')
    expect(readFileSync(md, 'utf8')).toContain(
      '| cpu | dense/causal | forward | B1 H8 T512 D64 | float32 | 8.00 ms | 16.0 ms | 2.00x | ok | ok |',
    )
  })

  it('rejects a file that is not a results file, naming the file and the problem', async () => {
    const dir = tempDir()
    const good = path.join(dir, 'a.json')
    const bad = path.join(dir, 'bad.json')
    writeFileSync(good, JSON.stringify(a))
    writeFileSync(bad, JSON.stringify({ ...a, cells: [{ ...a.cells[0], mode: 'sideways' }] }))
    const rejected = await runCli(['compare', good, bad])
    expect(rejected.code).toBe(2)
    expect(rejected.err).toContain(
      `compare: ${bad} is not a valid attnkit-bench/results v1 file:\n  results.cells[0].mode: expected one of forward, forward+backward, decode, got "sideways"`,
    )
    const r = await runCli(['compare', good])
    expect([r.code, r.err]).toEqual([
      2,
      expect.stringContaining('compare: expected two results.json files (A and B), got 1'),
    ])
  })
})

describe('command line', () => {
  it('names the option, what it expects and what it got', async () => {
    const cases: [string[], string][] = [
      [['run', '--seq', '12x'], "--seq: expected an integer >= 1, got '12x'"],
      [
        ['run', '--mode', 'sideways'],
        "--mode: expected one of forward, forward+backward, decode, got 'sideways'",
      ],
      [['run', '--backend', 'tpu'], "--backend: expected one of cpu, webgpu, cuda, got 'tpu'"],
      [
        ['run', '--preset', 'huge'],
        "--preset: unknown preset 'huge' (expected one of smoke, paper, scaling)",
      ],
      [['run', '--mechanism', 'flash'], '--mechanism: expected some of'],
      [['run', '--bogus'], "Unknown option '--bogus'"],
    ]
    for (const [args, message] of cases) {
      const r = await runCli(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err).toContain(message)
    }
    const unknown = await runCli(['frobnicate'])
    expect([unknown.code, unknown.err]).toEqual([2, expect.stringContaining("unknown command 'frobnicate'")])
    const help = await runCli(['--help'])
    expect(help.out).toMatch(/run\s+run a preset/)
    expect((await runCli(['run', '--help'])).out).toContain('--preset <name>')
  })
})
