// The agent file's code-cache loader: a cache written beside a copy of the agent is used by the next start, and a cache that does not fit is ignored.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AGENT } from '../helpers/paths'
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
