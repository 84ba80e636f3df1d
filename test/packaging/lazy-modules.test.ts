// The bundle's lazy loading (scripts/lazy-modules.mjs): built-in modules load when first used and serve their own functions; packed package groups unpack to working code; a start that ends early loads neither.
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AGENT, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

// Reports, as JSON, what it saw: whether crypto was loaded before and after first use, and whether the
// imported functions and classes are the real module's own.
const FIXTURE = `import { createHash } from 'node:crypto'
import * as c from 'node:crypto'
import * as cp from 'node:child_process'
import fsp from 'node:fs/promises'
import { parse } from 'yaml'
const loaded = (m) => process.moduleLoadList.includes('NativeModule ' + m)
const realRequire = eval('require')
const before = { crypto: loaded('crypto'), child_process: loaded('child_process') }
const digest = createHash('sha256').update('x').digest('hex')
const after = { crypto: loaded('crypto'), child_process: loaded('child_process') }
process.stdout.write(JSON.stringify({
  before,
  after,
  digest,
  sameFunction: createHash === realRequire('node:crypto').createHash,
  sameClass: cp.ChildProcess === realRequire('node:child_process').ChildProcess,
  defaultImport: fsp.readFile === realRequire('node:fs/promises').readFile,
  // A name the real module keeps non-enumerable (crypto.rng, deprecated) is served too.
  nonEnumerable: c.rng === realRequire('node:crypto').rng && typeof c.rng === 'function',
  yaml: parse('a: [1, "*/"]'),
}))
`

describe('lazy loading in the bundle', () => {
  it('loads a built-in module at its first use and serves its own functions and classes; a packed group unpacks to working code', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'entry.mjs'), FIXTURE)
    const build = `import { build } from 'esbuild'
import { lazyBuiltins, lazyModules } from ${JSON.stringify(join(REPO, 'scripts', 'lazy-modules.mjs'))}
const common = { platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' }
await build({ ...common, entryPoints: [process.argv[1]], bundle: true, outfile: process.argv[2], nodePaths: [${JSON.stringify(join(REPO, 'node_modules'))}],
  plugins: [lazyModules({ yaml: ['yaml'] }, common), lazyBuiltins(['crypto', 'child_process', 'fs/promises'])] })`
    const out = join(dir, 'bundle.cjs')
    const b = spawnSync(process.execPath, ['--input-type=module', '-e', build, join(dir, 'entry.mjs'), out], { cwd: REPO, encoding: 'utf8', timeout: 60_000 })
    expect(b.status, b.stderr).toBe(0)
    const r = spawnSync(process.execPath, [out], { encoding: 'utf8', timeout: 30_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({
      before: { crypto: false, child_process: false },
      after: { crypto: true, child_process: false },
      digest: '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881',
      sameFunction: true,
      sameClass: true,
      defaultImport: true,
      nonEnumerable: true,
      yaml: { a: [1, '*/'] },
    })
  })

  it('keeps a start that ends at a usage error from loading the step\'s built-in modules and the packed groups', () => {
    const dir = tempDir()
    const observer = join(dir, 'observer.cjs')
    const observed = join(dir, 'observed.json')
    writeFileSync(observer, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(observed)}, JSON.stringify(process.moduleLoadList)))\n`)
    const r = spawnSync(AGENT, ['--no-such-flag'], { env: { ...process.env, NODE_OPTIONS: `--require ${observer}` }, encoding: 'utf8', timeout: 30_000 })
    expect(r.status).toBe(64)
    expect(r.stderr).toContain('Unknown argument')
    const list = JSON.parse(readFileSync(observed, 'utf8')) as string[]
    // zlib would be the first step of unpacking a group.
    for (const m of ['http', 'child_process', 'crypto', 'zlib', 'fs/promises']) expect([m, list.includes(`NativeModule ${m}`)]).toEqual([m, false])
  })
})
