import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { cli: 'src/cli.ts' },
  format: ['esm'],
  dts: false,
  sourcemap: false,
  clean: true,
  target: 'node22',
  splitting: true,
  treeshake: true,
  banner: { js: '#!/usr/bin/env node' },
  // A dev dependency, loaded only by `bundle` in a checkout; never bundled.
  external: ['esbuild'],
})
