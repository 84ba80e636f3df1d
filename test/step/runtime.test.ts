// The runtime check with real interpreters: the project's .venv and a fresh empty virtualenv.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../../agent/errors'
import { ensureRuntime, installedVersions, markerPath, parseRequirement } from '../../agent/step/runtime'
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
    expect(r).toEqual({ installed: false, version: pin.version, checkedBy: 'python' })
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
    expect(r).toEqual({ installed: true, installer: 'uv', version: pin.version, checkedBy: 'python' })
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

/** A venv without pip whose site-packages holds a dist-info for the pin: all the runtime check looks at. */
function bakedVenv(dir: string, version = pin.version): { python: string; sitePackages: string } {
  const venv = join(dir, 'venv')
  execFileSync('python3', ['-m', 'venv', '--without-pip', venv])
  const lib = join(venv, 'lib')
  const sitePackages = join(lib, readdirSync(lib)[0] as string, 'site-packages')
  addDistInfo(sitePackages, 'metaflow', version)
  return { python: join(venv, 'bin', 'python'), sitePackages }
}

function addDistInfo(sitePackages: string, name: string, version: string): void {
  const d = join(sitePackages, `${name}-${version}.dist-info`)
  mkdirSync(d)
  writeFileSync(join(d, 'METADATA'), `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`)
  writeFileSync(join(d, 'RECORD'), '')
}

/** No uv and no pip: a check that finds the pin missing fails instead of installing it. */
const NO_INSTALLER = { PATH: '/usr/bin:/bin', HOME: process.env.HOME }

describe("the image's runtime marker", () => {
  async function check(python: string, env: NodeJS.ProcessEnv = NO_INSTALLER) {
    const logs: string[] = []
    const r = await ensureRuntime({ python, requirement: pin, alsoNeeds: [], env, log: (l) => logs.push(l) })
    return { r, logs: logs.join('\n') }
  }

  async function marked(dir: string) {
    const v = bakedVenv(dir)
    const first = await check(v.python, { ...NO_INSTALLER, METAFLOW_KFP_WRITE_RUNTIME_MARKER: '1' })
    expect(first.r.checkedBy).toBe('python')
    expect(first.logs).toContain(`wrote the runtime marker ${markerPath(v.python)}`)
    expect((await check(v.python)).r.checkedBy).toBe('marker')
    return v
  }

  it('is written after a Python check only when asked, and then vouches for the pin without starting Python', async () => {
    const v = bakedVenv(tempDir())
    expect((await check(v.python)).r.checkedBy).toBe('python')
    expect(existsSync(markerPath(v.python))).toBe(false)

    await check(v.python, { ...NO_INSTALLER, METAFLOW_KFP_WRITE_RUNTIME_MARKER: '1' })
    const marker = JSON.parse(readFileSync(markerPath(v.python), 'utf8'))
    expect(marker.packages).toEqual({ metaflow: pin.version })
    expect(marker.watched.map((w: string[]) => w[1])).toContain(v.sitePackages)

    const again = await check(v.python)
    expect(again.r).toEqual({ installed: false, version: pin.version, checkedBy: 'marker' })
    expect(again.logs).toBe('')
  })

  // Each change to the venv must void the marker: the check goes back to Python and sees the venv as it is.
  const changes: [string, (v: { python: string; sitePackages: string }) => NodeJS.ProcessEnv | void][] = [
    ["metaflow's RECORD changes (its files were reinstalled)", (v) => {
      writeFileSync(join(v.sitePackages, `metaflow-${pin.version}.dist-info`, 'RECORD'), 'metaflow/__init__.py,,\n')
    }],
    ['a metaflow module is dropped where it shadows the package', (v) => writeFileSync(join(v.sitePackages, 'metaflow.py'), '')],
    ['another package is installed beside it', (v) => addDistInfo(v.sitePackages, 'requests', '2.0.0')],
    ['a .pth file is added, which can put anything first on sys.path', (v) => writeFileSync(join(v.sitePackages, 'zz.pth'), '/tmp\n')],
    ['PYTHONPATH is set for the task', () => ({ ...NO_INSTALLER, PYTHONPATH: '/tmp' })],
    ['the marker is not JSON', (v) => writeFileSync(markerPath(v.python), '{"format": 1, ')],
    ['the marker is null', (v) => writeFileSync(markerPath(v.python), 'null')],
    ['the marker is empty', (v) => writeFileSync(markerPath(v.python), '')],
    ['the marker has a null env and a watched entry that is no list', (v) => {
      const m = JSON.parse(readFileSync(markerPath(v.python), 'utf8'))
      writeFileSync(markerPath(v.python), JSON.stringify({ ...m, env: null, watched: [...m.watched, 'x'] }))
    }],
    ['the marker has a watched entry of the wrong types', (v) => {
      const m = JSON.parse(readFileSync(markerPath(v.python), 'utf8'))
      writeFileSync(markerPath(v.python), JSON.stringify({ ...m, watched: [[1, 2, 3], ...m.watched] }))
    }],
  ]
  for (const [what, change] of changes) {
    it(`no longer vouches once ${what}`, async () => {
      const v = await marked(tempDir())
      const env = change(v) ?? NO_INSTALLER
      const r = await check(v.python, env)
      expect(r.r).toEqual({ installed: false, version: pin.version, checkedBy: 'python' })
      expect(r.logs).toMatch(/the runtime marker does not vouch for .*; checking with Python/)
    })
  }

  it('still vouches after the venv is unpacked afresh at the same path, as on a node that pulls the image (new inodes and ctimes)', async () => {
    const dir = tempDir()
    const v = await marked(dir)
    // tar keeps names, bytes, sizes and whole-second mtimes; the unpacked files get new inodes and ctimes.
    execFileSync('tar', ['-C', dir, '-cf', join(dir, 'venv.tar'), 'venv'])
    rmSync(join(dir, 'venv'), { recursive: true })
    execFileSync('tar', ['-C', dir, '-xf', join(dir, 'venv.tar')])
    expect((await check(v.python)).r).toEqual({ installed: false, version: pin.version, checkedBy: 'marker' })
  })

  it('does not vouch for a pin another version replaced: the Python check finds the other one and the task fails', async () => {
    const v = await marked(tempDir())
    rmSync(join(v.sitePackages, `metaflow-${pin.version}.dist-info`), { recursive: true })
    addDistInfo(v.sitePackages, 'metaflow', '2.0.1')
    const err = (await check(v.python).catch((e: unknown) => e)) as AgentError
    expect(err).toBeInstanceOf(AgentError)
    expect(err.kind).toBe('runtime')
    expect(err.message).toMatch(/failed to install metaflow==/)
  })

  it("vouches for the venv's python when it was made through python3, the same interpreter in the same venv", async () => {
    const v = await marked(tempDir())
    expect((await check(`${v.python}3`)).r.checkedBy).toBe('marker')
  })

  it('does not vouch for another interpreter, nor for a package it does not list', async () => {
    const v = await marked(tempDir())
    const marker = JSON.parse(readFileSync(markerPath(v.python), 'utf8'))
    writeFileSync(markerPath(v.python), JSON.stringify({ ...marker, python: '/usr/bin/python3' }))
    expect((await check(v.python)).logs).toMatch(/was made for \/usr\/bin\/python3/)
    writeFileSync(markerPath(v.python), JSON.stringify(marker))
    const logs: string[] = []
    const err = await ensureRuntime({ python: v.python, requirement: pin, alsoNeeds: ['boto3'], env: NO_INSTALLER, log: (l) => logs.push(l) }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentError)
    expect(logs.join('\n')).toMatch(/does not list boto3/)
  })
})
