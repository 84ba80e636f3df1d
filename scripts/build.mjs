// Bundles agent/ into one executable file, dist/metaflow-kfp, that needs no node_modules.
import { chmod, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

// npm runs this from the package's folder, make from the clone's top; both are the folder above this script.
process.chdir(fileURLToPath(new URL('..', import.meta.url)))
const outfile = 'dist/metaflow-kfp'

// Imported here rather than at the top so npm pack in a clone without node_modules gets one line, not a stack.
let esbuild
try {
  esbuild = await import('esbuild')
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err
  console.error(`metaflow-kfp build: error: failed to build ${outfile}: esbuild is not installed (run npm ci in ${process.cwd()} first)`)
  process.exit(1)
}
const { build } = esbuild
const { lazyAwsSdk } = await import('./lazy-aws-sdk.mjs')

const pkg = JSON.parse(await readFile('package.json', 'utf8'))
const pin = (await readFile('image/runtime-pin.txt', 'utf8')).trim()

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
