import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { UsageError } from '../args.js'
import { alignColumns, fmtMs } from '../report/format.js'
import { markdownTable } from '../report/markdown.js'
import { assertResults, type BenchResults, type CellResult } from '../schema.js'

export const COMPARE_HELP = `attnkit-bench compare A.json B.json [--md <file>]

Side by side: each cell present in both runs (matched by mechanism, variant, backend, mode,
dtype and size) with both medians and the ratio B/A (below 1: B is faster), then the cells only
one run has. --md also writes the comparison as Markdown.
`

export interface ComparedCell {
  key: string
  a: CellResult | undefined
  b: CellResult | undefined
  /** B's median over A's; null unless both were timed. */
  ratio: number | null
}

export function loadResults(file: string): BenchResults {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    throw new UsageError(`compare: cannot read ${file} as JSON: ${(e as Error).message}`)
  }
  try {
    assertResults(parsed, file)
  } catch (e) {
    throw new UsageError(`compare: ${(e as Error).message}`)
  }
  return parsed
}

export function compareResults(a: BenchResults, b: BenchResults): ComparedCell[] {
  const bByKey = new Map(b.cells.map((c) => [c.key, c]))
  const out: ComparedCell[] = []
  for (const ca of a.cells) {
    const cb = bByKey.get(ca.key)
    bByKey.delete(ca.key)
    const ratio =
      ca.timing && cb?.timing && ca.timing.medianMs > 0 ? cb.timing.medianMs / ca.timing.medianMs : null
    out.push({ key: ca.key, a: ca, b: cb, ratio })
  }
  for (const cb of bByKey.values()) out.push({ key: cb.key, a: undefined, b: cb, ratio: null })
  return out
}

const HEADER = [
  'backend',
  'mechanism',
  'mode',
  'size',
  'dtype',
  'A median',
  'B median',
  'B/A',
  'A status',
  'B status',
]

function rowOf(c: ComparedCell): string[] {
  const any = (c.a ?? c.b)!
  const med = (x: CellResult | undefined) => (x ? (x.timing ? fmtMs(x.timing.medianMs) : '-') : 'absent')
  return [
    any.backend,
    `${any.mechanism}/${any.variant}`,
    any.mode,
    any.label,
    any.dtype,
    med(c.a),
    med(c.b),
    c.ratio === null ? '-' : `${c.ratio.toFixed(2)}x`,
    c.a?.status ?? 'absent',
    c.b?.status ?? 'absent',
  ]
}

export async function compareCommand(argv: string[], io: { out: NodeJS.WritableStream }): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { md: { type: 'string' } },
  })
  if (positionals.length !== 2)
    throw new UsageError(`compare: expected two results.json files (A and B), got ${positionals.length}`)
  const [fa, fb] = positionals
  const a = loadResults(fa)
  const b = loadResults(fb)
  const compared = compareResults(a, b)
  const rows = compared.map(rowOf)
  const both = compared.filter((c) => c.ratio !== null)
  const geo =
    both.length > 0 ? Math.exp(both.reduce((s, c) => s + Math.log(c.ratio!), 0) / both.length) : null
  const summary = `${both.length} cells timed in both; geometric mean B/A ${geo === null ? '-' : `${geo.toFixed(3)}x`}; ${
    compared.filter((c) => !c.a).length
  } only in B, ${compared.filter((c) => !c.b).length} only in A`
  const lines = [
    `A: ${fa} (${a.preset}, ${a.createdAt}, ${a.machine.cpu})`,
    `B: ${fb} (${b.preset}, ${b.createdAt}, ${b.machine.cpu})`,
    '',
    ...alignColumns(
      [HEADER, ...rows],
      HEADER.map((_, i) => i >= 5 && i <= 7),
      true,
    ),
    '',
    summary,
  ]
  io.out.write(`${lines.join('\n')}\n`)
  if (values.md) {
    const md = [
      '# attnkit bench comparison',
      '',
      `A: \`${fa}\` (${a.preset}, ${a.createdAt})  `,
      `B: \`${fb}\` (${b.preset}, ${b.createdAt})`,
      '',
      markdownTable(
        HEADER,
        rows,
        HEADER.map((_, i) => i >= 5 && i <= 7),
      ),
      '',
      summary,
      '',
    ].join('\n')
    writeFileSync(values.md, md)
    io.out.write(`Wrote ${values.md}\n`)
  }
  return 0
}
