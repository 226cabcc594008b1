import { UsageError } from './args.js'
import { BUNDLE_HELP, bundleCommand } from './commands/bundle.js'
import { COMPARE_HELP, compareCommand } from './commands/compare.js'
import { INFO_HELP, infoCommand } from './commands/info.js'
import { RUN_HELP, runCommand } from './commands/run.js'
import { TRAIN_HELP, trainCommand } from './commands/train.js'

export interface Io {
  out: NodeJS.WritableStream
  err: NodeJS.WriteStream
  /** The CLI's file, for child processes (see isolate.ts); absent when called in-process (tests). */
  entry?: string
}

interface Command {
  summary: string
  help: string
  run(argv: string[], io: Io): Promise<number>
}

/** Subcommands; `train` (issue 8) will join them. */
export const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'run a preset: mechanisms x backends x sizes x modes (default: run --preset smoke)',
    help: RUN_HELP,
    run: async (argv, io) => (await runCommand(argv, io, { workerEntry: io.entry })).exitCode,
  },
  compare: {
    summary: 'side-by-side ratios of two results.json files',
    help: COMPARE_HELP,
    run: compareCommand,
  },
  info: {
    summary: 'backends found, their devices and features, and why a missing one is missing',
    help: INFO_HELP,
    run: infoCommand,
  },
  bundle: {
    summary: 'one folder with the bundled CLI and its native parts, runnable with just Node',
    help: BUNDLE_HELP,
    run: bundleCommand,
  },
  train: {
    summary: "train small language models with each mechanism; the papers' comparisons",
    help: TRAIN_HELP,
    run: trainCommand,
  },
}

export function registerCommand(name: string, command: Command): void {
  COMMANDS[name] = command
}

function usage(): string {
  const names = Object.keys(COMMANDS)
  const width = Math.max(...names.map((n) => n.length))
  return [
    'usage: attnkit-bench <command> [options]   (no command: run --preset smoke)',
    '',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}`),
    '',
    "attnkit-bench <command> --help for a command's options.",
  ].join('\n')
}

/** Runs the CLI; returns the exit code (0 ok, 1 a cell failed or errored, 2 bad usage). */
export async function main(argv: string[], io: Io): Promise<number> {
  // Package-manager scripts may pass a literal '--' before the arguments.
  if (argv[0] === '--') argv = argv.slice(1)
  const [name, ...rest] = argv.length === 0 ? ['run'] : argv
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out.write(`${usage()}\n`)
    return 0
  }
  const command = COMMANDS[name]
  if (!command) {
    io.err.write(`attnkit-bench: unknown command '${name}'\n\n${usage()}\n`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out.write(command.help)
    return 0
  }
  try {
    return await command.run(rest, io)
  } catch (e) {
    const err = e as Error & { code?: string }
    if (e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      io.err.write(
        `attnkit-bench ${name}: ${err.message}\n(attnkit-bench ${name} --help lists the options)\n`,
      )
      return 2
    }
    throw e
  }
}
