import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
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

  it('keeps secrets in the query string out of its messages', async () => {
    const s = await serve((_req, res) => res.writeHead(403).end())
    const err = (await fetchCode(options(`${s.url}/flow.py?X-Amz-Signature=topsecret`)).catch((e: unknown) => e)) as AgentError
    expect(err.message).not.toMatch(/topsecret/)
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

  it('replaces the code of an earlier package when the work dir is reused', async () => {
    const dir = tempDir()
    const first = join(dir, 'first.tgz')
    const second = join(dir, 'second.tgz')
    writeFileSync(first, tarGz([{ path: 'flow.py', body: FLOW }, { path: 'stale.py', body: 'X = 1\n' }]))
    writeFileSync(second, tarGz([{ path: 'flow.py', body: FLOW + '# v2\n' }]))
    const workDir = join(dir, 'work')
    await fetchCode(options(`file://${first}`, { workDir, flowFile: 'flow.py' }))
    const got = await fetchCode(options(`file://${second}`, { workDir, flowFile: 'flow.py' }))
    expect(readFileSync(got.flowPath, 'utf8')).toMatch(/# v2/)
    expect(readdirSync(got.codeDir)).toEqual(['flow.py'])
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
