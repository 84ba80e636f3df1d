// SIGTERM, SIGINT and SIGKILL to the agent at every stage of a task: 128+N, no work dir, no .part file, no child left, no partial outputs.
import { mkdirSync, readFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv, startAgent } from '../helpers/agent-process'
import { startFaultProxy } from '../helpers/fault-proxy'
import type { FaultProxy } from '../helpers/fault-proxy'
import { startServer } from '../helpers/http-server'
import { MOTO_KEYS, makeBucket, putObject, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { STAGE_FLOW, expectAllOrNothing, expectNoOutputs, expectNoSecrets, filesUnder, killAll, leftoverProcesses, shown } from './fault-kit'

const tempDir = useTempDir('mfkfp-signal-')
const BUCKET = 'signal-datastore'
const ROOT = `s3://${BUCKET}/mf`
const FLOW = readFileSync(STAGE_FLOW)
let moto: Moto
let proxy: FaultProxy
/** answers the code slowly: headers and a few bytes, then nothing (the download stage) */
let slowCode: Awaited<ReturnType<typeof startServer>>
/** a package index that never answers (the install stage: pip waits on it) */
let deadIndex: Awaited<ReturnType<typeof startServer>>
const held: ServerResponse[] = []
let runs = 0

beforeAll(async () => {
  moto = await startMoto()
  proxy = await startFaultProxy(moto.endpoint)
  await makeBucket(moto.endpoint, BUCKET)
  await putObject(moto.endpoint, BUCKET, 'code/stage_flow.py', FLOW)
  slowCode = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(FLOW.length) })
    res.write(FLOW.subarray(0, 10))
    held.push(res)
  })
  deadIndex = await startServer((_req, res) => {
    held.push(res)
  })
})
afterAll(async () => {
  for (const res of held) res.destroy()
  await slowCode?.close()
  await deadIndex?.close()
  await proxy?.close()
  await moto?.stop()
})

interface Stage {
  name: string
  /** extra argv and environment that hold the agent in this stage */
  args: (runId: string) => string[]
  env: Record<string, string>
  /** resolves once the agent is in the stage */
  reached: (agent: ReturnType<typeof startAgent>, runId: string) => Promise<void>
}

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const local = (dir: string) => ['--code-url', `file://${STAGE_FLOW}`, '--datastore-root', join(dir, 'datastore', '.metaflow')]
const onS3 = ['--code-url', `s3://${BUCKET}/code/stage_flow.py`, '--datastore', 's3', '--datastore-root', ROOT]
const taskKey = (runId: string, file: string) => `/${BUCKET}/mf/StageFlow/${runId}/start/start/${file}`

/** The six stages of a task and how each is held open long enough to signal the agent in it. */
function stages(dir: string): Stage[] {
  return [
    {
      name: 'download',
      args: () => ['--code-url', `${slowCode.url}/stage_flow.py`, '--allow-insecure-http', '--datastore-root', join(dir, 'datastore', '.metaflow')],
      env: {},
      reached: async () => {
        const before = slowCode.hits()
        await until('the code request', () => slowCode.hits() > before)
        // a moment for the first bytes to land in the .part file
        await new Promise((r) => setTimeout(r, 300))
      },
    },
    {
      name: 'install',
      // A pin the venv lacks, from an index that never answers: pip stays in its download.
      args: () => [...local(dir), '--runtime', 'metaflow==999.0.0'],
      env: { PIP_INDEX_URL: `${deadIndex.url}/simple`, UV_INDEX_URL: `${deadIndex.url}/simple`, UV_DEFAULT_INDEX: `${deadIndex.url}/simple`, PIP_CONFIG_FILE: '/dev/null', PIP_RETRIES: '0', PIP_DEFAULT_TIMEOUT: '300' },
      reached: async (agent) => {
        const before = deadIndex.hits()
        await agent.waitFor(/installing /)
        await until('the installer asking the index', () => deadIndex.hits() > before)
      },
    },
    {
      name: 'init',
      args: () => local(dir),
      env: { FAULT_INIT_SLEEP: '60' },
      reached: (agent) => agent.waitFor(/INIT-WAITING/),
    },
    {
      name: 'step',
      args: () => local(dir),
      env: { FAULT_SLEEP: '60' },
      reached: (agent) => agent.waitFor(/STEP-STARTED/),
    },
    {
      name: 'outputs',
      // The task record read stalls, so the agent sits between the step and the outputs.
      args: () => onS3,
      env: {},
      reached: async (_agent, runId) => {
        proxy.add({ method: 'GET', client: 'agent', path: new RegExp(`${taskKey(runId, '0.data.json')}$`), fault: { kind: 'stall' }, times: Infinity })
        await until('the task record read', () => proxy.seen.some((s) => s.fault === 'stall' && s.path === taskKey(runId, '0.data.json')), 90_000)
      },
    },
    {
      name: 'log upload',
      args: () => onS3,
      env: {},
      reached: async (_agent, runId) => {
        proxy.add({ method: 'PUT', client: 'agent', path: new RegExp(`${taskKey(runId, '0.task_stdout.log')}$`), fault: { kind: 'stall' }, times: Infinity })
        await until('the log upload', () => proxy.seen.some((s) => s.fault === 'stall' && s.path === taskKey(runId, '0.task_stdout.log')), 90_000)
      },
    },
  ]
}

const STAGES = ['download', 'install', 'init', 'step', 'outputs', 'log upload']
const EXIT: Record<string, number> = { SIGTERM: 143, SIGINT: 130 }

/** Starts `step start` with its own TMPDIR, holds it in `stage`, sends `signal`; returns what is left. */
async function signalAt(stageName: string, signal: NodeJS.Signals) {
  const dir = tempDir()
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  const out = join(dir, 'outputs')
  const stage = stages(dir).find((s) => s.name === stageName) as Stage
  const runId = `kfp-signal-${++runs}`
  const env = agentEnv({ ...MOTO_KEYS, HOME: dir, TMPDIR: tmp, METAFLOW_S3_ENDPOINT_URL: proxy.url, ...stage.env })
  const agent = startAgent(['step', 'start', '--python', PYTHON, '--run-id', runId, '--output-dir', out, '--grace-period', '5', ...stage.args(runId)], { env, cwd: dir })
  // Bounds: reaching the stage (a whole S3 step on a loaded machine), then ending after the signal.
  const guard = setTimeout(() => {
    agent.child.kill('SIGKILL')
    killAll(tmp)
  }, 120_000)
  try {
    await stage.reached(agent, runId)
    clearTimeout(guard)
    const sentAt = Date.now()
    agent.child.kill(signal)
    const stuck = setTimeout(() => {
      agent.child.kill('SIGKILL')
      killAll(tmp)
    }, 30_000)
    const r = await agent.done.finally(() => clearTimeout(stuck))
    const ms = Date.now() - sentAt
    const left = signal === 'SIGKILL' ? [] : await leftoverProcesses(tmp)
    return { r, ms, out, tmp, left }
  } finally {
    clearTimeout(guard)
    killAll(tmp)
  }
}

describe.each(['SIGTERM', 'SIGINT'] as const)('%s to the agent', (signal) => {
  it.each(STAGES)(`during the %s stage ends it with 128+N in seconds, leaving no work dir, .part file, child process or output`, async (stage) => {
    const { r, ms, out, tmp, left } = await signalAt(stage, signal)
    // Still running 30 s after the signal, it was killed: that is a failure, not an exit status.
    expect(r.signal === 'SIGKILL' ? 'killed: still running 30 s after the signal' : r.code ?? EXIT[r.signal ?? ''], shown(r)).toBe(EXIT[signal])
    // The grace period is 5 s; nothing here needs more than the step's own shutdown.
    expect(ms, shown(r)).toBeLessThan(10_000)
    expect(left, shown(r)).toEqual([])
    expect(filesUnder(tmp), shown(r)).toEqual([])
    // Outputs come only after a successful step; the log upload follows them.
    if (stage === 'log upload') expectAllOrNothing(out, 'start')
    else expectNoOutputs(out)
    expect(r.stderr, shown(r)).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
    expectNoSecrets([r], [out])
  }, 200_000)
})

describe('SIGKILL to the agent', () => {
  it.each(STAGES)('during the %s stage leaves the outputs all there or not there at all', async (stage) => {
    const { r, out } = await signalAt(stage, 'SIGKILL')
    expect(r.signal, shown(r)).toBe('SIGKILL')
    // No agent can clean up after SIGKILL; what a pipeline reads must still never be partial.
    // Before the step succeeded there can be none; after it, all or none (the log upload and the outputs are the last two acts).
    const outputs = expectAllOrNothing(out, 'start')
    if (stage !== 'log upload' && stage !== 'outputs') expect(outputs).toBe('none')
    expect(filesUnder(out).filter((f) => /\.tmp$|\.part$/.test(f))).toEqual([])
  }, 180_000)
})
