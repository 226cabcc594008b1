import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { JOURNAL_FILE, type JournalLine } from '../src/journal.js'
import { validateResults } from '../src/schema.js'
import { builtCli, readResults, runBuiltCli, runCli, tempDir } from './helpers.js'

const SMALL = [
  '--preset',
  'smoke',
  '--backend',
  'cpu',
  '--mechanism',
  'dense',
  '--seq',
  '64,128',
  '--repeats',
  '2',
]

const journalLines = (dir: string) =>
  readFileSync(path.join(dir, JOURNAL_FILE), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JournalLine)

/** Cuts the journal back to its session line and first `keep` cells, as a killed run leaves it. */
function killAfter(dir: string, keep: number): string[] {
  const lines = journalLines(dir)
  const cells = lines.filter((l) => l.type === 'cell').slice(0, keep)
  const kept = [lines[0], ...cells]
  // A kill mid-write leaves a cut line at the end: reading must survive it.
  writeFileSync(path.join(dir, JOURNAL_FILE), `${kept.map((l) => JSON.stringify(l)).join('\n')}\n{"type":"ce`)
  return cells.map((l) => (l as Extract<JournalLine, { type: 'cell' }>).result.key)
}

describe('run --resume (the journal of a stopped run)', () => {
  it('keeps the cells the journal holds, runs the rest, and reports every session', async () => {
    const out = tempDir()
    const first = await runCli(['run', ...SMALL, '--out', out, '--quiet'])
    expect(first.code, first.err).toBe(0)
    const full = readResults(out)
    expect(full.cells.length).toBeGreaterThanOrEqual(4)
    const kept = killAfter(out, 2)

    const second = await runCli(['run', ...SMALL, '--out', out, '--quiet', '--resume'])
    expect(second.code, second.err).toBe(0)
    expect(second.err).toContain('2 cell(s) finished in 1 earlier session(s)')
    const resumed = readResults(out)
    expect(validateResults(resumed)).toEqual([])
    expect(resumed.cells.map((c) => c.key)).toEqual(full.cells.map((c) => c.key))
    for (const c of resumed.cells) {
      const before = full.cells.find((x) => x.key === c.key)!
      // Kept cells are the first session's very results; the others were measured again.
      if (kept.includes(c.key)) expect(c.timing?.samplesMs).toEqual(before.timing?.samplesMs)
      else expect(c.timing?.samplesMs).not.toEqual(before.timing?.samplesMs)
      expect(c.status, c.key).toBe(before.status)
    }
    expect(resumed.sessions?.map((s) => [s.cells, s.completed])).toEqual([
      [2, false],
      [full.cells.length - 2, true],
    ])
    expect(resumed.durationS).toBeCloseTo(
      resumed.sessions!.reduce((t, s) => t + s.durationS, 0),
      6,
    )
    expect(readFileSync(path.join(out, 'results.md'), 'utf8')).toMatch(
      /Ran as 2 sessions of the command \(continued with --resume\): [\d.]+ s \(2 cells, stopped, commit [0-9a-f]{10}\) \+ [\d.]+ s/,
    )

    // Everything finished: a further --resume runs nothing and writes the same cells.
    const third = await runCli(['run', ...SMALL, '--out', out, '--quiet', '--resume'])
    expect(third.code).toBe(0)
    expect(readResults(out).cells.map((c) => c.timing?.samplesMs)).toEqual(
      resumed.cells.map((c) => c.timing?.samplesMs),
    )
  })

  it('refuses a journal of another run, naming both; needs --out; a fresh run starts a new journal', async () => {
    const out = tempDir()
    expect((await runCli(['run', ...SMALL, '--out', out, '--quiet'])).code).toBe(0)
    const other = await runCli(['run', ...SMALL, '--seed', '7', '--out', out, '--quiet', '--resume'])
    expect(other.code).not.toBe(0)
    expect(other.err).toMatch(
      /journal of another run \(preset smoke, seed 1234, \d+ cells per backend\); this one is preset smoke, seed 7/,
    )
    const noOut = await runCli(['run', ...SMALL, '--resume'])
    expect(noOut.err).toContain('--resume: expected --out <dir> too')
    expect((await runCli(['run', ...SMALL, '--out', out, '--quiet'])).code).toBe(0)
    expect(journalLines(out).filter((l) => l.type === 'session')).toHaveLength(1)
  })

  it('in worker processes: a time-limited run says what is left, and --resume runs just that', async () => {
    const cli = await builtCli()
    const out = tempDir()
    const args = ['run', ...SMALL, '--out', out, '--quiet']
    const first = await runBuiltCli(cli, [...args, '--max-minutes', '0.0001'])
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout).toMatch(
      /cell\(s\) were left out by the time limit: the same command with --resume --out /,
    )
    expect(
      readResults(out).cells.every((c) => c.status === 'skipped' && c.reason?.startsWith('not run:')),
    ).toBe(true)

    const second = await runBuiltCli(cli, [...args, '--resume'])
    expect(second.status, second.stderr).toBe(0)
    const r = readResults(out)
    expect(validateResults(r)).toEqual([])
    expect(r.cells.every((c) => c.status === 'ok' && c.correctness?.passed)).toBe(true)
    // The first session finished no cell: its time limit left them all out.
    expect(r.sessions?.map((s) => [s.cells, s.completed])).toEqual([
      [0, true],
      [r.cells.length, true],
    ])
    expect(second.stdout).not.toContain('left out by the time limit')
  })
})
