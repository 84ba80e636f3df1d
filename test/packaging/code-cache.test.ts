// The agent file's code-cache loader: a cache written beside a copy of the agent (and one for each lazy package group) is used by the next start, and a cache that does not fit is ignored.
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { AGENT, PYTHON, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

/** A copy of the built agent in a fresh folder, so its cache file is this test's alone. */
function agentCopy(): string {
  const agent = join(tempDir(), 'metaflow-kfp')
  copyFileSync(AGENT, agent)
  return agent
}

function version(agent: string, env: Record<string, string> = {}) {
  const r = spawnSync(agent, ['--version'], { env: { ...process.env, METAFLOW_KFP_TIMINGS: '1', ...env }, encoding: 'utf8', timeout: 30_000 })
  const cache = /timings: code-cache=(\w+)/.exec(r.stderr)?.[1]
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr, cache }
}

describe('the code cache beside the agent', () => {
  it('is written at exit when asked, and the next start compiles the bundle from it', () => {
    const agent = agentCopy()
    expect(version(agent).cache).toBe('none')
    expect(existsSync(`${agent}.v8cache`)).toBe(false)
    const writing = version(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    expect(writing.code).toBe(0)
    expect(existsSync(`${agent}.v8cache`)).toBe(true)
    const next = version(agent)
    expect(next).toMatchObject({ code: 0, cache: 'used' })
    expect(next.stdout).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('is ignored when it was made for another build of the agent (V8 checks only the length of the code)', () => {
    const agent = agentCopy()
    version(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    const cache = readFileSync(`${agent}.v8cache`)
    // Another build's id in front of this build's cache data.
    writeFileSync(`${agent}.v8cache`, Buffer.concat([Buffer.from('0'.repeat(32), 'latin1'), cache.subarray(32)]))
    expect(version(agent)).toMatchObject({ code: 0, cache: 'none' })
  })

  it('compiles the bundle as usual when V8 rejects the cache', () => {
    const agent = agentCopy()
    version(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    const cache = readFileSync(`${agent}.v8cache`)
    writeFileSync(`${agent}.v8cache`, Buffer.concat([cache.subarray(0, 32), Buffer.alloc(cache.length - 32, 7)]))
    const r = version(agent)
    expect(r).toMatchObject({ code: 0, cache: 'rejected' })
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+/)
  })
})

describe('the code caches of the lazy package groups', () => {
  let moto: Moto
  beforeAll(async () => {
    moto = await startMoto()
    await makeBucket(moto.endpoint, 'code')
  }, 60_000)
  afterAll(async () => {
    await moto?.stop()
  })

  const GROUPS = ['aws', 'undici', 'yaml', 'tar']

  /**
   * A step whose code is an S3 object that is missing: the agent loads the AWS SDK group, signs and sends
   * a GetObject to moto and reads its NoSuchKey answer, then exits 69. Resolves with the exit code, the
   * error line and what the timings say of the AWS group's cache.
   */
  function s3Start(agent: string, env: Record<string, string> = {}) {
    const dir = tempDir()
    const args = ['step', 'start', '--code-url', 's3://code/no-such-flow.py', '--python', PYTHON, '--run-id', 'r1', '--task-id', 't1', '--datastore-root', join(dir, '.metaflow'), '--output-dir', join(dir, 'out')]
    const child = spawn(agent, args, { cwd: dir, env: agentEnv({ ...MOTO_KEYS, AWS_DEFAULT_REGION: 'us-east-1', AWS_ENDPOINT_URL: moto.endpoint, HOME: dir, METAFLOW_KFP_TIMINGS: '1', ...env }), stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    return new Promise<{ code: number | null; error: string | undefined; cache: string | undefined; stderr: string }>((res) =>
      child.once('close', (code) => res({ code, error: /^metaflow-kfp: error: .*$/m.exec(stderr)?.[0], cache: /timings: .*\bcache-aws=(\w+)/.exec(stderr)?.[1], stderr })),
    )
  }

  it('are all written by a start that loads no group, and an S3 start then compiles the AWS SDK from its cache with the same outcome', async () => {
    const agent = agentCopy()
    const plain = await s3Start(agent)
    expect(plain, plain.stderr).toMatchObject({ code: 69, cache: 'none' })
    expect(plain.error).toMatch(/failed to fetch s3:\/\/code\/no-such-flow\.py: .*NoSuchKey/)
    const writing = version(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    expect(writing.code, writing.stderr).toBe(0)
    for (const g of GROUPS) expect([g, existsSync(`${agent}.${g}.v8cache`)]).toEqual([g, true])
    const cached = await s3Start(agent)
    expect(cached, cached.stderr).toMatchObject({ code: 69, cache: 'used', error: plain.error })
    expect(cached.stderr).toMatch(/ lazy-aws=[\d.]+@[\d.]+ /)
  }, 120_000)

  it('fall back to compiling the group, with the same outcome, when one is damaged or was made for other code', async () => {
    const agent = agentCopy()
    version(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    const good = readFileSync(`${agent}.aws.v8cache`)
    const baseline = await s3Start(agent)
    expect(baseline, baseline.stderr).toMatchObject({ code: 69, cache: 'used' })
    // V8's part damaged: V8 rejects it.
    writeFileSync(`${agent}.aws.v8cache`, Buffer.concat([good.subarray(0, 32), Buffer.alloc(good.length - 32, 7)]))
    const damaged = await s3Start(agent)
    expect(damaged, damaged.stderr).toMatchObject({ code: 69, cache: 'rejected', error: baseline.error })
    // Another build's id: never handed to V8.
    writeFileSync(`${agent}.aws.v8cache`, Buffer.concat([Buffer.from('0'.repeat(32), 'latin1'), good.subarray(32)]))
    const other = await s3Start(agent)
    expect(other, other.stderr).toMatchObject({ code: 69, cache: 'none', error: baseline.error })
    // Cut short (no data after the id).
    writeFileSync(`${agent}.aws.v8cache`, good.subarray(0, 32))
    expect(await s3Start(agent)).toMatchObject({ code: 69, cache: 'none', error: baseline.error })
  }, 120_000)

  it('keep the groups\' packed text out of the bundle\'s cache, which every start reads, even when the writing start used the group', async () => {
    const agent = agentCopy()
    const written = await s3Start(agent, { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
    expect(written, written.stderr).toMatchObject({ code: 69, cache: 'none' })
    const bundleCache = readFileSync(`${agent}.v8cache`)
    // Each group's packed text is a long base64 string literal in the agent file.
    const packed = [...readFileSync(agent, 'latin1').matchAll(/"([A-Za-z0-9+/=]{20000,})"/g)].map((m) => m[1] ?? '')
    expect(packed.length).toBe(GROUPS.length)
    for (const p of packed) expect(bundleCache.includes(p.slice(5000, 5100))).toBe(false)
    expect((await s3Start(agent)).cache).toBe('used')
  }, 120_000)
})

// Holds `*/` in a string, a regex, a character class, a template, a raw template and around a real
// comment, plus a \x01 (the first escape the loader would pick), so each must survive the comment.
const FIXTURE = [
  'const values = {',
  '  string: "a*/b",',
  '  regex: /x*/g.source + /x*/g.flags,',
  '  replaced: "xxy/".replace(/x*/, "-"),',
  '  regexClass: /[*/]+/.exec("1*/2")[0],',
  '  template: `c*/d${1}*/`,',
  '  raw: String.raw`e*/f\\*/`,',
  '  comment: 8*/* a comment */2,',
  '  control: "\x01*/",',
  '}',
  'process.stdout.write(JSON.stringify({ values, codeCache: module.codeCache }))',
  '',
].join('\n')

/** The loader scripts/code-cache-loader.mjs makes for `bundle` (without fast paths), written to `path`. */
function writeLoader(bundle: string, path: string): void {
  const script = `import { loaderText } from ${JSON.stringify(resolve(REPO, 'scripts', 'code-cache-loader.mjs'))}
import { readFileSync, writeFileSync } from 'node:fs'
writeFileSync(process.argv[2], loaderText(readFileSync(process.argv[1], 'utf8')), { mode: 0o755 })`
  const src = `${path}.bundle.js`
  writeFileSync(src, bundle)
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, src, path], { encoding: 'utf8', timeout: 30_000 })
  expect(r.status, r.stderr).toBe(0)
}

describe('the bundle kept in a comment of the agent file', () => {
  it('runs exactly as the bundle on its own, with `*/` in strings, regexes, templates and around comments, and from the code cache', () => {
    const dir = tempDir()
    const loader = join(dir, 'loader')
    writeLoader(FIXTURE, loader)
    const direct = spawnSync(process.execPath, [`${loader}.bundle.js`], { encoding: 'utf8', timeout: 30_000 })
    const expected = JSON.parse(direct.stdout) as { values: Record<string, unknown> }
    expect(expected.values).toMatchObject({ string: 'a*/b', comment: 16, control: '\x01*/' })
    const run = (env: Record<string, string> = {}) => {
      const r = spawnSync(process.execPath, [loader], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 })
      expect(r.status, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as { values: unknown; codeCache: string }
    }
    expect(run()).toEqual({ values: expected.values, codeCache: 'none' })
    expect(run({ METAFLOW_KFP_WRITE_CODE_CACHE: '1' })).toEqual({ values: expected.values, codeCache: 'none' })
    expect(run()).toEqual({ values: expected.values, codeCache: 'used' })
  })

  it('refuses to run a bundle whose text was changed in the file (here a line ending made CRLF), naming the damage', () => {
    const dir = tempDir()
    const loader = join(dir, 'loader')
    writeLoader(FIXTURE, loader)
    const text = readFileSync(loader, 'utf8')
    const at = text.indexOf('const values')
    writeFileSync(loader, `${text.slice(0, at)}${text.slice(at).replace('\n', '\r\n')}`)
    const r = spawnSync(process.execPath, [loader], { encoding: 'utf8', timeout: 30_000 })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/failed to load .*: the bundle in it is damaged \(\d+ characters, not \d+\); reinstall metaflow-kfp/)
  })
})
