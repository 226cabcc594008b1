import { defineConfig } from 'tsup'

export default defineConfig([
  {
    // Node: Dawn is loaded with a dynamic import('webgpu') inside createWebGPUBackend().
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    dts: true,
    sourcemap: false,
    clean: true,
    target: 'node22',
    platform: 'node',
    splitting: false,
    treeshake: true,
  },
  {
    // Browsers: navigator.gpu only; nothing of Node or Dawn is reachable from this entry.
    entry: { browser: 'src/browser.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: false,
    clean: false,
    target: 'es2022',
    platform: 'browser',
    splitting: false,
    treeshake: true,
  },
])
