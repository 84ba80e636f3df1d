// An esbuild plugin that keeps large packages inside the one bundle but out of start-up: each group
// is bundled on its own, embedded as a compressed string, and unpacked and compiled on first use, so
// `--version` and a local step neither parse the AWS SDK, undici, yaml or tar nor read them whole.
import { build } from 'esbuild'
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib'

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/** groups: { name: [package, ...] }; a package of a group resolves to that group's blob, compiled once. */
export function lazyModules(groups, options) {
  const owner = new Map()
  for (const [group, pkgs] of Object.entries(groups)) for (const p of pkgs) owner.set(p, group)
  const filter = new RegExp(`^(${[...owner.keys()].map(escape).join('|')})$`)
  return {
    name: 'lazy-modules',
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'lazy-module' }))
      b.onLoad({ filter: /.*/, namespace: 'lazy-module' }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(`lazy-blob:${owner.get(args.path)}`)})[${JSON.stringify(args.path)}]`,
        loader: 'js',
      }))
      b.onResolve({ filter: /^lazy-blob:/ }, (args) => ({ path: args.path.slice('lazy-blob:'.length), namespace: 'lazy-blob' }))
      b.onLoad({ filter: /.*/, namespace: 'lazy-blob' }, async (args) => {
        const pkgs = groups[args.path]
        const entry = `module.exports = {${pkgs.map((m) => `${JSON.stringify(m)}: require(${JSON.stringify(m)})`).join(',')}}`
        const inner = await build({
          ...options,
          stdin: { contents: entry, resolveDir: process.cwd(), loader: 'js' },
          bundle: true,
          write: false,
          plugins: [],
        })
        const code = inner.outputFiles[0].text
        return {
          // The real require is passed in: these packages need only Node's built-in modules.
          contents: `const m = { exports: {} }; new Function('module', 'exports', 'require', ${unpackExpression(code, args.path)})(m, m.exports, require); module.exports = m.exports`,
          loader: 'js',
        }
      })
    },
  }
}

/**
 * A JavaScript expression whose value is `code`, kept brotli-compressed in base64. Why: every start
 * reads and skims the whole agent file (a few ms a megabyte), and these packages are 1.3 of its
 * 1.6 MB while most starts never use them; one that does unpacks a group in 1 to 3 ms. Throws
 * unless the packed text gives back `code` exactly.
 */
export function unpackExpression(code, name) {
  // ASCII (esbuild's default output) survives latin1, which decodes without looking at the bytes.
  if (/[^\x00-\x7f]/.test(code)) throw new Error(`failed to pack the lazy module ${name}: its code is not ASCII`)
  const packed = brotliCompressSync(Buffer.from(code, 'latin1'), { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_SIZE_HINT]: code.length } }).toString('base64')
  if (brotliDecompressSync(Buffer.from(packed, 'base64')).toString('latin1') !== code) throw new Error(`failed to pack the lazy module ${name}: it does not unpack to itself`)
  return `require('node:zlib').brotliDecompressSync(Buffer.from(${JSON.stringify(packed)}, 'base64')).toString('latin1')`
}
