/**
 * The run's journal: each finished cell appended as one JSON line to `journal.jsonl` in the
 * output folder as it ends, so that a run stopped part-way (a device window that closes, a killed
 * process, --max-minutes) loses nothing, and `run --resume` goes on from where it stopped.
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs'
import path from 'node:path'
import { UsageError } from './args.js'
import { cellKey, type PlannedCell } from './plan.js'
import type { BackendReport, CellResult, RunSession } from './schema.js'

export const JOURNAL_FILE = 'journal.jsonl'

/** The start of a reason that marks a cell a time limit left out: a resumed run runs it. */
export const NOT_RUN_PREFIX = 'not run:'

export type JournalLine =
  | {
      type: 'session'
      startedAt: string
      command: string[]
      /** The code that ran it (sessions of one run may differ). */
      commit: string | null
      preset: string
      seed: number
      plan: string[]
    }
  | { type: 'backend'; name: string; report: BackendReport }
  | { type: 'cell'; result: CellResult; atS: number }
  | { type: 'end'; durationS: number }

/** What earlier sessions left: finished cells by key, backend reports by name. */
export interface JournalState {
  sessions: RunSession[]
  cells: Map<string, CellResult>
  backends: Map<string, BackendReport>
}

/** The identity of a plan: its cells' keys, without the backend (which a resumed run may vary). */
export function planIdentity(plan: readonly PlannedCell[]): string[] {
  return plan.map((c) => cellKey({ ...c, backend: '*' }))
}

/** Cells worth keeping from an earlier session: everything but what a time limit left out. */
export function isFinished(r: CellResult): boolean {
  return !(r.status === 'skipped' && r.reason?.startsWith(NOT_RUN_PREFIX))
}

/**
 * Reads the journal in `dir` (null when there is none). Throws a UsageError when it belongs to a
 * different run (another preset, seed or set of cells), naming both.
 */
export function readJournal(dir: string, preset: string, seed: number, plan: string[]): JournalState | null {
  const file = path.join(dir, JOURNAL_FILE)
  if (!existsSync(file)) return null
  const state: JournalState = { sessions: [], cells: new Map(), backends: new Map() }
  const lines = readFileSync(file, 'utf8').split('\n')
  for (const [i, text] of lines.entries()) {
    if (!text.trim()) continue
    let line: JournalLine
    try {
      line = JSON.parse(text) as JournalLine
    } catch {
      // A killed session's last line may be cut short (the file's last, or followed by the next
      // session's first); any other bad line is a damaged file.
      const next = lines.slice(i + 1).find((l) => l.trim())
      if (next === undefined || next.startsWith('{"type":"session"')) continue
      throw new UsageError(`--resume: ${file} line ${i + 1} is not JSON (the journal is damaged)`)
    }
    const session = state.sessions.at(-1)
    if (line.type === 'session') {
      if (line.preset !== preset || line.seed !== seed || !sameList(line.plan, plan))
        throw new UsageError(
          `--resume: ${file} is the journal of another run (preset ${line.preset}, seed ${line.seed}, ${line.plan.length} cells per backend); this one is preset ${preset}, seed ${seed}, ${plan.length} cells per backend: use another --out folder, or the same options`,
        )
      state.sessions.push({
        startedAt: line.startedAt,
        command: line.command,
        commit: line.commit ?? null,
        durationS: 0,
        cells: 0,
        completed: false,
      })
    } else if (!session) {
      throw new UsageError(`--resume: ${file} does not start with a session line (the journal is damaged)`)
    } else if (line.type === 'backend') state.backends.set(line.name, line.report)
    else if (line.type === 'cell') {
      session.durationS = Math.max(session.durationS, line.atS)
      if (isFinished(line.result)) {
        session.cells++
        state.cells.set(line.result.key, line.result)
      } else state.cells.delete(line.result.key)
    } else if (line.type === 'end') {
      session.durationS = line.durationS
      session.completed = true
    }
  }
  return state
}

/** The file's last byte (undefined when empty): a long journal is not read again to find it. */
function lastByte(file: string): number | undefined {
  const size = statSync(file).size
  if (size === 0) return undefined
  const fd = openSync(file, 'r')
  try {
    const byte = Buffer.alloc(1)
    readSync(fd, byte, 0, 1, size - 1)
    return byte[0]
  } finally {
    closeSync(fd)
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** Appends to the journal; each line is written through at once so a killed run keeps it. */
export class Journal {
  private readonly file: string
  private readonly t0 = performance.now()

  constructor(dir: string, session: Omit<Extract<JournalLine, { type: 'session' }>, 'type'>) {
    mkdirSync(dir, { recursive: true })
    this.file = path.join(dir, JOURNAL_FILE)
    // After a session killed mid-line, start on a line of our own.
    if (existsSync(this.file) && ![undefined, 0x0a].includes(lastByte(this.file)))
      appendFileSync(this.file, '\n')
    this.write({ type: 'session', ...session })
  }

  backend(name: string, report: BackendReport): void {
    this.write({ type: 'backend', name, report })
  }

  cell(result: CellResult): void {
    this.write({ type: 'cell', result, atS: (performance.now() - this.t0) / 1e3 })
  }

  end(durationS: number): void {
    this.write({ type: 'end', durationS })
  }

  private write(line: JournalLine): void {
    appendFileSync(this.file, `${JSON.stringify(line)}\n`)
  }
}

/** Receives what a run produces as it goes (the journal, in the CLI). */
export interface RunRecorder {
  backend(name: string, report: BackendReport): void
  cell(result: CellResult): void
}

/** What a resumed run already has. */
export interface PriorResults {
  cells: ReadonlyMap<string, CellResult>
  backends: ReadonlyMap<string, BackendReport>
}
