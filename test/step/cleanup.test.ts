// Whatever the agent started, it stops and removes on every path: signals during the download and the install, and a failed download beside an install.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { agentEnv, startAgent } from '../helpers/agent-process'
import { fakeSlowInstaller, waitForPids, waitUntilGone } from '../helpers/fake-installer'
import { startServer } from '../helpers/http-server'
import { FLOWS, PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
let closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.map((c) => c()))
  closers = []
})

function startStep(dir: string, codeUrl: string, ...extra: string[]): string[] {
  return ['step', 'start', '--code-url', codeUrl, '--run-id', 'kfp-cleanup-1', '--python', PYTHON, '--datastore-root', join(dir, '.metaflow'), ...extra]
}

/** A server that sends headers and a first line of the flow, then never the rest. */
async function stallingServer() {
  const s = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': '100000' })
    res.write('from metaflow import FlowSpec, step\n')
  })
  closers.push(s.close)
  return s
}

async function until(check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Files under `dir`, recursively, as relative paths. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()
}

describe('a signal before the step runs', () => {
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    it(`${sig} during a stalled download ends the agent with ${code} and leaves no work dir or .part file (both were left behind)`, async () => {
      const dir = tempDir()
      const tmp = join(dir, 'tmp')
      mkdirSync(tmp)
      const s = await stallingServer()
      const a = startAgent(startStep(dir, `${s.url}/flow.py`, '--allow-insecure-http'), { env: agentEnv({ TMPDIR: tmp }) })
      await until(() => s.hits() > 0)
      await until(() => tree(tmp).some((f) => f.endsWith('.part')), 10_000)
      const sent = Date.now()
      a.child.kill(sig)
      const r = await a.done
      expect(r.code, r.stderr).toBe(code)
      expect(Date.now() - sent).toBeLessThan(10_000)
      expect(r.stderr).toContain(`metaflow-kfp: error: failed to finish the task: stopped by ${sig} (what it had started was stopped and its work folder removed)`)
      expect(r.stderr.split('\n').filter((l) => l.includes('error:'))).toHaveLength(1)
      expect(tree(tmp)).toEqual([])
    })
  }

  it('SIGTERM during a slow install kills the installer and its children and removes the work dir (an orphan pip kept running)', async () => {
    const dir = tempDir()
    const tmp = join(dir, 'tmp')
    mkdirSync(tmp)
    const fake = fakeSlowInstaller(dir)
    const a = startAgent(startStep(dir, `file://${join(FLOWS, 'hello_flow.py')}`, '--runtime', 'metaflow==0.0.1'), { env: agentEnv({ TMPDIR: tmp, ...fake.env }) })
    const pids = await waitForPids(fake)
    a.child.kill('SIGTERM')
    const r = await a.done
    expect(r.code, r.stderr).toBe(143)
    expect(r.stderr).toMatch(/installing metaflow==0\.0\.1 .* with uv/)
    expect(await waitUntilGone(pids, 5000)).toEqual([])
    expect(tree(tmp)).toEqual([])
  })

  it('SIGTERM with --work-dir removes the task folder and nothing else in DIR', async () => {
    const dir = tempDir()
    const work = join(dir, 'work')
    mkdirSync(join(work, 'code'), { recursive: true })
    writeFileSync(join(work, 'code', 'mine.txt'), 'user data')
    const s = await stallingServer()
    const a = startAgent(startStep(dir, `${s.url}/flow.py`, '--allow-insecure-http', '--work-dir', work))
    await until(() => tree(work).some((f) => f.endsWith('.part')), 60_000)
    a.child.kill('SIGTERM')
    const r = await a.done
    expect(r.code, r.stderr).toBe(143)
    expect(tree(work)).toEqual(['code', join('code', 'mine.txt')])
  })
})

describe('a failed download beside an install', () => {
  it('stops the install and exits at once with the download error (the exit waited for the install)', async () => {
    const dir = tempDir()
    const tmp = join(dir, 'tmp')
    mkdirSync(tmp)
    const fake = fakeSlowInstaller(dir)
    // Answer 404 only once the installer runs, so the failure lands mid-install.
    const s = await startServer((_req, res) => {
      const answer = () => (fake.pids() ? res.writeHead(404).end() : setTimeout(answer, 20))
      answer()
    })
    closers.push(s.close)
    const a = startAgent(startStep(dir, `${s.url}/flow.py`, '--allow-insecure-http', '--runtime', 'metaflow==0.0.1'), { env: agentEnv({ TMPDIR: tmp, ...fake.env }) })
    const pids = await waitForPids(fake)
    const installing = Date.now()
    const r = await a.done
    // the installer sleeps 300 s: the agent must not wait for it
    expect(Date.now() - installing).toBeLessThan(10_000)
    expect(r.code, r.stderr).toBe(69)
    expect(r.stderr.split('\n').filter((l) => l.includes('error:'))).toEqual([
      `metaflow-kfp: error: failed to fetch ${s.url}/flow.py: HTTP 404 (check that the URL is right and reachable from the pod)`,
    ])
    // gone by the time the agent exited, not some time later
    expect(await waitUntilGone(pids, 1000)).toEqual([])
    expect(tree(tmp)).toEqual([])
  })
})
