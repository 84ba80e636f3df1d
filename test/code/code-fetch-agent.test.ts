// The code fetch through the real agent: no transport downgrade, no user files deleted, bounded unpacking, every path ends.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { agentEnv, runAgent, startAgent } from '../helpers/agent-process'
import { startServer } from '../helpers/http-server'
import { startHttpsServer } from '../helpers/https-server'
import { FLOWS, PYTHON } from '../helpers/paths'
import { tarGz } from '../helpers/tarball'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const HELLO = readFileSync(join(FLOWS, 'hello_flow.py'), 'utf8')
let closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.map((c) => c()))
  closers = []
})

/** The agent's arguments for the hello flow's start step, on a local datastore in `dir`. */
function startStep(dir: string, codeUrl: string, ...extra: string[]): string[] {
  return ['step', 'start', '--code-url', codeUrl, '--run-id', 'kfp-fetch-1', '--python', PYTHON, '--datastore-root', join(dir, '.metaflow'), ...extra]
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('metaflow-kfp: error:'))
}

/**
 * A .tar.gz whose only entry declares `size` bytes of zeros, about 1 KB of gzip per MiB:
 * gzip members may be concatenated, and gunzip reads them as one stream.
 */
function zeroFilePackage(size: number): Buffer {
  const mib = gzipSync(Buffer.alloc(1 << 20), { level: 9 })
  const members = [gzipSync(headerFor('zeros.py', size))]
  for (let i = 0; i < Math.ceil(size / (1 << 20)); i++) members.push(mib)
  members.push(gzipSync(Buffer.alloc(1024)))
  return Buffer.concat(members)
}

/** A tar header for a file of `size` bytes: tarball.ts's header with the size field and checksum rewritten. */
function headerFor(path: string, size: number): Buffer {
  const block = Buffer.from(gunzipSync(tarGz([{ path, body: '' }])).subarray(0, 512))
  block.write(size.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii')
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const b of block) sum += b
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii')
  return block
}

/** Polls the agent's peak resident memory (VmHWM) until it exits. */
function watchPeakRss(pid: number): { peakKb: () => number; stop: () => void } {
  let peak = 0
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (m) peak = Math.max(peak, Number(m[1]))
    } catch {
      // exited
    }
  }, 10)
  return { peakKb: () => peak, stop: () => clearInterval(timer) }
}

describe('redirects', () => {
  it('refuses an https:// code URL that redirects to plain http:// (it was followed and its unpinned code ran)', async () => {
    const dir = tempDir()
    const plain = await startServer((_req, res) => res.writeHead(200).end(HELLO))
    closers.push(plain.close)
    const hop = `http://user:pw@${plain.url.slice('http://'.length)}/hello_flow.py?X-Amz-Signature=topsecret`
    const tls = await startHttpsServer(dir, (_req, res) => res.writeHead(302, { location: hop }).end())
    closers.push(tls.close)
    const r = await runAgent(startStep(dir, `${tls.url}/hello_flow.py`), { env: agentEnv({ NODE_EXTRA_CA_CERTS: tls.caFile, TMPDIR: dir }) })
    expect(r.code, r.stderr).toBe(65)
    expect(errorLines(r.stderr)).toEqual([
      `metaflow-kfp: error: refusing to follow the redirect from ${tls.url}/hello_flow.py to http://***@${plain.url.slice('http://'.length)}/hello_flow.py?…: ` +
        'plain http without --code-sha256 (serve the code over https all the way, pin it with --code-sha256, or pass --allow-insecure-http)',
    ])
    expect(r.stderr).not.toMatch(/topsecret|pw@/)
    expect(tls.hits()).toBe(1)
    expect(plain.hits()).toBe(0)
    expect(r.stdout).toBe('')
    expect(readdirSync(dir).filter((f) => f.startsWith('metaflow-kfp-'))).toEqual([])
  })

  it('follows the same redirect when the code is pinned with --code-sha256, and the step runs', async () => {
    const dir = tempDir()
    const plain = await startServer((_req, res) => res.writeHead(200).end(HELLO))
    closers.push(plain.close)
    const tls = await startHttpsServer(dir, (_req, res) => res.writeHead(307, { location: `${plain.url}/hello_flow.py` }).end())
    closers.push(tls.close)
    const sha = createHash('sha256').update(HELLO).digest('hex')
    const r = await runAgent(startStep(dir, `${tls.url}/hello_flow.py`, '--code-sha256', sha), { env: agentEnv({ NODE_EXTRA_CA_CERTS: tls.caFile }) })
    expect(r.code, r.stderr).toBe(0)
    expect(plain.hits()).toBe(1)
    expect(r.stderr).toMatch(/step start succeeded/)
  })
})

describe('--work-dir', () => {
  it('keeps what was in DIR, code/ included (a .tar.gz package removed DIR/code/ and the task still exited 0)', async () => {
    const dir = tempDir()
    const pkg = join(dir, 'code.tar.gz')
    writeFileSync(pkg, tarGz([{ path: 'hello_flow.py', body: HELLO }]))
    const work = join(dir, 'work')
    mkdirSync(join(work, 'code'), { recursive: true })
    writeFileSync(join(work, 'code', 'mine.txt'), 'user data')
    writeFileSync(join(work, 'hello_flow.py'), 'not the flow')
    const r = await runAgent(startStep(dir, `file://${pkg}`, '--work-dir', work))
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(work).sort()).toEqual(['code', 'hello_flow.py'])
    expect(readdirSync(join(work, 'code'))).toEqual(['mine.txt'])
    expect(readFileSync(join(work, 'code', 'mine.txt'), 'utf8')).toBe('user data')
    expect(readFileSync(join(work, 'hello_flow.py'), 'utf8')).toBe('not the flow')
  })

  it('keeps its own folder inside DIR only with --keep-work-dir, and says where', async () => {
    const dir = tempDir()
    const pkg = join(dir, 'code.tar.gz')
    writeFileSync(pkg, tarGz([{ path: 'hello_flow.py', body: HELLO }]))
    const work = join(dir, 'work')
    const r = await runAgent(startStep(dir, `file://${pkg}`, '--work-dir', work, '--keep-work-dir'))
    expect(r.code, r.stderr).toBe(0)
    const kept = readdirSync(work)
    expect(kept).toHaveLength(1)
    expect(r.stderr).toContain(`kept the work folder ${join(work, kept[0] as string)}`)
  })

  it('refuses a --work-dir it cannot create, at once', async () => {
    const dir = tempDir()
    const started = Date.now()
    const r = await runAgent(startStep(dir, `file://${join(FLOWS, 'hello_flow.py')}`, '--work-dir', '/proc/self/nope/work'))
    expect(r.code, r.stderr).toBe(64)
    expect(errorLines(r.stderr)).toHaveLength(1)
    expect(errorLines(r.stderr)[0]).toMatch(/^metaflow-kfp: error: failed to create a work folder in --work-dir \/proc\/self\/nope\/work: /)
    expect(Date.now() - started).toBeLessThan(20_000)
  })
})

describe('unpacking', () => {
  for (const [what, make] of [
    ['one entry declaring 100 MiB of zeros', () => zeroFilePackage(100 << 20)],
    ['100 MiB of zeros after the end of the archive', () => Buffer.concat([tarGz([{ path: 'flow.py', body: HELLO }]), ...Array.from({ length: 100 }, () => gzipSync(Buffer.alloc(1 << 20), { level: 9 }))])],
  ] as const) {
    it(`refuses a ~100 KB .tar.gz of ${what} quickly and in bounded memory (it took minutes, quadratic in the size)`, async () => {
      const dir = tempDir()
      const pkg = join(dir, 'bomb.tar.gz')
      writeFileSync(pkg, make())
      expect(readFileSync(pkg).length).toBeLessThan(300_000)
      const started = Date.now()
      const a = startAgent(startStep(dir, `file://${pkg}`), { env: agentEnv({ TMPDIR: dir }) })
      const rss = watchPeakRss(a.child.pid as number)
      const r = await a.done
      rss.stop()
      expect(r.code, r.stderr).toBe(65)
      expect(errorLines(r.stderr)).toEqual([
        `metaflow-kfp: error: failed to unpack file://${pkg}: the package unpacks to more than ${64 << 20} bytes ` +
          '(keep data out of the code package, or raise --code-max-bytes, which caps the unpacked size too)',
      ])
      expect(Date.now() - started).toBeLessThan(20_000)
      expect(rss.peakKb()).toBeGreaterThan(0)
      expect(rss.peakKb()).toBeLessThan(250 * 1024)
      expect(readdirSync(dir).sort()).toEqual(['bomb.tar.gz'])
    })
  }

  it('stops unpacking at --code-timeout (the deadline covered only the download)', async () => {
    const dir = tempDir()
    const pkg = join(dir, 'slow.tar.gz')
    // 4 GiB of zeros after a valid archive: under the raised size cap, but minutes of inflating
    const mib16 = gzipSync(Buffer.alloc(16 << 20), { level: 9 })
    writeFileSync(pkg, Buffer.concat([tarGz([{ path: 'flow.py', body: HELLO }]), ...Array.from({ length: 256 }, () => mib16)]))
    const started = Date.now()
    const r = await runAgent(startStep(dir, `file://${pkg}`, '--code-max-bytes', String(8 * 2 ** 30), '--code-timeout', '1'), { env: agentEnv({ TMPDIR: dir }) })
    expect(r.code, r.stderr).toBe(69)
    expect(errorLines(r.stderr)).toEqual([
      `metaflow-kfp: error: failed to unpack file://${pkg}: --code-timeout passed while unpacking (raise --code-timeout, or make the package smaller)`,
    ])
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(readdirSync(dir)).toEqual(['slow.tar.gz'])
  })
})

describe('file:// URLs', () => {
  it('refuses a FIFO and exits (it printed its error at the deadline and never exited)', async () => {
    const dir = tempDir()
    const fifo = join(dir, 'flow.py')
    execFileSync('mkfifo', [fifo])
    const started = Date.now()
    const r = await runAgent(startStep(dir, `file://${fifo}`, '--code-timeout', '60'), { env: agentEnv({ TMPDIR: dir }) })
    expect(r.code, r.stderr).toBe(64)
    expect(errorLines(r.stderr)).toEqual([
      `metaflow-kfp: error: failed to read file://${fifo}: it is a FIFO, not a regular file (point --code-url at the flow file or the .tar.gz package itself)`,
    ])
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(readdirSync(dir)).toEqual(['flow.py'])
  })
})
