// Task logs reach the datastore while the step runs, so a pod killed mid-step still leaves `flow.py logs` its lines.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LocalStore } from '../../agent/datastore/datastore'
import type { ObjectStore, TaskRef } from '../../agent/datastore/datastore'
import { TaskLogs, nextSaveDelayMs } from '../../agent/step/task-logs'
import { agentEnv, startAgent } from '../helpers/agent-process'
import { localClientEnv } from '../helpers/metaflow-client'
import { FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const TASK: TaskRef = { flow: 'F', runId: 'kfp-1', step: 'start', taskId: 'start', attempt: 0 }
const KEY = 'F/kfp-1/start/start/0.task_stdout.log'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

describe('the save schedule', () => {
  it('saves every 2 s at first and eases to 30 s on long steps, as Metaflow does', () => {
    expect(nextSaveDelayMs(0, 0)).toBeGreaterThanOrEqual(2000)
    expect(nextSaveDelayMs(0, 0)).toBeLessThan(2100)
    expect(nextSaveDelayMs(5 * 60_000, 0)).toBeLessThan(3000)
    expect(nextSaveDelayMs(60 * 60_000, 0)).toBeGreaterThan(29_000)
    expect(nextSaveDelayMs(24 * 3600_000, 0)).toBeLessThanOrEqual(30_000)
  })

  it('waits at least 100 times what the last save took, so saving a huge log costs at most 1%', () => {
    expect(nextSaveDelayMs(0, 400)).toBe(40_000)
    expect(nextSaveDelayMs(24 * 3600_000, 1000)).toBe(100_000)
  })
})

describe('saving while the step runs', () => {
  it('stores whole mflog lines before the step ends, and everything at the end', async () => {
    const dir = tempDir()
    const store = new LocalStore(join(dir, 'ds'))
    const logs = new TaskLogs(dir)
    logs.saveWhileRunning(store, TASK, { log: () => undefined, delayMs: () => 50 })
    for (let i = 0; i < 100; i++) await logs.write('stdout', `line ${i}`)
    const saved = join(dir, 'ds', KEY)
    await until(() => existsSync(saved) && readFileSync(saved, 'utf8').includes('line 99'), 5000, 'the periodic save')
    const text = readFileSync(saved, 'utf8')
    expect(text.endsWith('\n')).toBe(true)
    expect(text.split('\n').filter(Boolean).every((l) => /^\[MFLOG\|0\|[^\]]+\]line \d+$/.test(l))).toBe(true)
    await logs.write('stdout', 'the last line')
    await logs.save(store, TASK)
    expect(readFileSync(saved, 'utf8')).toMatch(/\]the last line\n$/)
    // The saver stopped with save(): no snapshot is left and nothing runs on.
    expect(readdirSync(dir).sort()).toEqual(['ds', 'mflog_stderr', 'mflog_stdout'])
  }, 15_000)

  it('warns once when the datastore refuses a save and still tries the final one', async () => {
    const dir = tempDir()
    const puts: string[] = []
    const failing: ObjectStore = {
      root: 'nowhere',
      read: async () => undefined,
      putFile: async (key) => {
        puts.push(key)
        throw new Error('refused')
      },
    }
    const lines: string[] = []
    const logs = new TaskLogs(dir)
    logs.saveWhileRunning(failing, TASK, { log: (l) => lines.push(l), delayMs: () => 20 })
    for (let i = 0; i < 5; i++) {
      await logs.write('stdout', `line ${i}`)
      await sleep(60)
    }
    await expect(logs.save(failing, TASK)).rejects.toThrow(/refused/)
    expect(lines).toEqual(['warning: failed to save the task logs to nowhere while the step runs: refused'])
    expect(puts.length).toBeGreaterThanOrEqual(3)
  }, 15_000)
})

describe('the order of lines', () => {
  it("keeps lines printed within one millisecond in order for Metaflow's log merge, which shuffled them by their random ids", async () => {
    const dir = tempDir()
    const store = new LocalStore(join(dir, 'ds'))
    const frozen = new Date('2026-11-25T12:00:00.123Z')
    const logs = new TaskLogs(dir, () => frozen)
    for (let i = 0; i < 200; i++) await logs.write('stdout', `line ${i}`)
    await logs.save(store, TASK)
    const merged = execFileSync(PYTHON, ['-c', [
      'import sys',
      'from metaflow.mflog.mflog import merge_logs',
      'blob = open(sys.argv[1], "rb").read()',
      'print("\\n".join(l.msg.decode() for l in merge_logs([blob])))',
    ].join('\n'), join(dir, 'ds', KEY)], { encoding: 'utf8', timeout: 60_000 })
    expect(merged.trim().split('\n')).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}`))
  }, 60_000)
})

describe('a pod killed mid-step', () => {
  it("leaves Metaflow's logs command the lines up to a few seconds before, where it showed nothing", async () => {
    const dir = tempDir()
    const agent = startAgent([
      'step', 'start',
      '--code-url', flowUrl('ticking_flow.py', FIXTURE_FLOWS),
      '--python', PYTHON,
      '--datastore-root', join(dir, '.metaflow'),
      '--run-id', 'kfp-killed',
    ], { env: agentEnv({ TICK_SECONDS: '60' }) })
    const saved = join(dir, '.metaflow', 'TickingFlow', 'kfp-killed', 'start', 'start', '0.task_stdout.log')
    try {
      await until(() => existsSync(saved) && readFileSync(saved, 'utf8').includes(']tick 10\n'), 60_000, 'tick 10 in the saved log')
    } finally {
      // As a node loss does: SIGKILL for the agent and the step's process group, no chance to clean up.
      const pid = agent.child.pid as number
      const children = readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean))
      agent.child.kill('SIGKILL')
      for (const c of children) {
        try {
          process.kill(-Number(c), 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    const r = await agent.done
    expect(r.signal).toBe('SIGKILL')
    const logs = execFileSync(PYTHON, [join(FIXTURE_FLOWS, 'ticking_flow.py'), 'logs', 'kfp-killed/start/start'], {
      env: { ...localClientEnv(dir), METAFLOW_USER: 'test' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const ticks = [...logs.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]))
    expect(ticks.length).toBeGreaterThanOrEqual(11)
    expect(ticks).toEqual(ticks.map((_, i) => i))
  }, 120_000)
})
