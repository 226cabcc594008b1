import { parseArgs } from 'node:util'
import { UsageError } from '../args.js'
import { BACKEND_NAMES, backendReport, loadBackends } from '../backends.js'
import { loadMechanisms, MECHANISMS, mechanismReport } from '../mechanisms/registry.js'
import { fmtBytes, fmtBytesRate, fmtFlops } from '../report/format.js'
import { machineInfo, packageVersions } from '../versions.js'

export const INFO_HELP = `attnkit-bench info [--json]

The backends found (${BACKEND_NAMES.join(', ')}), their devices, features and peaks, and for a
missing one the reason; the mechanisms and their variants, or why one is unavailable.
`

export async function infoCommand(argv: string[], io: { out: NodeJS.WritableStream }): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  })
  if (positionals.length > 0) throw new UsageError(`info: unexpected argument '${positionals[0]}'`)
  const backends = (await loadBackends(BACKEND_NAMES)).map(backendReport)
  const mechanisms = (await loadMechanisms(Object.keys(MECHANISMS))).map(mechanismReport)
  const machine = machineInfo()
  if (values.json) {
    io.out.write(
      `${JSON.stringify({ machine, packages: packageVersions(), backends, mechanisms }, null, 1)}\n`,
    )
    return 0
  }
  const lines = [
    `machine: ${machine.cpu} x${machine.cpuCount}, ${fmtBytes(machine.memoryBytes)}, ${machine.os} ${machine.arch}, node ${machine.node}`,
    '',
    'backends:',
  ]
  for (const b of backends) {
    if (b.status !== 'ok') {
      lines.push(`  ${b.name}: unavailable: ${b.reason}`)
      continue
    }
    lines.push(`  ${b.name}: ${b.device} (${b.version ?? 'version unknown'})`)
    if (b.features?.length) lines.push(`    features: ${b.features.join(', ')}`)
    for (const [k, v] of Object.entries(b.details ?? {})) lines.push(`    ${k}: ${v}`)
    const peak = b.peak
    if (peak?.flopsPerSecond)
      lines.push(
        `    peak: ${Object.entries(peak.flopsPerSecond)
          .map(([d, f]) => `${d} ${fmtFlops(f)}`)
          .join(', ')}${peak.bytesPerSecond ? `, memory ${fmtBytesRate(peak.bytesPerSecond)}` : ''}`,
      )
    else lines.push('    peak: not reported (fractions of peak are left out)')
  }
  lines.push('', 'mechanisms:')
  for (const m of mechanisms)
    lines.push(
      m.status === 'ok'
        ? `  ${m.name}: ${(m.variants ?? []).join(', ')}`
        : `  ${m.name}: unavailable: ${m.reason}`,
    )
  io.out.write(`${lines.join('\n')}\n`)
  return 0
}
