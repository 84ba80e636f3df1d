// The runtime check with real interpreters: the project's .venv and a fresh empty virtualenv.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../../agent/errors'
import { ensureRuntime, installedVersions, parseRequirement } from '../../agent/step/runtime'
import { RUNTIME_PIN } from '../../agent/build-info'
import { fakeSlowInstaller, waitForPids, waitUntilGone } from '../helpers/fake-installer'
import { PYTHON, VENV_BIN } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const pin = parseRequirement(RUNTIME_PIN)

describe('the runtime check', () => {
  it('finds the baked-in pin and installs nothing', async () => {
    const logs: string[] = []
    const r = await ensureRuntime({ python: PYTHON, requirement: pin, alsoNeeds: ['boto3'], env: process.env, log: (l) => logs.push(l) })
    expect(r).toEqual({ installed: false, version: pin.version })
    expect(logs).toEqual([])
  })

  it('reports a missing package as absent', async () => {
    expect(await installedVersions(PYTHON, ['surely-not-installed-pkg'], process.env)).toEqual({ 'surely-not-installed-pkg': null })
  })

  it('installs the pin with uv into an empty virtualenv and verifies it', async () => {
    const venv = join(tempDir(), 'venv')
    execFileSync('python3', ['-m', 'venv', '--without-pip', venv])
    const logs: string[] = []
    const env = { ...process.env, PATH: `${VENV_BIN}:${process.env.PATH}` }
    const r = await ensureRuntime({ python: join(venv, 'bin', 'python'), requirement: pin, alsoNeeds: [], env, log: (l) => logs.push(l) })
    expect(r).toEqual({ installed: true, installer: 'uv', version: pin.version })
    expect(logs.join('\n')).toMatch(/installing metaflow==.* with uv \(found metaflow absent\)/)
  })

  it("stops the installer's whole process group when the task is stopped (an orphan pip kept running)", async () => {
    const fake = fakeSlowInstaller(tempDir())
    const stop = new AbortController()
    const pending = ensureRuntime({
      python: PYTHON,
      requirement: { name: 'metaflow', version: '0.0.1' },
      alsoNeeds: [],
      env: { ...process.env, ...fake.env },
      log: () => undefined,
      signal: stop.signal,
    }).catch((e: unknown) => e)
    const pids = await waitForPids(fake)
    const reason = new Error('stopped by SIGTERM')
    const started = Date.now()
    stop.abort(reason)
    expect(await pending).toBe(reason)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(await waitUntilGone(pids, 3000)).toEqual([])
  })

  it('names the interpreter when it cannot start', async () => {
    const err = (await ensureRuntime({ python: '/nonexistent/python3', requirement: pin, alsoNeeds: [], env: process.env, log: () => undefined }).catch((e: unknown) => e)) as AgentError
    expect(err).toBeInstanceOf(AgentError)
    expect(err.kind).toBe('runtime')
    expect(err.message).toMatch(/\/nonexistent\/python3/)
  })

  it('refuses a --runtime that is not an exact pin', () => {
    expect(() => parseRequirement('metaflow>=2')).toThrow(/name==version/)
    expect(parseRequirement('metaflow==2.19.38')).toEqual({ name: 'metaflow', version: '2.19.38' })
  })
})
