// The prestarted Python: a step run in it looks, to the flow and to Metaflow, like one run in a fresh Python, and anything that could make it differ sends the step to a fresh one.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { discard, handOver } from '../../agent/step/warm-python'
import type { WarmPython } from '../../agent/step/warm-python'
import { agentEnv, runAgent, startAgent } from '../helpers/agent-process'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FIXTURE_FLOWS, PYTHON, REPO, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const SOURCE = readFileSync(join(REPO, 'agent', 'step', 'warm-python.py'), 'utf8')
const PRESTARTED = 'the step runs in the prestarted Python'

/** A venv of its own that sees the project's Metaflow through a .pth line, as cheap as a venv gets. */
function venvWithMetaflow(dir: string): string {
  const venv = join(dir, 'venv')
  execFileSync('python3', ['-m', 'venv', '--without-pip', venv])
  const purelib = (v: string) => execFileSync(v, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], { encoding: 'utf8' }).trim()
  writeFileSync(join(purelib(join(venv, 'bin', 'python')), 'project-venv.pth'), `${purelib(PYTHON)}\n`)
  return join(venv, 'bin', 'python')
}

/** Starts the Python source as the loader does (scripts/warm-python-loader.mjs). */
function prestart(python: string, env: NodeJS.ProcessEnv): WarmPython {
  const started = { ...env, PYTHONUNBUFFERED: 'x' }
  const child = spawn(python, ['-c', SOURCE], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], detached: true, env: started })
  const warm: WarmPython = { python, env: started, child }
  child.on('error', (err) => { warm.error = err })
  return warm
}

/** Everything the child printed, once it exits. */
function output(warm: WarmPython): Promise<{ stdout: string; stderr: string; code: number | null }> {
  let stdout = ''
  let stderr = ''
  warm.child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  warm.child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  return new Promise((resolve) => warm.child.once('close', (code) => resolve({ stdout, stderr, code })))
}

describe('a step in the prestarted Python, through the agent', () => {
  // One venv for the block, with the marker the image would bake (a first step writes it).
  let baked: Promise<string> | undefined
  const bakedPython = () => (baked ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mfkfp-prestart-venv-'))
    cleanup.push(dir)
    const python = venvWithMetaflow(dir)
    const bake = await runAgent(['step', 'start', '--code-url', flowUrl('prestart_flow.py', FIXTURE_FLOWS), '--python', python, '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-bake'], {
      env: agentEnv({ METAFLOW_USER: 'test', METAFLOW_KFP_WRITE_RUNTIME_MARKER: '1' }),
      cwd: dir,
    })
    if (!bake.stderr.includes('wrote the runtime marker')) throw new Error(`no marker written: ${bake.stderr}`)
    return python
  })())
  const cleanup: string[] = []
  afterAll(() => { for (const d of cleanup) rmSync(d, { recursive: true, force: true }) })

  const steps = async (dir: string, python: string, extra: Record<string, string>, runId: string) => {
    const env = agentEnv({ METAFLOW_USER: 'test', ...extra })
    const common = ['--code-url', flowUrl('prestart_flow.py', FIXTURE_FLOWS), '--python', python, '--datastore-root', join(dir, '.metaflow'), '--run-id', runId]
    const start = await runAgent(['step', 'start', ...common], { env, cwd: dir })
    const end = await runAgent(['step', 'end', ...common, '--input-paths', `${runId}/start/start`], { env, cwd: dir })
    return { start, end }
  }

  it('runs the flow as a fresh `python flow.py step` would, judged by Metaflow against a run without it', async () => {
    const dir = tempDir()
    const python = await bakedPython()
    const marker = JSON.parse(readFileSync(join(dirname(dirname(python)), 'metaflow-kfp-runtime.json'), 'utf8')) as { warm: string[] }
    expect(marker.warm.length).toBeGreaterThan(50)
    expect(marker.warm.some((m) => m.startsWith('metaflow'))).toBe(false)

    const warm = await steps(dir, python, { METAFLOW_KFP_WARM_PYTHON: python }, 'kfp-warm')
    const cold = await steps(dir, python, {}, 'kfp-cold')
    for (const r of [warm.start, warm.end, cold.start, cold.end]) expect(r.code, r.stderr).toBe(0)
    expect(warm.start.stderr).toContain(PRESTARTED)
    expect(warm.end.stderr).toContain(PRESTARTED)
    expect(cold.start.stderr).not.toContain('prestarted')
    expect(warm.start.stdout).toContain('hello from start')
    expect(warm.start.stderr).toContain('to stderr')

    const client = localClientEnv(dir)
    const [w, c] = await Promise.all([metaflowRun('PrestartFlow/kfp-warm', client), metaflowRun('PrestartFlow/kfp-cold', client)])
    expect(w.successful).toBe(true)
    expect(w.end).toEqual(c.end)
    expect(w.end).toMatchObject({ point_x: 3, point_module: '__main__' })
    const seen = (run: string) => JSON.parse(execFileSync(PYTHON, ['-c', `
import json, sys
from metaflow import Task, namespace
namespace(None)
print(json.dumps(Task(sys.argv[1])["seen"].data))`, `PrestartFlow/${run}/start/start`], { env: { ...client, METAFLOW_USER: 'test' }, encoding: 'utf8' }))
    const seenWarm = seen('kfp-warm')
    expect(seenWarm).toEqual(seen('kfp-cold'))
    expect(seenWarm).toEqual({ name: '__main__', file: 'prestart_flow.py', argv0: 'prestart_flow.py', path0_is_flow_dir: true, cwd_is_flow_dir: true, stdin: '', unbuffered: 'x', user: 'test', main_is_module: true })
    // Metaflow's own logs command finds the task's lines.
    const logs = execFileSync(PYTHON, [join(FIXTURE_FLOWS, 'prestart_flow.py'), 'logs', 'kfp-warm/start/start'], { env: { ...client, METAFLOW_USER: 'test' }, encoding: 'utf8', cwd: dir })
    expect(logs).toContain('hello from start')
  }, 120_000)

  it('starts Python afresh when the step runs another interpreter than the prestarted one', async () => {
    const dir = tempDir()
    const other = venvWithMetaflow(dir)
    const python = await bakedPython()
    const r = await runAgent(['step', 'start', '--code-url', flowUrl('prestart_flow.py', FIXTURE_FLOWS), '--python', python, '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-other'], {
      env: agentEnv({ METAFLOW_USER: 'test', METAFLOW_KFP_WARM_PYTHON: other }),
      cwd: dir,
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(`starting Python afresh: the prestarted one cannot run this step (the step runs ${python}, not ${other})`)
    expect(r.stderr).not.toContain(PRESTARTED)
    const ok = execFileSync(PYTHON, ['-c', 'import sys\nfrom metaflow import Task, namespace\nnamespace(None)\nprint(Task(sys.argv[1]).successful)', 'PrestartFlow/kfp-other/start/start'], {
      env: { ...localClientEnv(dir), METAFLOW_USER: 'test' },
      encoding: 'utf8',
    })
    expect(ok.trim()).toBe('True')
  }, 60_000)

  it('starts Python afresh, with one line saying why, when METAFLOW_KFP_WARM_PYTHON names no interpreter', async () => {
    const dir = tempDir()
    const python = await bakedPython()
    for (const [i, bad] of [join(dir, 'no-such-python'), dir, '/bin/true'].entries()) {
      const r = await runAgent(['step', 'start', '--code-url', flowUrl('prestart_flow.py', FIXTURE_FLOWS), '--python', python, '--datastore-root', join(dir, '.metaflow'), '--run-id', `kfp-bad-${i}`], {
        env: agentEnv({ METAFLOW_USER: 'test', METAFLOW_KFP_WARM_PYTHON: bad }),
        cwd: dir,
      })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain('starting Python afresh: the prestarted one cannot run this step')
      expect(r.stderr).not.toContain(PRESTARTED)
    }
  }, 90_000)

  it('passes a stop on to the step in the prestarted Python: 143, and no process of the step is left', async () => {
    const dir = tempDir()
    const python = await bakedPython()
    const marker = join(dir, 'signal')
    const tag = `mfkfp-prestart-${process.pid}-${Date.now()}`
    const agent = startAgent(['step', 'start', '--code-url', flowUrl('sleepy_flow.py', FIXTURE_FLOWS), '--python', python, '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-stop'], {
      env: agentEnv({ METAFLOW_USER: 'test', METAFLOW_KFP_WARM_PYTHON: python, SIGNAL_MARKER: marker, MFKFP_TEST_TAG: tag }),
      cwd: dir,
    })
    await agent.waitFor(/READY/, 60_000)
    agent.child.kill('SIGTERM')
    const r = await agent.done
    expect(r.stderr).toContain(PRESTARTED)
    expect(r.code).toBe(143)
    expect(readFileSync(marker, 'utf8')).toBe('SIGTERM')
    expect(processesTagged(tag)).toBe('')
  }, 90_000)

  it('leaves no Python behind when the agent refuses the step before running it', async () => {
    const dir = tempDir()
    const tag = `mfkfp-prestart-${process.pid}-${Date.now()}`
    // A stand-in interpreter that notes its start, so the test knows a Python was prestarted at all.
    const started = join(dir, 'started')
    const python = join(dir, 'python')
    writeFileSync(python, `#!/bin/sh\ntouch "${started}"\nexec "${PYTHON}" "$@"\n`, { mode: 0o755 })
    const r = await runAgent(['step', 'start', '--code-url', 'ftp://nowhere/flow.py', '--run-id', 'kfp-x'], {
      env: agentEnv({ METAFLOW_KFP_WARM_PYTHON: python, MFKFP_TEST_TAG: tag }),
      cwd: dir,
    })
    expect(r.code).toBe(64)
    expect(existsSync(started)).toBe(true)
    // The Python reads EOF once the agent is gone and exits; none with this run's tag may remain.
    const deadline = Date.now() + 10_000
    let left = ''
    do {
      await new Promise((res) => setTimeout(res, 200))
      left = processesTagged(tag)
    } while (left !== '' && Date.now() < deadline)
    expect(left).toBe('')
  }, 30_000)
})

/** The processes whose environment holds `tag`, as /proc shows them ('' when none). */
function processesTagged(tag: string): string {
  return execFileSync('sh', ['-c', 'grep -l "$0" /proc/[0-9]*/environ 2>/dev/null || true', tag], { encoding: 'utf8' }).trim()
}

describe("the prestarted Python's own checks", () => {
  /** A bare venv whose marker lists probe modules that read the environment when imported. */
  function probeVenv(dir: string, warm: string[]): string {
    const venv = join(dir, 'venv')
    execFileSync('python3', ['-m', 'venv', '--without-pip', venv])
    const site = execFileSync(join(venv, 'bin', 'python'), ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], { encoding: 'utf8' }).trim()
    writeFileSync(join(site, 'reads_probe.py'), 'import os\nVALUE = os.environ.get("MFKFP_PROBE")\n')
    writeFileSync(join(site, 'lists_env.py'), 'import os\nKEYS = sorted(os.environ)\n')
    writeFileSync(join(venv, 'metaflow-kfp-runtime.json'), JSON.stringify({ warm }))
    return join(venv, 'bin', 'python')
  }
  const script = (dir: string) => {
    const flowDir = join(dir, 'code')
    mkdirSync(flowDir, { recursive: true })
    writeFileSync(join(flowDir, 'flow.py'), 'import os, sys\nimport reads_probe\nprint("ran", sys.argv[1:], os.environ.get("MFKFP_PROBE"), os.environ.get("OTHER"), reads_probe.VALUE)\nsys.exit(int(sys.argv[1]))\n')
    return join(flowDir, 'flow.py')
  }
  const base = () => ({ PATH: process.env.PATH ?? '', MFKFP_PROBE: 'one', PYTHONUNBUFFERED: 'x' })

  it('runs the step with its own argv, environment and exit code when only keys Python never read differ', async () => {
    const dir = tempDir()
    const python = probeVenv(dir, ['reads_probe'])
    const flow = script(dir)
    const warm = prestart(python, base())
    const out = output(warm)
    const taken = await handOver(warm, { args: [flow, '7'], env: { ...base(), OTHER: 'set for the step' }, cwd: join(dir, 'code') })
    expect('why' in taken ? taken.why : 'ok').toBe('ok')
    const r = await out
    expect(r.stdout).toBe("ran ['7'] one set for the step one\n")
    expect(r.code).toBe(7)
  })

  it('refuses when the step changes a variable a module read while it was imported early', async () => {
    const dir = tempDir()
    const warm = prestart(probeVenv(dir, ['reads_probe']), base())
    const out = output(warm)
    const taken = await handOver(warm, { args: [script(dir), '0'], env: { ...base(), MFKFP_PROBE: 'two' }, cwd: join(dir, 'code') })
    expect(taken).toEqual({ why: "the step's environment differs in MFKFP_PROBE, which Python read when it started" })
    expect((await out).stdout).toBe('')
  })

  it('refuses any change at all once a module read the whole environment early', async () => {
    const dir = tempDir()
    const warm = prestart(probeVenv(dir, ['lists_env']), base())
    const taken = await handOver(warm, { args: [script(dir), '0'], env: { ...base(), OTHER: 'x' }, cwd: join(dir, 'code') })
    expect(taken).toEqual({ why: "the step's environment differs in OTHER, which Python read when it started" })
  })

  it("refuses when a PYTHON variable differs, which the interpreter's own start read", async () => {
    const dir = tempDir()
    const warm = prestart(probeVenv(dir, []), base())
    const taken = await handOver(warm, { args: [script(dir), '0'], env: { ...base(), PYTHONHASHSEED: '3' }, cwd: join(dir, 'code') })
    expect(taken).toEqual({ why: "the step's environment differs in PYTHONHASHSEED, which Python read when it started" })
  })

  it("refuses when the flow's folder holds a module that the early imports would have shadowed", async () => {
    const dir = tempDir()
    const warm = prestart(probeVenv(dir, ['reads_probe']), base())
    const flow = script(dir)
    writeFileSync(join(dir, 'code', 'reads_probe.py'), 'VALUE = "the flow folder\'s own"\n')
    const taken = await handOver(warm, { args: [flow, '0'], env: base(), cwd: join(dir, 'code') })
    expect(taken).toEqual({ why: "the flow's folder holds reads_probe.py, which would shadow the module reads_probe" })
  })

  it('still runs the step when its module list is unreadable, not JSON, not a list or lists non-names', async () => {
    const dir = tempDir()
    const python = probeVenv(dir, [])
    const lists = { missing: join(dir, 'missing.json'), garbage: 'not json', object: '{"warm": ["json"]}', mixed: '[1, null, ["x"], "reads_probe", "metaflow"]' }
    for (const [what, text] of Object.entries(lists)) {
      const list = join(dir, `${what}.json`)
      if (what !== 'missing') writeFileSync(list, text)
      const started = { ...base(), PYTHONUNBUFFERED: 'x' }
      const child = spawn(python, ['-c', SOURCE, list], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], detached: true, env: started })
      const warm: WarmPython = { python, env: started, child }
      const out = output(warm)
      const taken = await handOver(warm, { args: [script(dir), '3'], env: base(), cwd: join(dir, 'code') })
      expect('why' in taken ? `${what}: ${taken.why}` : 'ok').toBe('ok')
      expect((await out).code, what).toBe(3)
    }
  })

  it('says why when the prestarted Python is already gone', async () => {
    const dir = tempDir()
    const warm = prestart(join(dir, 'no-such-python'), base())
    await new Promise((res) => warm.child.once('close', res))
    const taken = await handOver(warm, { args: [script(dir), '0'], env: base(), cwd: dir })
    expect('why' in taken && taken.why).toMatch(/^it (failed to start|exited)/)
    discard(warm)
  })
})
