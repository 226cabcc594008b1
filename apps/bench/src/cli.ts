import { fileURLToPath } from 'node:url'
import { REFERENCE_HELPER_COMMAND, WORKER_COMMAND } from './isolate.js'
import { main } from './main.js'
import { applyBundleEnvironment } from './versions.js'
import { referenceHelperMain, workerMain } from './worker.js'

applyBundleEnvironment()
const argv = process.argv.slice(2)
const done = (code: number) => process.exit(code)
const failed = (e: Error) => {
  process.stderr.write(`attnkit-bench: ${e.stack ?? e.message}\n`)
  process.exit(1)
}
// Exit explicitly: GPU runtimes can keep the event loop alive after the work is done.
if (argv[0] === WORKER_COMMAND) workerMain().then(() => done(0), failed)
else if (argv[0] === REFERENCE_HELPER_COMMAND) referenceHelperMain().then(() => done(0), failed)
else
  main(argv, { out: process.stdout, err: process.stderr, entry: fileURLToPath(import.meta.url) }).then(
    done,
    failed,
  )
