// The text of dist/metaflow-kfp: a small loader around the bundle that compiles it through V8's code cache when one made for it sits beside it.
import { createHash } from 'node:crypto'

/** The executable's text for `bundle` (esbuild's CommonJS output). */
export function loaderSource(bundle) {
  // Wrapped as node wraps a CommonJS module, so the bundle sees the loader's own module and require.
  const code = `(function (exports, require, module, __filename, __dirname) {${bundle}\n})`
  const id = createHash('sha256').update(code).digest('hex').slice(0, 32)
  return `#!/usr/bin/env node
// metaflow-kfp, the bundled agent (scripts/build.mjs). Why a loader: it compiles the bundle with V8's
// code cache when \`<this file>.v8cache\` was made for this very bundle (the image makes one at build
// time: METAFLOW_KFP_WRITE_CODE_CACHE=1 writes it when the agent exits), which roughly halves the
// bundle's load. Without the file, or with one V8 rejects, it compiles as plain node would.
'use strict'
;(() => {
  const ID = ${JSON.stringify(id)}
  const CODE = ${JSON.stringify(code)}
  const fs = require('node:fs')
  const vm = require('node:vm')
  const cachePath = \`\${__filename}.v8cache\`
  let cachedData
  try {
    const b = fs.readFileSync(cachePath)
    // The id names the bundle: V8 itself checks only its version, its flags and the code's length.
    if (b.length > ID.length && b.toString('latin1', 0, ID.length) === ID) cachedData = b.subarray(ID.length)
  } catch {
    // no cache: compile as usual
  }
  const script = new vm.Script(CODE, { filename: __filename, cachedData })
  // For METAFLOW_KFP_TIMINGS=1: whether this start used the cache.
  module.codeCache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'
  if (process.env.METAFLOW_KFP_WRITE_CODE_CACHE === '1') {
    // At exit, so the functions this run compiled are in the cache too; whole or not at all.
    process.once('exit', () => {
      const tmp = \`\${cachePath}.\${process.pid}.tmp\`
      try {
        fs.writeFileSync(tmp, Buffer.concat([Buffer.from(ID, 'latin1'), script.createCachedData()]))
        fs.renameSync(tmp, cachePath)
      } catch (err) {
        try { fs.rmSync(tmp, { force: true }) } catch {}
        process.stderr.write(\`metaflow-kfp: warning: failed to write the code cache \${cachePath}: \${err.message}\\n\`)
      }
    })
  }
  script.runInThisContext()(exports, require, module, __filename, __dirname)
})()
`
}
