import { defineConfig } from 'vitest/config'

// WebGPU runs on Mesa lavapipe here (CPU Vulkan): files run one at a time, with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
})
