import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { fetchCode } from '../../agent/code/code-fetch'
import type { FetchOptions } from '../../agent/code/code-fetch'
import { AgentError } from '../../agent/errors'
import { startServer } from '../helpers/http-server'
import { tarGz } from '../helpers/tarball'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const FLOW = 'from metaflow import FlowSpec, step\n'
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex')
let closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.map((c) => c()))
  closers = []
})

function options(url: string, extra: Partial<FetchOptions> = {}): FetchOptions {
  return {
    url,
    allowHttp: true,
    workDir: join(tempDir(), 'work'),
    maxBytes: 1 << 20,
    timeoutMs: 10_000,
    attempts: 5,
    minDelayMs: 10,
    maxDelayMs: 50,
    log: () => undefined,
    ...extra,
  }
}

async function serve(handler: Parameters<typeof startServer>[0]) {
  const s = await startServer(handler)
  closers.push(s.close)
  return s
}

describe('fetching code over http', () => {
  it('retries 503, 429 and dropped connections, then keeps the complete file', async () => {
    const s = await serve((req, res, hit) => {
      if (hit === 1) return res.writeHead(503).end()
      if (hit === 2) return res.writeHead(429, { 'retry-after': '0' }).end()
      if (hit === 3) return req.socket.destroy()
      res.writeHead(200, { 'content-type': 'text/x-python' }).end(FLOW)
    })
    const logs: string[] = []
    const got = await fetchCode(options(`${s.url}/flows/my_flow.py`, { sha256: sha(FLOW), log: (l) => logs.push(l) }))
    expect(s.hits()).toBe(4)
    expect(got.flowPath.endsWith('my_flow.py')).toBe(true)
    expect(readFileSync(got.flowPath, 'utf8')).toBe(FLOW)
    expect(got.sha256).toBe(sha(FLOW))
    expect(logs.filter((l) => /retrying in/.test(l))).toHaveLength(3)
    expect(readdirSync(join(got.flowPath, '..'))).toEqual(['my_flow.py'])
  })

  it('does not retry a 404 and leaves nothing behind', async () => {
    const s = await serve((_req, res) => res.writeHead(404).end('nope'))
    const opts = options(`${s.url}/missing.py`)
    const err = await fetchCode(opts).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentError)
    expect((err as AgentError).kind).toBe('codeUnavailable')
    expect(String((err as AgentError).cause)).toMatch(/HTTP 404/)
    expect(s.hits()).toBe(1)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('refuses to run code whose sha256 does not match, and keeps no copy', async () => {
    const s = await serve((_req, res) => res.writeHead(200).end(FLOW + '# tampered\n'))
    const opts = options(`${s.url}/flow.py`, { sha256: sha(FLOW) })
    const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(err.message).toMatch(/refusing to run .*sha256/)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('refuses plain http without a sha256 unless the user opts in', async () => {
    const err = (await fetchCode(options('http://127.0.0.1:9/flow.py', { allowHttp: false })).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('usage')
    expect(err.hint).toMatch(/--code-sha256/)
  })

  it('gives up at the size cap without writing a partial file', async () => {
    const big = 'x'.repeat(4096)
    const s = await serve((_req, res) => {
      // no content-length: the cap must hold while streaming
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.end(big)
    })
    const opts = options(`${s.url}/flow.py`, { maxBytes: 1000 })
    const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(s.hits()).toBe(1)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('stops retrying at the overall deadline', async () => {
    const s = await serve((_req, res) => res.writeHead(503).end())
    const started = Date.now()
    const err = (await fetchCode(options(`${s.url}/flow.py`, { timeoutMs: 300, attempts: 100, minDelayMs: 100, maxDelayMs: 100 })).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeUnavailable')
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('refuses a redirect to a file:// URL, naming the hop', async () => {
    const s = await serve((_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end())
    const opts = options(`${s.url}/flow.py`, { sha256: sha(FLOW) })
    const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(err.message).toBe(`refusing to follow the redirect from ${s.url}/flow.py to file:///etc/passwd: only http(s) redirects are followed`)
    expect(s.hits()).toBe(1)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('follows a redirect to plain http when the content is pinned', async () => {
    const target = await serve((_req, res) => res.writeHead(200).end(FLOW))
    const s = await serve((_req, res) => res.writeHead(301, { location: `${target.url}/real_flow.py` }).end())
    const got = await fetchCode(options(`${s.url}/my_flow.py`, { allowHttp: false, sha256: sha(FLOW) }))
    expect(readFileSync(got.flowPath, 'utf8')).toBe(FLOW)
    expect(target.hits()).toBe(1)
  })

  it('gives up after 5 redirects without retrying', async () => {
    const s = await serve((req, res) => res.writeHead(302, { location: `${req.url}x` }).end())
    const err = (await fetchCode(options(`${s.url}/flow.py`)).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeUnavailable')
    expect(String(err.cause)).toMatch(/more than 5 redirects/)
    expect(s.hits()).toBe(6)
  })

  it('stops a stalled download when its signal aborts, throwing the reason and leaving nothing', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' })
      res.write(FLOW)
    })
    const stop = new AbortController()
    const opts = options(`${s.url}/flow.py`, { signal: stop.signal })
    const pending = fetchCode(opts).catch((e: unknown) => e)
    while (s.hits() === 0) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 100))
    const reason = new Error('stopped by SIGTERM')
    stop.abort(reason)
    expect(await pending).toBe(reason)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('keeps secrets in the query string out of its messages', async () => {
    const s = await serve((_req, res) => res.writeHead(403).end())
    const err = (await fetchCode(options(`${s.url}/flow.py?X-Amz-Signature=topsecret`)).catch((e: unknown) => e)) as AgentError
    expect(err.message).not.toMatch(/topsecret/)
  })
})

describe('fetching code from a file', () => {
  it('refuses a FIFO at once instead of blocking until the deadline', async () => {
    const dir = tempDir()
    const fifo = join(dir, 'flow.py')
    execFileSync('mkfifo', [fifo])
    const started = Date.now()
    const opts = options(`file://${fifo}`, { timeoutMs: 60_000 })
    const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('usage')
    expect(err.message).toBe(`failed to read file://${fifo}: it is a FIFO, not a regular file`)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('refuses a folder and a device', async () => {
    for (const [path, kind] of [[tempDir(), 'a folder'], ['/dev/zero', 'a device']] as const) {
      const err = (await fetchCode(options(`file://${path}`)).catch((e: unknown) => e)) as AgentError
      expect(err.kind).toBe('usage')
      expect(err.message).toMatch(new RegExp(`it is ${kind}, not a regular file`))
    }
  })
})

describe('fetching a package', () => {
  it('unpacks a .tar.gz and finds the flow named by --flow-file', async () => {
    const pkg = tarGz([{ path: 'flows/', type: 'Directory' }, { path: 'flows/my_flow.py', body: FLOW }, { path: 'helpers.py', body: 'X = 1\n' }])
    const s = await serve((_req, res) => res.writeHead(200).end(pkg))
    const got = await fetchCode(options(`${s.url}/code.tar.gz`, { flowFile: 'flows/my_flow.py', sha256: sha(pkg) }))
    expect(readFileSync(got.flowPath, 'utf8')).toBe(FLOW)
    expect(existsSync(join(got.codeDir, 'helpers.py'))).toBe(true)
  })

  for (const [what, entry] of [
    ['a path with ..', { path: '../evil.py', body: 'x' }],
    ['an absolute path', { path: '/tmp/evil.py', body: 'x' }],
    ['a symlink', { path: 'link', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
    ['a hard link', { path: 'hard', type: 'Link', linkpath: 'flow.py' }],
    ['a fifo', { path: 'pipe', type: 'FIFO' }],
  ] as const) {
    it(`refuses a package with ${what} and unpacks nothing`, async () => {
      const dir = tempDir()
      const file = join(dir, 'code.tar.gz')
      writeFileSync(file, tarGz([{ path: 'flow.py', body: FLOW }, entry]))
      const opts = options(`file://${file}`)
      const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
      expect(err).toBeInstanceOf(AgentError)
      expect(err.kind).toBe('codeRejected')
      expect(readdirSync(opts.workDir)).toEqual([])
    })
  }

  it("leaves what was in a reused work dir alone, code/ included (a .tar.gz deleted DIR/code/ before unpacking)", async () => {
    const dir = tempDir()
    const first = join(dir, 'first.tgz')
    const second = join(dir, 'second.tgz')
    writeFileSync(first, tarGz([{ path: 'flow.py', body: FLOW }, { path: 'stale.py', body: 'X = 1\n' }]))
    writeFileSync(second, tarGz([{ path: 'flow.py', body: FLOW + '# v2\n' }]))
    const workDir = join(dir, 'work')
    mkdirSync(join(workDir, 'code'), { recursive: true })
    writeFileSync(join(workDir, 'code', 'mine.txt'), 'user data')
    writeFileSync(join(workDir, 'flow.py'), 'user flow')
    const one = await fetchCode(options(`file://${first}`, { workDir, flowFile: 'flow.py' }))
    const two = await fetchCode(options(`file://${second}`, { workDir, flowFile: 'flow.py' }))
    expect(readFileSync(join(workDir, 'code', 'mine.txt'), 'utf8')).toBe('user data')
    expect(readFileSync(join(workDir, 'flow.py'), 'utf8')).toBe('user flow')
    expect(two.codeDir).not.toBe(one.codeDir)
    expect(readFileSync(two.flowPath, 'utf8')).toMatch(/# v2/)
    expect(readdirSync(two.codeDir)).toEqual(['flow.py'])
  })

  it('removes only its own folder when a package is refused in a reused work dir', async () => {
    const dir = tempDir()
    const file = join(dir, 'code.tgz')
    writeFileSync(file, tarGz([{ path: 'flow.py', body: FLOW }, { path: '../evil.py', body: 'x' }]))
    const workDir = join(dir, 'work')
    mkdirSync(join(workDir, 'code'), { recursive: true })
    writeFileSync(join(workDir, 'code', 'mine.txt'), 'user data')
    const err = (await fetchCode(options(`file://${file}`, { workDir })).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(readdirSync(workDir)).toEqual(['code'])
    expect(readdirSync(join(workDir, 'code'))).toEqual(['mine.txt'])
  })

  it('refuses a package with more entries than allowed and unpacks nothing', async () => {
    const dir = tempDir()
    const file = join(dir, 'code.tgz')
    writeFileSync(file, tarGz(['a.py', 'b.py', 'c.py', 'd.py'].map((p) => ({ path: p, body: FLOW }))))
    const opts = options(`file://${file}`, { maxEntries: 3 })
    const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(String(err.cause)).toMatch(/more than 3 entries/)
    expect(readdirSync(opts.workDir)).toEqual([])
  })

  it('caps the unpacked bytes with --code-max-bytes, also when the bytes follow the end of the archive', async () => {
    const dir = tempDir()
    const declared = join(dir, 'declared.tgz')
    writeFileSync(declared, tarGz([{ path: 'flow.py', body: FLOW + '#'.repeat(300_000) }]))
    const trailing = join(dir, 'trailing.tgz')
    // a valid archive, then a megabyte of zeros after its end-of-archive blocks
    writeFileSync(trailing, gzipSync(Buffer.concat([gunzipSync(tarGz([{ path: 'flow.py', body: FLOW }])), Buffer.alloc(1 << 20)])))
    for (const file of [declared, trailing]) {
      const opts = options(`file://${file}`, { maxBytes: 200_000 })
      const err = (await fetchCode(opts).catch((e: unknown) => e)) as AgentError
      expect(err.kind).toBe('codeRejected')
      expect(String(err.cause)).toMatch(/unpacks to more than 200000 bytes/)
      expect(readdirSync(opts.workDir)).toEqual([])
    }
  })

  it('refuses a .tar.gz inside the .gz instead of inflating it again unmetered', async () => {
    const dir = tempDir()
    const file = join(dir, 'twice.tgz')
    writeFileSync(file, gzipSync(tarGz([{ path: 'flow.py', body: FLOW }])))
    const err = (await fetchCode(options(`file://${file}`)).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('codeRejected')
    expect(String(err.cause)).toMatch(/compressed twice/)
  })

  it('asks for --flow-file when the package has several top-level flows', async () => {
    const dir = tempDir()
    const file = join(dir, 'code.tgz')
    writeFileSync(file, tarGz([{ path: 'a.py', body: FLOW }, { path: 'b.py', body: FLOW }]))
    const err = (await fetchCode(options(`file://${file}`)).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('usage')
    expect(err.hint).toMatch(/--flow-file.*a\.py, b\.py/)
  })

  it('refuses a --flow-file that points outside the package', async () => {
    const dir = tempDir()
    const file = join(dir, 'code.tgz')
    writeFileSync(file, tarGz([{ path: 'a.py', body: FLOW }]))
    const err = (await fetchCode(options(`file://${file}`, { flowFile: '../../etc/passwd' })).catch((e: unknown) => e)) as AgentError
    expect(err.kind).toBe('usage')
  })
})
