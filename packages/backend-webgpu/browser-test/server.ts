import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isAbsolute, join } from 'node:path'

/**
 * Serves the test page and its bundle (file names relative to `dir`, or absolute) on 127.0.0.1 (a secure context, so navigator.gpu is
 * exposed) at a free port.
 */
export async function servePage(
  dir: string,
  files: Record<string, string>,
): Promise<{ url: string; server: Server }> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript' }
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const name = path === '/' ? 'index.html' : path.slice(1)
    const file = files[name]
    if (!file) {
      res.writeHead(404).end('not found')
      return
    }
    const ext = name.slice(name.lastIndexOf('.'))
    try {
      const body = readFileSync(isAbsolute(file) ? file : join(dir, file))
      res.writeHead(200, {
        'content-type': types[ext] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      })
      res.end(body)
    } catch (e) {
      res.writeHead(500).end(String(e))
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/`, server }
}
