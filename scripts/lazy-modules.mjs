// An esbuild plugin that keeps large packages inside the one bundle but out of start-up: each group
// is bundled on its own, embedded as a string, and compiled on first use. V8 only scans a string
// literal, so `--version` and a local step do not parse the AWS SDK, undici, yaml or tar.
import { build } from 'esbuild'

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
          contents: `const m = { exports: {} }; new Function('module', 'exports', 'require', ${JSON.stringify(code)})(m, m.exports, require); module.exports = m.exports`,
          loader: 'js',
        }
      })
    },
  }
}
