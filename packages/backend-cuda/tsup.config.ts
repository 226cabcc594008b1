import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: false,
  clean: true,
  target: 'node22',
  splitting: true,
  treeshake: true,
  external: ['koffi'],
})
