// Bundles agent/ into one executable file, dist/metaflow-kfp, that needs no node_modules.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
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
const { lazyBuiltins, lazyModules } = await import('./lazy-modules.mjs')
const { loaderSource } = await import('./code-cache-loader.mjs')

const pkg = JSON.parse(await readFile('package.json', 'utf8'))
const pin = (await readFile('image/runtime-pin.txt', 'utf8')).trim()

// Why no dynamic import(): code compiled by vm.Script (the code-cache loader) cannot run one on Node 20
// without an experimental flag, so esbuild turns each into a require.
const common = { platform: 'node', target: 'node20', format: 'cjs', minify: true, mainFields: ['module', 'main'], legalComments: 'none', logLevel: 'warning', supported: { 'dynamic-import': false } }
const bundled = await build({
  ...common,
  entryPoints: ['agent/main.ts'],
  bundle: true,
  write: false,
  outfile,
  define: {
    __AGENT_VERSION__: JSON.stringify(pkg.version),
    __RUNTIME_PIN__: JSON.stringify(pin),
  },
  // yargs' strings from memory, never from translation files beside the working folder (agent/cli-strings.ts).
  alias: { y18n: './agent/cli-strings.ts' },
  // The built-ins listed load on first use: a start that ends early (a usage error, `config`) needs none.
  plugins: [lazyModules({ aws: ['@aws-sdk/client-s3', '@aws-sdk/credential-providers'], undici: ['undici'], yaml: ['yaml'], tar: ['tar'] }, common), lazyBuiltins(['crypto', 'stream/promises', 'fs/promises', 'perf_hooks', 'os', 'child_process', 'zlib', 'http', 'https', 'net', 'readline'])],
})
const { warmPythonSnippet } = await import('./warm-python-loader.mjs')
// The prestart runs after the loader's --version/--help fast paths, before the bundle is read or compiled.
const out = loaderSource(bundled.outputFiles[0].text, { prestart: warmPythonSnippet('agent/step/warm-python.py') })
await mkdir('dist', { recursive: true })
// Whole or not at all: a running agent (or a test) never reads a half-written file.
await writeFile(`${outfile}.tmp`, out, { mode: 0o755 })
await chmod(`${outfile}.tmp`, 0o755)
await rename(`${outfile}.tmp`, outfile)
