// The agent file's fast paths: `--version`, `--help` and `-h` print, byte for byte and with the same exit code, what the bundle itself prints, at every width, without loading the bundle where the text was rendered at build time.
import { spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AGENT } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

interface Setup {
  agent: string
  /** a preload that records, at exit, whether this start compiled the bundle (node:vm is the loader's first step towards it) */
  observer: string
  cwd: string
}

function setup(): Setup {
  const dir = tempDir()
  const agent = join(dir, 'metaflow-kfp')
  copyFileSync(AGENT, agent)
  const observer = join(dir, 'observer.cjs')
  writeFileSync(observer, `process.on('exit', () => require('fs').writeFileSync(process.env.OBSERVED, process.moduleLoadList.includes('NativeModule vm') ? 'bundle' : 'fast'))\n`)
  const cwd = join(dir, 'a', 'b', 'c')
  mkdirSync(cwd, { recursive: true })
  return { agent, observer, cwd }
}

/** The environment of a start; `bundle` makes the loader load the bundle (asking it to write its code cache changes nothing it prints). */
function envFor(s: Setup, observed: string, bundle: boolean, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.METAFLOW_KFP_TIMINGS
  delete env.METAFLOW_KFP_WRITE_CODE_CACHE
  return { ...env, NODE_OPTIONS: `--require ${s.observer}`, OBSERVED: observed, ...(bundle ? { METAFLOW_KFP_WRITE_CODE_CACHE: '1' } : {}), ...extra }
}

interface Outcome {
  status: number | null
  stdout: Buffer
  stderr: Buffer
  /** 'fast' or 'bundle' */
  path: string
}

let n = 0
function observedFile(s: Setup): string {
  return join(s.cwd, '..', '..', `observed-${n++}`)
}

/** The agent with stdout on a pipe. */
function piped(s: Setup, args: string[], bundle: boolean, extra: Record<string, string> = {}): Outcome {
  const observed = observedFile(s)
  const r = spawnSync(s.agent, args, { cwd: s.cwd, env: envFor(s, observed, bundle, extra), timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, path: readFileSync(observed, 'utf8') }
}

/** The agent with stdout on a regular file. */
function toFile(s: Setup, args: string[], bundle: boolean): Outcome {
  const observed = observedFile(s)
  const out = `${observed}.out`
  const fd = openSync(out, 'w')
  try {
    const r = spawnSync(s.agent, args, { cwd: s.cwd, env: envFor(s, observed, bundle), stdio: ['ignore', fd, 'pipe'], timeout: 30_000 })
    return { status: r.status, stdout: readFileSync(out), stderr: r.stderr, path: readFileSync(observed, 'utf8') }
  } finally {
    closeSync(fd)
  }
}

/** The agent on a real terminal (util-linux `script`) of `columns` columns; stdout and stderr both arrive through it. */
function onTerminal(s: Setup, args: string[], columns: number, bundle: boolean): Outcome {
  const observed = observedFile(s)
  // The paths are this test's own temp paths: no quotes in them.
  const cmd = `stty cols ${columns} rows 50; exec '${s.agent}' ${args.join(' ')}`
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: s.cwd, env: envFor(s, observed, bundle), input: '', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, path: existsSync(observed) ? readFileSync(observed, 'utf8') : `none: ${r.stderr}` }
}

const hasScript = spawnSync('script', ['--version']).status === 0

describe('the fast paths of the agent file', () => {
  for (const args of [['--version'], ['--help'], ['-h']]) {
    it(`print for ${args[0]} on a pipe the bundle's own bytes and exit code, without loading the bundle`, () => {
      const s = setup()
      const fast = piped(s, args, false)
      const slow = piped(s, args, true)
      expect(slow.path).toBe('bundle')
      expect(fast.path).toBe('fast')
      expect(fast.status).toBe(0)
      expect({ ...fast, path: '' }).toEqual({ ...slow, path: '' })
      expect(fast.stdout.length).toBeGreaterThan(0)
    })
  }

  it('print --help into a file as the bundle does', () => {
    const s = setup()
    const fast = toFile(s, ['--help'], false)
    const slow = toFile(s, ['--help'], true)
    expect([fast.path, slow.path]).toEqual(['fast', 'bundle'])
    expect({ ...fast, path: '' }).toEqual({ ...slow, path: '' })
  })

  it('answer --version with stdout on /dev/null without loading the bundle', () => {
    const s = setup()
    const observed = observedFile(s)
    const r = spawnSync(s.agent, ['--version'], { cwd: s.cwd, env: envFor(s, observed, false), stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 })
    expect(r.status).toBe(0)
    expect(r.stderr.toString()).toBe('')
    expect(readFileSync(observed, 'utf8')).toBe('fast')
  })

  it.skipIf(!hasScript)('print --help on a terminal as the bundle does at each width, and leave widths not rendered at build time to the bundle', () => {
    const s = setup()
    const seen = new Map<number, string>()
    for (const [columns, path] of [[80, 'fast'], [100, 'fast'], [110, 'fast'], [150, 'fast'], [90, 'bundle']] as const) {
      const fast = onTerminal(s, ['--help'], columns, false)
      const slow = onTerminal(s, ['--help'], columns, true)
      expect([columns, fast.path, slow.path]).toEqual([columns, path, 'bundle'])
      expect(fast.status).toBe(0)
      expect({ ...fast, path: '' }).toEqual({ ...slow, path: '' })
      seen.set(columns, fast.stdout.toString())
    }
    // The terminal's width was in effect: each rendered width prints its own text, and 150 columns print as 110 (cli.ts caps the width).
    expect(new Set([seen.get(80), seen.get(90), seen.get(100), seen.get(110)]).size).toBe(4)
    expect(seen.get(150)).toBe(seen.get(110))
  })

  it('prints the same English help and usage errors wherever it runs: translation files beside the working folder are never read', () => {
    const s = setup()
    // Where bundled yargs used to look (<cwd>/../../../locales): a translation and a broken file.
    const locales = join(s.cwd, '..', '..', '..', 'locales')
    mkdirSync(locales)
    writeFileSync(join(locales, 'de_DE.json'), JSON.stringify({ 'Show help': 'Hilfe zeigen', 'Missing required arguments: %s': 'Fehlende Argumente: %s' }))
    writeFileSync(join(locales, 'en.json'), '{ not json')
    const env = { LC_ALL: 'de_DE.UTF-8' }
    const fast = piped(s, ['--help'], false, env)
    const slow = piped(s, ['--help'], true, env)
    expect(fast.path).toBe('fast')
    expect(slow.path).toBe('bundle')
    expect(slow.stdout.toString()).toContain('Show help')
    expect({ ...fast, path: '' }).toEqual({ ...slow, path: '' })
    for (const lang of [env, { LC_ALL: 'en_US.UTF-8' }]) {
      const usage = piped(s, ['step'], false, lang)
      expect(usage.status).toBe(64)
      expect(usage.stderr.toString()).toMatch(/^metaflow-kfp: error: Missing required arguments: code-url, run-id, step/m)
    }
  })

  it('leave --version to the bundle when timings are asked for, which only the bundle prints', () => {
    const s = setup()
    const r = piped(s, ['--version'], false, { METAFLOW_KFP_TIMINGS: '1' })
    expect(r.path).toBe('bundle')
    expect(r.stderr.toString()).toMatch(/timings: code-cache=none /)
  })

  it('leave to the bundle anything but exactly one of the flags', () => {
    const s = setup()
    for (const args of [['--version', '--help'], ['step', '--help'], []]) {
      const r = piped(s, args, false)
      expect([args, r.path]).toEqual([args, 'bundle'])
    }
    expect(piped(s, [], false).status).toBe(64)
  })

  it('keep the agent file ASCII throughout, so node holds its text one byte a character', () => {
    expect(/[^\x00-\x7f]/.test(readFileSync(AGENT, 'latin1'))).toBe(false)
  })
})
