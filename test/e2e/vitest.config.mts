// Runner settings for the e2e suite that `make e2e` runs against the cluster of `make e2e-up`: real pods are slow, one file at a time.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/e2e/**/*.e2e.ts'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
    maxWorkers: 1,
    reporters: ['default'],
  },
})
