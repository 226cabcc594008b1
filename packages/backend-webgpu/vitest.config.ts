import { defineConfig } from 'vitest/config'

// lavapipe (Mesa's CPU Vulkan driver) compiles and runs every kernel on two CPU cores, so
// the files run one at a time and each test gets a generous timeout.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
})
