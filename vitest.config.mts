// Test runner settings: real processes are slow to start, so timeouts are generous and files run two at a time.
import { readFileSync } from 'node:fs'
import { defineConfig } from 'vitest/config'

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }

export default defineConfig({
  define: {
    __AGENT_VERSION__: JSON.stringify(pkg.version),
    __RUNTIME_PIN__: JSON.stringify(readFileSync('image/runtime-pin.txt', 'utf8').trim()),
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/stray-datastore.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
})
