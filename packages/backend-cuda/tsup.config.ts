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
  // The PyTorch reference script ships inside dist (runTorchReference runs it).
  onSuccess: 'mkdir -p dist/bench && cp bench/torch_reference.py dist/bench/',
})
