import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { memory } from '@attnkit/core'
import { expect, it } from 'vitest'

it('the README example runs as written', async () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8')
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  expect(code).toBeDefined()
  expect(code!.split('\n').filter((l) => l.trim()).length).toBeLessThanOrEqual(10)
  const file = join(import.meta.dirname, `.readme-example-${process.pid}.ts`)
  writeFileSync(
    file,
    `${code!.replace("from '@attnkit/tpa'", "from '../src/index.js'")}\nexport const result = { y, yt, params }\n`,
  )
  try {
    const before = memory().liveTensors
    const { result } = await import(file)
    expect(result.y.shape).toEqual([2, 128, 1024])
    expect(result.yt.shape).toEqual([2, 1024])
    const values = await result.yt.data()
    expect(values.some((v: number) => v !== 0 && Number.isFinite(v))).toBe(true)
    for (const t of [result.y, result.yt, ...Object.values(result.params)])
      (t as { dispose(): void }).dispose()
    // `using` freed the cache when the module finished; left: the two inputs it drew inline.
    expect(memory().liveTensors - before).toBe(2)
  } finally {
    rmSync(file, { force: true })
  }
})
