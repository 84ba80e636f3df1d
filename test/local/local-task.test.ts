// How run-local runs each task: through the agent's own entrypoint inside run-local's process, one runtime check per run, stopped as pods are.
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { needsOwnProcess } from '../../agent/local/local-task'
import { agentEnv, runAgent, startAgent } from '../helpers/agent-process'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FIXTURE_FLOWS, FLOWS, PYTHON, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const TEMPLATES = resolve(REPO, 'pipeline-templates')

function pathspecOf(stdout: string): string {
  const m = /^Metaflow run: (\S+)$/m.exec(stdout)
  if (!m) throw new Error(`no Metaflow run line in: ${stdout}`)
  return m[1] as string
}

/** A --python that appends its argv to `log` (one line per start), then runs the project's Python. */
function loggingPython(dir: string, log: string): string {
  const path = join(dir, 'python')
  // One write per start (O_APPEND keeps a short line whole), as tasks start side by side.
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$(printf '%s' "$*" | tr '\\n' ' ' | head -c 300)" >> '${log}'\nexec '${PYTHON}' "$@"\n`)
  chmodSync(path, 0o755)
  return path
}

/** Node's --require file that appends the pid of every Node process it is loaded into. */
function nodeStartLog(dir: string, log: string): string {
  const path = join(dir, 'count-node.cjs')
  writeFileSync(path, `require('fs').appendFileSync(${JSON.stringify(log)}, process.pid + '\\n')\n`)
  return path
}

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []
}

function alive(pid: number): boolean {
  // kill(0) or kill(-1) would probe our own group or every process, and always succeed.
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`not a process id: ${pid}`)
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('run-local tasks', () => {
  const tempDir = useTempDir()

  it("runs every task through the agent inside run-local's own process, with one Node start and one runtime check for the whole run", async () => {
    const cwd = tempDir()
    const pythonLog = join(cwd, 'python-starts.txt')
    const nodeLog = join(cwd, 'node-starts.txt')
    const python = loggingPython(cwd, pythonLog)
    // --prestart 0: each step starts its own Python here, so the log shows one line per step.
    const r = await runAgent(['run-local', join(TEMPLATES, 'foreach_flow.kfp.yaml'), '--code-url', `file://${join(FLOWS, 'foreach_flow.py')}`, '--python', python, '--datastore-root', join(cwd, '.metaflow'), '--prestart', '0'], {
      cwd,
      env: agentEnv({ NODE_OPTIONS: `--require=${nodeStartLog(cwd, nodeLog)}` }),
    })
    expect(r.stderr).not.toMatch(/error:/)
    expect(r.code).toBe(0)
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toHaveLength(4)

    expect(new Set(lines(nodeLog)).size).toBe(1)
    const starts = lines(pythonLog)
    // init once, then one `step` per task: 1 + 7.
    expect(starts.filter((l) => / init /.test(l))).toHaveLength(1)
    expect(starts.filter((l) => / step /.test(l))).toHaveLength(7)
    // The runtime check is a `python -c` start; seven tasks share one.
    expect(starts.filter((l) => l.startsWith('-c ')).length).toBeLessThanOrEqual(1)
  }, 180_000)

  it('runs steps in Pythons it keeps started for the next tasks, into the run Metaflow expects, and leaves none behind', async () => {
    const cwd = tempDir()
    const pythonLog = join(cwd, 'python-starts.txt')
    const python = loggingPython(cwd, pythonLog)
    const tag = `mfkfp-pool-${process.pid}-${Date.now()}`
    const r = await runAgent(['run-local', join(TEMPLATES, 'foreach_flow.kfp.yaml'), '--code-url', `file://${join(FLOWS, 'foreach_flow.py')}`, '--python', python, '--datastore-root', join(cwd, '.metaflow'), '--prestart', '2'], {
      cwd,
      env: agentEnv({ MFKFP_TEST_TAG: tag }),
    })
    expect(r.code, r.stderr).toBe(0)
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
    expect(report.successful).toBe(true)
    expect(report.end.results).toEqual(['HOUSE OF CARDS', 'NARCOS', 'STRANGER THINGS', 'SUBURRA'])
    const starts = lines(pythonLog)
    const fresh = starts.filter((l) => !l.startsWith('-c ') && / step /.test(l)).length
    const prestarted = starts.filter((l) => l.startsWith('-c # The prestarted Python')).length
    // Seven steps: those that found a prestarted Python did not start one of their own.
    expect(fresh).toBeLessThan(7)
    expect(fresh + prestarted).toBeGreaterThanOrEqual(7)
    // The ones still waiting when the run ended were stopped with it.
    const left = execFileSync('sh', ['-c', 'grep -l "$0" /proc/[0-9]*/environ 2>/dev/null || true', tag], { encoding: 'utf8' }).trim()
    expect(left).toBe('')
  }, 180_000)

  it("refuses a missing runtime that cannot be installed with the agent's own error line and exit 71, from a task run in process", async () => {
    const cwd = tempDir()
    const log = join(cwd, 'python-starts.txt')
    // An interpreter without Metaflow whose pip cannot reach an index; no uv on PATH.
    const python = join(cwd, 'python')
    writeFileSync(python, `#!/bin/sh\necho "$1 $2" >> '${log}'\nif [ "$1" = "-c" ]; then echo '{"metaflow": null}'; exit 0; fi\necho "ERROR: No matching distribution found" >&2\nexit 1\n`)
    chmodSync(python, 0o755)
    const r = await runAgent(['run-local', join(TEMPLATES, 'foreach_flow.argo.yaml'), '--code-url', `file://${join(FLOWS, 'foreach_flow.py')}`, '--python', python, '--datastore-root', join(cwd, '.metaflow')], {
      cwd,
      env: agentEnv({ PATH: `${dirname(process.execPath)}:/usr/bin:/bin` }),
    })
    expect(r.code).toBe(71)
    expect(r.stderr).toMatch(/task start failed \(exit code 71\)/)
    expect(r.stderr).toMatch(/\| metaflow-kfp: error: failed to install metaflow==\S+ with pip: ERROR: No matching distribution found/)
    expect(r.stderr).not.toMatch(/started explore/)
    expect(lines(log).filter((l) => l.startsWith('-m pip'))).toHaveLength(1)
  }, 60_000)

  it("stops the running splits' steps on SIGTERM, removes the tasks' work folders and exits 143", async () => {
    const cwd = tempDir()
    const markers = tempDir()
    const tmp = tempDir()
    const run = startAgent(['run-local', join(TEMPLATES, 'foreach_flow.kfp.yaml'), '--code-url', `file://${join(FIXTURE_FLOWS, 'sleepy_foreach_flow.py')}`, '--python', PYTHON, '--datastore-root', join(cwd, '.metaflow')], {
      cwd,
      env: agentEnv({ MARKER_DIR: markers, TMPDIR: tmp }),
    })
    await run.waitFor(/started explore\[1\]/, 120_000)
    const deadline = Date.now() + 60_000
    while (!(existsSync(join(markers, 'pid-0')) && existsSync(join(markers, 'pid-1')))) {
      if (Date.now() > deadline) throw new Error(`the splits never started: ${readdirSync(markers).join(', ')}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const pids = [0, 1].map((i) => Number(readFileSync(join(markers, `pid-${i}`), 'utf8')))
    const stoppedAt = Date.now()
    run.child.kill('SIGTERM')
    const r = await run.done
    expect(Date.now() - stoppedAt).toBeLessThan(15_000)
    expect(r.code).toBe(143)
    expect(r.stderr).not.toMatch(/started join/)
    for (const i of [0, 1]) expect(readFileSync(join(markers, `signal-${i}`), 'utf8')).toBe('SIGTERM')
    for (const pid of pids) expect(alive(pid)).toBe(false)
    // run-local's scratch folder and every task's work folder were made in TMPDIR and are gone.
    expect(readdirSync(tmp)).toEqual([])
  }, 180_000)

  it("runs up to 16 tasks at once by default, Metaflow's own --max-workers", async () => {
    const cwd = tempDir()
    const r = await runAgent(['run-local', join(TEMPLATES, 'foreach_flow.argo.yaml'), '--code-url', `file://${join(FIXTURE_FLOWS, 'twenty_foreach_flow.py')}`, '--python', PYTHON, '--datastore-root', join(cwd, '.metaflow')], { cwd, env: agentEnv() })
    expect(r.stderr).not.toMatch(/error:/)
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/16 task\(s\) at a time/)
    let running = 0
    let peak = 0
    for (const line of r.stderr.split('\n')) {
      if (/: started /.test(line)) peak = Math.max(peak, ++running)
      if (/ (succeeded|failed)/.test(line)) running--
    }
    expect(peak).toBe(16)
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toHaveLength(20)
  }, 300_000)
})

describe('needsOwnProcess', () => {
  it('sends a task to a process of its own when its env changes what the agent reads from its process', () => {
    expect(needsOwnProcess({ HOME: '/home/other' }, { HOME: '/root' })).toBe(true)
    expect(needsOwnProcess({ TMPDIR: '/scratch' }, {})).toBe(true)
    expect(needsOwnProcess({ AWS_PROFILE: 'team' }, { AWS_PROFILE: 'default' })).toBe(true)
  })

  it('keeps a task in process when its env only sets what the agent reads from io.env, or repeats run-local\'s own values', () => {
    expect(needsOwnProcess({ METAFLOW_USER: 'kfp', MY_FLAG: '1' }, {})).toBe(false)
    expect(needsOwnProcess({ HOME: '/root', AWS_REGION: 'us-east-1' }, { HOME: '/root', AWS_REGION: 'us-east-1' })).toBe(false)
  })
})
