// Bundles agent/ into one executable file, dist/metaflow-kfp, that needs no node_modules.
import { build } from 'esbuild'
import { chmod, readFile } from 'node:fs/promises'
import { lazyAwsSdk } from './lazy-aws-sdk.mjs'

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'))
const pin = (await readFile(new URL('../image/runtime-pin.txt', import.meta.url), 'utf8')).trim()
const outfile = 'dist/metaflow-kfp'

await build({
  entryPoints: ['agent/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  mainFields: ['module', 'main'],
  outfile,
  banner: { js: '#!/usr/bin/env node' },
  define: {
    __AGENT_VERSION__: JSON.stringify(pkg.version),
    __RUNTIME_PIN__: JSON.stringify(pin),
  },
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [lazyAwsSdk({ platform: 'node', target: 'node20', format: 'cjs', minify: true, mainFields: ['module', 'main'], legalComments: 'none', logLevel: 'warning' })],
})
await chmod(outfile, 0o755)
