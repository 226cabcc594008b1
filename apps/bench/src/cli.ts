import { main } from './main.js'

// Exit explicitly: GPU runtimes can keep the event loop alive after the work is done.
main(process.argv.slice(2), { out: process.stdout, err: process.stderr }).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`attnkit-bench: ${e.stack ?? e.message}\n`)
    process.exit(1)
  },
)
