// An esbuild plugin that keeps large packages inside the one bundle but out of start-up: each group
// is bundled on its own, embedded as a compressed string, and unpacked and compiled on first use, so
// `--version` and a local step neither parse the AWS SDK, undici, yaml or tar nor read them whole.
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib'

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/**
 * groups: { name: [package, ...] }; a package of a group resolves to that group's blob, compiled once.
 * Each blob is the group's code as a function expression, `(function (module, exports, require) {…})`,
 * handed with an id naming that exact text to `require.main.lazyGroup(name, id, text)` when the agent's
 * loader (scripts/code-cache-loader.mjs) set one, so it compiles through a code cache of its own; in
 * any other program, to vm.runInThisContext. The bundle's start also lists every group's loader in
 * `require.main.lazyGroupLoaders` (when lazyGroup is set), so the loader can load them all before it
 * writes their caches.
 */
export function lazyModules(groups, options) {
  const owner = new Map()
  for (const [group, pkgs] of Object.entries(groups)) for (const p of pkgs) owner.set(p, group)
  const filter = new RegExp(`^(${[...owner.keys()].map(escape).join('|')})$`)
  return {
    name: 'lazy-modules',
    setup(b) {
      // Why inject: only code inside the bundle can name its groups' modules; this runs at its start.
      b.initialOptions.inject = [...(b.initialOptions.inject ?? []), 'lazy-group-loaders']
      b.onResolve({ filter: /^lazy-group-loaders$/ }, () => ({ path: 'lazy-group-loaders', namespace: 'lazy-group-loaders' }))
      b.onLoad({ filter: /.*/, namespace: 'lazy-group-loaders' }, () => ({
        contents: `const main = require.main; if (main && typeof main.lazyGroup === 'function') main.lazyGroupLoaders = {${Object.keys(groups)
          .map((g) => `${JSON.stringify(g)}: () => require(${JSON.stringify(`lazy-blob:${g}`)})`)
          .join(',')}}`,
        loader: 'js',
      }))
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
        const code = `(function (module, exports, require) {${inner.outputFiles[0].text}\n})`
        const id = createHash('sha256').update(code).digest('hex').slice(0, 32)
        return {
          // The real require is passed in: these packages need only Node's built-in modules.
          contents: [
            // Why the packed text is read from the source of a function never called: such a function is
            // never compiled, so no code cache (the bundle's is read by every start) ever holds the text.
            `function packed() { return ${JSON.stringify(packText(code, args.path))} }`,
            "const text = () => { const s = packed.toString(), q = s.search(/[\"'`]/); return require('node:zlib').brotliDecompressSync(Buffer.from(s.slice(q + 1, s.lastIndexOf(s[q])), 'base64')).toString('latin1') }",
            'const main = require.main',
            `const f = main && typeof main.lazyGroup === 'function' ? main.lazyGroup(${JSON.stringify(args.path)}, ${JSON.stringify(id)}, text) : require('node:vm').runInThisContext(text())`,
            'const m = { exports: {} }',
            'f(m, m.exports, require)',
            'module.exports = m.exports',
          ].join('\n'),
          loader: 'js',
        }
      })
    },
  }
}

/**
 * `code` brotli-compressed, in base64. Why: every start reads and skims the whole agent file (a few ms
 * a megabyte), and these packages are 1.3 of its 1.6 MB while most starts never use them; one that
 * does unpacks a group in 1 to 3 ms. Throws unless the packed text gives back `code` exactly.
 */
export function packText(code, name) {
  // ASCII (esbuild's default output) survives latin1, which decodes without looking at the bytes.
  if (/[^\x00-\x7f]/.test(code)) throw new Error(`failed to pack the lazy module ${name}: its code is not ASCII`)
  const packed = brotliCompressSync(Buffer.from(code, 'latin1'), { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_SIZE_HINT]: code.length } }).toString('base64')
  if (brotliDecompressSync(Buffer.from(packed, 'base64')).toString('latin1') !== code) throw new Error(`failed to pack the lazy module ${name}: it does not unpack to itself`)
  return packed
}

/**
 * An esbuild plugin that loads the named Node built-in modules when a property of one is first read,
 * rather than all at the bundle's start (each costs 0.5 to 6 ms to load, and a start that ends early
 * needs few). Each is replaced by an object of getters for the module's properties, which return the
 * real module's own values: the same functions and classes. The names are those of the Node that
 * builds; the bundle targets that Node.
 */
export function lazyBuiltins(names) {
  const filter = new RegExp(`^(node:)?(${names.map(escape).join('|')})$`)
  return {
    name: 'lazy-builtins',
    setup(b) {
      b.onResolve({ filter }, (args) => {
        const name = args.path.replace(/^node:/, '')
        // The stand-in's own require is of the real module.
        return args.namespace === 'lazy-builtin' ? { path: `node:${name}`, external: true } : { path: name, namespace: 'lazy-builtin' }
      })
      b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
        const real = createRequire(import.meta.url)(`node:${args.path}`)
        if (typeof real !== 'object' || real === null) throw new Error(`failed to make node:${args.path} lazy: it exports a ${typeof real}, not an object`)
        // Every own name, enumerable or not: the bundle may read any of them.
        const keys = Object.getOwnPropertyNames(real)
        return {
          contents: [
            'let m',
            `const get = () => m || (m = require(${JSON.stringify(`node:${args.path}`)}))`,
            `for (const k of ${JSON.stringify(keys)}) Object.defineProperty(module.exports, k, { get: () => get()[k], enumerable: true })`,
          ].join('\n'),
          loader: 'js',
        }
      })
    },
  }
}
