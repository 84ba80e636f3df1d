// A reader of the agent's stdout or stderr that goes away must not change the step's result, lose its logs or leave its work dir.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { lineWriter } from '../../agent/std-streams'
import { agentEnv, startAgent } from '../helpers/agent-process'
import { localClientEnv } from '../helpers/metaflow-client'
import { AGENT, FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const LINES = 20_000

async function chattyStepWithClosedStreams(streams: ('stdout' | 'stderr')[]) {
  const dir = tempDir()
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  const go = join(dir, 'go')
  const agent = startAgent([
    'step', 'start',
    '--code-url', flowUrl('chatty_flow.py', FIXTURE_FLOWS),
    '--python', PYTHON,
    '--datastore-root', join(dir, '.metaflow'),
    '--run-id', 'kfp-closed-stdout',
    '--output-dir', join(dir, 'out'),
  ], { env: agentEnv({ GO_FILE: go, LINES: String(LINES), TMPDIR: tmp }) })
  await agent.waitFor(/BEGIN/, 60_000)
  // The reader goes away mid-step; only then does the step print most of its output.
  for (const s of streams) agent.child[s]?.destroy()
  writeFileSync(go, '')
  const r = await agent.done
  return { dir, tmp, r }
}

function taskLog(dir: string): string {
  return execFileSync(PYTHON, [join(FIXTURE_FLOWS, 'chatty_flow.py'), 'logs', 'kfp-closed-stdout/start/start'], {
    env: { ...localClientEnv(dir), METAFLOW_USER: 'test' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

describe('a closed stdout', () => {
  it('does not crash the agent with EPIPE when its stdout reader goes away mid-step: exit 0, outputs, the full task log, no work dir left', async () => {
    const { dir, tmp, r } = await chattyStepWithClosedStreams(['stdout'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|at .*metaflow-kfp/)
    expect(r.stderr).toMatch(/step start succeeded/)
    expect(readFileSync(join(dir, 'out', 'task_id'), 'utf8')).toBe('start')
    const log = taskLog(dir)
    expect(log.match(/^line \d+ x+$/gm)).toHaveLength(LINES)
    expect(log).toMatch(/^LAST$/m)
    expect(readdirSync(tmp).filter((f) => f.startsWith('metaflow-kfp-'))).toEqual([])
  }, 120_000)

  it('does not crash the agent when both stdout and stderr readers go away mid-step', async () => {
    const { dir, tmp, r } = await chattyStepWithClosedStreams(['stdout', 'stderr'])
    expect(r.code).toBe(0)
    expect(readFileSync(join(dir, 'out', 'splits'), 'utf8')).toBe('[]')
    expect(taskLog(dir).match(/^line \d+ x+$/gm)).toHaveLength(LINES)
    expect(readdirSync(tmp).filter((f) => f.startsWith('metaflow-kfp-'))).toEqual([])
  }, 120_000)

  it('lets `metaflow-kfp config | head -1` end with exit 0 instead of a Node stack trace', () => {
    // A shell pipeline on purpose: it is the case users hit. The agent's path is fixed, not user input.
    const r = spawnSync('bash', ['-c', 'set -o pipefail; "$0" config | head -1', AGENT], { env: agentEnv(), encoding: 'utf8', timeout: 30_000 })
    expect(r.stderr).not.toMatch(/EPIPE|node:events/)
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1)
    expect(r.status).toBe(0)
  })
})

describe('the line writer of the agent\'s own streams', () => {
  it('releases a line waiting for drain when the stream fails, which would otherwise wait forever', async () => {
    // A reader that takes nothing: the first write fills the buffer and never completes.
    const stuck = new Writable({ highWaterMark: 1, write: () => undefined })
    const w = lineWriter(stuck)
    const waiting = w.line('a line the reader never takes')
    expect(waiting).toBeInstanceOf(Promise)
    stuck.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
    await waiting
    expect(w.open).toBe(false)
    expect(w.line('dropped')).toBeUndefined()
  }, 5_000)
})
