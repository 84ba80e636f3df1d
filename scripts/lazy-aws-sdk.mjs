// An esbuild plugin that keeps the AWS SDK inside the one bundle but out of start-up: it is
// bundled separately, embedded as a string, and compiled on the first S3 or STS call. V8 only
// scans a string literal, so `--version` and local-datastore steps stay as fast as without it.
import { build } from 'esbuild'

const LAZY = ['@aws-sdk/client-s3', '@aws-sdk/credential-providers']

export function lazyAwsSdk(options) {
  return {
    name: 'lazy-aws-sdk',
    setup(b) {
      b.onResolve({ filter: /^@aws-sdk\/(client-s3|credential-providers)$/ }, (args) => ({ path: args.path, namespace: 'lazy-aws' }))
      b.onLoad({ filter: /.*/, namespace: 'lazy-aws' }, (args) => ({
        contents: `module.exports = require('lazy-aws-sdk-blob')[${JSON.stringify(args.path)}]`,
        loader: 'js',
      }))
      b.onResolve({ filter: /^lazy-aws-sdk-blob$/ }, () => ({ path: 'blob', namespace: 'lazy-aws-blob' }))
      b.onLoad({ filter: /.*/, namespace: 'lazy-aws-blob' }, async () => {
        const entry = `module.exports = {${LAZY.map((m) => `${JSON.stringify(m)}: require(${JSON.stringify(m)})`).join(',')}}`
        const inner = await build({
          ...options,
          stdin: { contents: entry, resolveDir: process.cwd(), loader: 'js' },
          bundle: true,
          write: false,
          plugins: [],
        })
        const code = inner.outputFiles[0].text
        return {
          // The real require is passed in: the SDK needs only Node's built-in modules.
          contents: `const m = { exports: {} }; new Function('module', 'exports', 'require', ${JSON.stringify(code)})(m, m.exports, require); module.exports = m.exports`,
          loader: 'js',
        }
      })
    },
  }
}
