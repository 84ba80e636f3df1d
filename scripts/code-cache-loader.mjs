// The text of dist/metaflow-kfp: a small loader that answers --version and --help from text rendered at build time, and otherwise compiles the bundle (kept in a comment) through V8's code cache when one made for it sits beside it, and each lazy package group (scripts/lazy-modules.mjs) through a cache of its own.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The widths --help is rendered at. cli.ts wraps at Math.min(110, process.stdout.columns || 100):
 * 100 without a terminal, 110 on a wide one, 80 on a classic one; any other width loads the bundle.
 */
export const HELP_WIDTHS = [80, 100, 110]

/** Characters that may stand between `*` and `/` in the comment; the first one the code lacks is used. */
const ESCAPES = ['\x01', '\x03', '\x04', '\x05', '\x06', '\x0e', '\x0f', '\x10', '\x11', '\x12', '\x13', '\x14', '\x15', '\x16', '\x17', '\x18', '\x19']

/**
 * `code` as the body of a block comment. A comment ends at the first `*` `/`, so each one in the code
 * gets a character the code never holds put between the two; taking every such character out again
 * gives back the code exactly, whatever the `*` `/` was part of (a string, a regex, a template).
 * Throws if that cannot be shown for this code.
 */
export function commentBody(code) {
  const escape = ESCAPES.find((c) => !code.includes(c))
  if (escape === undefined) throw new Error('failed to build the agent file: the bundle holds every escape character the loader could use in its comment')
  const body = code.replaceAll('*/', `*${escape}/`)
  if (body.includes('*/') || decodeComment(body, escape) !== code) throw new Error('failed to build the agent file: the bundle does not round-trip through the comment that holds it')
  return { body, escape }
}

/** The inverse of commentBody; the loader runs the same expression. */
export function decodeComment(body, escape) {
  return body.replaceAll(escape, '')
}

/**
 * The executable's text for `bundle` (esbuild's CommonJS output). `fast` holds what the bundle itself
 * prints for `--version` ({ version }) and `--help` at each width ({ help: { [width]: text } });
 * without it the loader always loads the bundle. `prestart`: JavaScript run after the fast paths and
 * before the bundle is read (scripts/build.mjs: the prestarted Python for \`step\`).
 */
export function loaderText(bundle, fast = { version: undefined, help: {} }, prestart = '') {
  // Wrapped as node wraps a CommonJS module, so the bundle sees the loader's own module and require.
  const code = `(function (exports, require, module, __filename, __dirname) {${bundle}\n})`
  const id = createHash('sha256').update(code).digest('hex').slice(0, 32)
  const { body, escape } = commentBody(code)
  // JSON with every non-ASCII character escaped, so the file stays ASCII (node then keeps it in one byte a character).
  const js = (v) => JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const text = `#!/usr/bin/env node
// metaflow-kfp, the bundled agent (scripts/build.mjs). Why a loader: \`--version\` and \`--help\` print text
// the bundle itself rendered at build time (byte for byte what it would print), without compiling it;
// anything else compiles the bundle with V8's code cache when \`<this file>.v8cache\` was made for this
// very bundle (the image makes one at build time: METAFLOW_KFP_WRITE_CODE_CACHE=1 writes it when the
// agent exits), which roughly halves the bundle's load. Without the file, or with one V8 rejects, it
// compiles as plain node would. Why the bundle sits in a comment at the end: V8 skims a comment far
// faster than it scans a string literal, and the function's own source text hands it back uncopied.
'use strict'
;(() => {
  // 1. The fast paths: exactly \`--version\`, \`--help\` or \`-h\`, with nothing asked that only the bundle
  // does (timings, writing the code cache).
  const argv = process.argv
  if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '--help' || argv[2] === '-h') && process.env.METAFLOW_KFP_TIMINGS !== '1' && process.env.METAFLOW_KFP_WRITE_CODE_CACHE !== '1') {
    const VERSION = ${js(fast.version ?? null)}
    const HELP = ${js(fast.help)}
    const fs = require('node:fs')
    let out
    let tty = false
    try {
      // Why not process.stdout: making it costs more than the rest of this path (a pipe loads net and
      // streams). A terminal is a character device; of those, /dev/null (the usual one besides) is not a terminal.
      const st = fs.fstatSync(1)
      tty = st.isCharacterDevice() && st.rdev !== fs.statSync('/dev/null').rdev
      // The bundle's width (agent/cli.ts): Math.min(110, process.stdout.columns || 100); no columns off a terminal.
      out = argv[2] === '--version' ? VERSION : HELP[tty ? Math.min(110, process.stdout.columns || 100) : 100]
    } catch {
      // no stdout: the bundle answers as it would
    }
    if (typeof out === 'string') {
      if (tty) {
        process.stdout.write(out)
        return
      }
      const b = Buffer.from(out)
      let done = 0
      try {
        while (done < b.length) done += fs.writeSync(1, b, done)
      } catch {
        // A pipe that would block, or a closed one: the rest goes as the bundle writes it, with the same outcome.
        process.stdout.write(b.subarray(done))
      }
      return
    }
  }

  // 2. What starts before the bundle loads (in a block of its own, so its names cannot clash with the loader's).
  {${prestart}}
  // 3. The bundle, compiled through the code cache when there is one for it.
  const ID = ${js(id)}
  const LENGTH = ${code.length}
  const fs = require('node:fs')
  const vm = require('node:vm')
  const source = bundleSource.toString()
  const CODE = source.slice(source.indexOf('/*') + 2, source.lastIndexOf('*/'))${body === code ? '' : `.replaceAll(${js(escape)}, '')`}
  if (CODE.length !== LENGTH) throw new Error(\`failed to load \${__filename}: the bundle in it is damaged (\${CODE.length} characters, not \${LENGTH}); reinstall metaflow-kfp\`)
  const cachePath = \`\${__filename}.v8cache\`
  // The cached data after \`id\` in the file at \`path\`, or undefined. The id names the code: V8 itself
  // checks only its version, its flags and the code's length.
  const readCache = (path, id) => {
    try {
      const b = fs.readFileSync(path)
      if (b.length > id.length && b.toString('latin1', 0, id.length) === id) return b.subarray(id.length)
    } catch {
      // no cache: compile as usual
    }
    return undefined
  }
  const cacheState = (data, s) => (data === undefined ? 'none' : s.cachedDataRejected ? 'rejected' : 'used')
  const cachedData = readCache(cachePath, ID)
  const script = new vm.Script(CODE, { filename: __filename, cachedData })
  // For METAFLOW_KFP_TIMINGS=1: whether this start used the cache.
  module.codeCache = cacheState(cachedData, script)
  // 4. The bundle's lazy groups (scripts/lazy-modules.mjs: the AWS SDK, undici, yaml, tar), each compiled
  // on first use through a cache of its own, \`<this file>.<group>.v8cache\`. \`module.timings\` (agent/main.ts)
  // gets cache-<group>=used|rejected|none and a stage lazy-<group> (compiling it and running its top level).
  const groups = new Map()
  module.lazyGroup = (name, id, text) => {
    const start = performance.now()
    const path = \`\${__filename}.\${name}.v8cache\`
    const data = readCache(path, id)
    const s = new vm.Script(text(), { filename: \`\${__filename}:\${name}\`, cachedData: data })
    groups.set(name, { path, id, script: s })
    const f = s.runInThisContext()
    return (...args) => {
      try {
        return f(...args)
      } finally {
        module.timings?.note(\`cache-\${name}\`, cacheState(data, s))
        module.timings?.add(\`lazy-\${name}\`, start, performance.now() - start)
      }
    }
  }
  if (process.env.METAFLOW_KFP_WRITE_CODE_CACHE === '1') {
    const write = (path, id, s) => {
      // Whole or not at all.
      const tmp = \`\${path}.\${process.pid}.tmp\`
      try {
        fs.writeFileSync(tmp, Buffer.concat([Buffer.from(id, 'latin1'), s.createCachedData()]))
        fs.renameSync(tmp, path)
      } catch (err) {
        try { fs.rmSync(tmp, { force: true }) } catch {}
        process.stderr.write(\`metaflow-kfp: warning: failed to write the code cache \${path}: \${err.message}\\n\`)
      }
    }
    // At exit, so the functions this run compiled are in the caches too. Why every group is then
    // loaded (compiled, its top level run): the image's warm-up steps use the local datastore and never
    // load the AWS SDK or undici, yet an S3 task should find them cached, with the functions their top
    // level compiles. Why the bundle's cache is written before: loading a group compiles the bundle's
    // function that holds the group's packed text, and that text (0.5 MB for all) would go into the
    // bundle's cache, which every start reads.
    process.once('exit', () => {
      write(cachePath, ID, script)
      for (const [name, load] of Object.entries(module.lazyGroupLoaders ?? {})) {
        try {
          load()
        } catch (err) {
          process.stderr.write(\`metaflow-kfp: warning: failed to load the lazy group \${name} for its code cache: \${err?.message}\\n\`)
        }
      }
      for (const g of groups.values()) write(g.path, g.id, g.script)
    })
  }
  script.runInThisContext()(exports, require, module, __filename, __dirname)
})()
// The bundle (never called: only its text is read, above).
function bundleSource() {/*${body}*/}
`
  if (!text.isWellFormed()) throw new Error('failed to build the agent file: its text is not well-formed Unicode')
  return text
}

/**
 * What a plain loader around `bundle` prints for `args` (stdout as a string) at a terminal width
 * (undefined: no terminal), run as the loader runs it. Its environment holds only PATH, so nothing
 * around the build changes the text (the bundle reads no translations: agent/cli-strings.ts).
 * Throws unless it exits 0 with nothing on stderr: only such an answer can be printed from the loader.
 */
function render(dir, agent, args, columns) {
  const shim = join(dir, 'columns.cjs')
  // Why a preload: off a terminal, process.stdout has no columns; this gives it the terminal's.
  writeFileSync(shim, `Object.defineProperty(process.stdout, 'columns', { value: Number(process.env.RENDER_COLUMNS) })\n`)
  const r = spawnSync(process.execPath, [...(columns === undefined ? [] : ['--require', shim]), agent, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', ...(columns === undefined ? {} : { RENDER_COLUMNS: String(columns) }) },
    timeout: 60_000,
  })
  const what = `${args.join(' ')}${columns === undefined ? '' : ` at ${columns} columns`}`
  if (r.error || r.status !== 0 || r.stderr.length > 0) throw new Error(`failed to build the agent file: the bundle's ${what} exited ${r.status ?? r.signal ?? r.error?.message}: ${r.stderr}`)
  const text = r.stdout.toString('utf8')
  if (!Buffer.from(text).equals(r.stdout)) throw new Error(`failed to build the agent file: the bundle's ${what} printed bytes that are not UTF-8`)
  return text
}

/**
 * The agent file's text for `bundle` (and `prestart`, as for loaderText), as scripts/build.mjs writes
 * it: --version and --help rendered by this very bundle (run in a plain loader), then proved: the
 * finished file answers both byte for byte as the bundle does, and still loads the bundle out of its
 * comment when asked for timings.
 */
export function loaderSource(bundle, { prestart = '' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'metaflow-kfp-build-'))
  try {
    const plain = join(dir, 'plain')
    writeFileSync(plain, loaderText(bundle, undefined, prestart))
    const fast = { version: render(dir, plain, ['--version']), help: {} }
    for (const w of HELP_WIDTHS) fast.help[w] = w === 100 ? render(dir, plain, ['--help']) : render(dir, plain, ['--help'], w)
    const text = loaderText(bundle, fast, prestart)
    const agent = join(dir, 'metaflow-kfp')
    writeFileSync(agent, text)
    // (Off a terminal; test/packaging/fast-paths.test.ts checks the widths on one.)
    const checks = [
      [['--version'], fast.version],
      [['--help'], fast.help[100]],
      [['-h'], fast.help[100]],
    ]
    for (const [args, want] of checks) {
      if (render(dir, agent, args) !== want) throw new Error(`failed to build the agent file: its fast path for ${args.join(' ')} does not print what the bundle prints`)
    }
    // Timings are the bundle's own: this start had to take the bundle out of the comment and run it.
    const slow = spawnSync(process.execPath, [agent, '--version'], { cwd: dir, env: { PATH: process.env.PATH ?? '', METAFLOW_KFP_TIMINGS: '1' }, encoding: 'utf8', timeout: 60_000 })
    if (slow.status !== 0 || slow.stdout !== fast.version || !/timings: code-cache=none /.test(slow.stderr)) {
      throw new Error(`failed to build the agent file: the bundle did not run from its comment (exit ${slow.status ?? slow.signal}): ${slow.stderr}`)
    }
    return text
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
