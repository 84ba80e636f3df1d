// S3 faults between the agent and moto: code, task record, logs and metadata; transient ones are retried, permanent ones end with a reserved code.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import { startFaultProxy } from '../helpers/fault-proxy'
import type { FaultProxy, FaultRule } from '../helpers/fault-proxy'
import { restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, putObject, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { STAGE_FLOW, expectNoOutputs, expectNoSecrets, expectOneError, outputsIn, python, runBounded, shown } from './fault-kit'
import type { BoundedRun } from './fault-kit'

const tempDir = useTempDir('mfkfp-s3fault-')
const BUCKET = 'fault-datastore'
const ROOT = `s3://${BUCKET}/mf`
let moto: Moto
let proxy: FaultProxy
let runs = 0

beforeAll(async () => {
  moto = await startMoto()
  proxy = await startFaultProxy(moto.endpoint)
  await makeBucket(moto.endpoint, BUCKET)
  await putObject(moto.endpoint, BUCKET, 'code/stage_flow.py', readFileSync(STAGE_FLOW))
})
afterAll(async () => {
  await proxy?.close()
  await moto?.stop()
})
afterEach(() => proxy.reset())

const TASK = (runId: string) => `/${BUCKET}/mf/StageFlow/${runId}/start/start`
const ARTIFACT = /\/mf\/StageFlow\/data\/[0-9a-f]{2}\/[0-9a-f]{40}$/
const CODE = /\/code\/stage_flow\.py$/

interface Case {
  runId: string
  out: string
  r: BoundedRun
}

/**
 * `step start` of the stage flow on S3 through the proxy. Rules are made for the run id, so each
 * case faults only its own objects. The step's botocore goes through the proxy too, but only the
 * rules that name client 'step' touch it.
 */
async function start(rules: (runId: string) => FaultRule[], extra: string[] = [], boundMs = 90_000): Promise<Case> {
  const runId = `kfp-s3fault-${++runs}`
  for (const rule of rules(runId)) proxy.add(rule)
  const out = join(tempDir(), 'outputs')
  const env = agentEnv({ ...MOTO_KEYS, HOME: tempDir(), METAFLOW_S3_ENDPOINT_URL: proxy.url })
  const r = await runBounded([
    'step', 'start', '--code-url', `s3://${BUCKET}/code/stage_flow.py`, '--python', PYTHON, '--run-id', runId,
    '--datastore', 's3', '--datastore-root', ROOT, '--output-dir', out, ...extra,
  ], { env, tmp: tempDir(), boundMs })
  expect(r.timedOut, `still running after ${boundMs} ms\n${shown(r)}`).toBe(false)
  expectNoSecrets([r], [out])
  return { runId, out, r }
}

/** Metaflow's own tooling brings the metadata back; its client then reports the start task and its logs. */
async function judge(runId: string): Promise<{ successful: boolean; finished: boolean; stdout: string }> {
  // The judge reads moto directly: the faults are for the agent, not for the referee.
  const env = s3ClientEnv(moto.endpoint, ROOT, tempDir())
  await restoreLocalMetadata(env, 'StageFlow', runId, [['_parameters', 'params'], ['start', 'start']])
  const text = python(`
import json, sys
from metaflow import Task, namespace
namespace(None)
t = Task(sys.argv[1])
print(json.dumps({'successful': t.successful, 'finished': t.finished, 'stdout': t.stdout}))
`, [`StageFlow/${runId}/start/start`], env)
  return JSON.parse(text) as { successful: boolean; finished: boolean; stdout: string }
}

/** Exit 0, the outputs, every rule's faults really injected, and Metaflow's client content with the task and its logs. */
async function expectSuccess(c: Case, faults: number) {
  expect(c.r.code, shown(c.r)).toBe(0)
  expect(outputsIn(c.out)).toEqual({ task_id: 'start', split_count: '0', splits: '[]' })
  expect(proxy.faulted().map((s) => `${s.client} ${s.method} ${s.path} ${s.fault}`), JSON.stringify(proxy.seen.slice(-60))).toHaveLength(faults)
  const report = await judge(c.runId)
  expect(report).toMatchObject({ successful: true, finished: true })
  expect(report.stdout).toContain('STEP-STARTED')
}

const slowDown = { kind: 'status', status: 503, code: 'SlowDown' } as const
const internal = { kind: 'status', status: 500, code: 'InternalError' } as const
const reset = (afterBytes: number) => ({ kind: 'reset', afterBytes }) as const

describe('transient S3 faults', () => {
  it("are retried: 503 SlowDown on the code, the DONE lock, data.json, an artifact, the logs, the metadata and the step's own data.json write", async () => {
    const c = await start((runId) => [
      { method: 'GET', client: 'agent', path: CODE, fault: slowDown, times: 2 },
      { method: 'GET', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.DONE\\.lock$`), fault: slowDown, times: 1 },
      { method: 'GET', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.data\\.json$`), fault: slowDown, times: 1 },
      { method: 'GET', client: 'agent', path: ARTIFACT, fault: slowDown, times: 1 },
      { method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.task_stdout\\.log$`), fault: slowDown, times: 1 },
      { method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.local_metadata$`), fault: slowDown, times: 1 },
      // Metaflow retries its own writes; the agent only has to pass the step's result on.
      { method: 'PUT', client: 'step', path: new RegExp(`${TASK(runId)}/0\\.data\\.json$`), fault: slowDown, times: 1 },
    ])
    await expectSuccess(c, 8)
    expect(c.r.stderr).toMatch(/attempt 1\/\d+\).*SlowDown/)
  }, 150_000)

  it('are retried: resets mid-object on the code, data.json and an artifact, and mid-upload on the logs and the metadata', async () => {
    const c = await start((runId) => [
      { method: 'GET', client: 'agent', path: CODE, fault: reset(200), times: 1 },
      { method: 'GET', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.data\\.json$`), fault: reset(10), times: 1 },
      { method: 'GET', client: 'agent', path: ARTIFACT, fault: reset(8), times: 1 },
      { method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.task_stdout\\.log$`), fault: reset(16), times: 1 },
      { method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.local_metadata$`), fault: reset(1), times: 1 },
    ])
    await expectSuccess(c, 5)
  }, 150_000)

  it('do not hang the task: a task-record read that stalls is abandoned and read again', async () => {
    const c = await start((runId) => [
      { method: 'GET', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.data\\.json$`), fault: { kind: 'stall' }, times: 1 },
    ], [], 75_000)
    await expectSuccess(c, 1)
  }, 150_000)

  it('read the task record while a stalled metadata upload is abandoned and sent again, and write the outputs only after it', async () => {
    const c = await start((runId) => [
      { method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.local_metadata$`), fault: { kind: 'stall' }, times: 1 },
    ], [], 75_000)
    await expectSuccess(c, 1)
    const seen = proxy.seen.map((s, i) => ({ ...s, i }))
    const stepEnded = Math.max(...seen.filter((s) => s.client === 'step').map((s) => s.i))
    const recordRead = seen.find((s) => s.i > stepEnded && s.client === 'agent' && s.method === 'GET' && s.path.endsWith(`${TASK(c.runId)}/0.data.json`))
    const metadataSaved = seen.filter((s) => s.method === 'PUT' && s.path.endsWith(`${TASK(c.runId)}/0.local_metadata`)).at(-1)
    expect(recordRead, JSON.stringify(seen.slice(stepEnded))).toBeDefined()
    expect(metadataSaved?.fault).toBeUndefined()
    // The record was read during the stall, not after the metadata was saved.
    expect(recordRead?.i).toBeLessThan(metadataSaved?.i as number)
  }, 150_000)
})

describe('permanent S3 faults', () => {
  it('on the code object end with exit 69 within --code-timeout and run nothing', async () => {
    const c = await start(() => [{ method: 'GET', client: 'agent', path: CODE, fault: internal, times: Infinity }], ['--code-timeout', '6'], 30_000)
    expectOneError(c.r, 69, /failed to fetch s3:\/\/fault-datastore\/code\/stage_flow\.py/)
    expect(c.r.stderr).not.toContain('initialising run')
    expectNoOutputs(c.out)
  })

  it('on the code object that stalls end with exit 69 at the --code-timeout deadline', async () => {
    const c = await start(() => [{ method: 'GET', client: 'agent', path: CODE, fault: { kind: 'stall' }, times: Infinity }], ['--code-timeout', '4'], 30_000)
    expectOneError(c.r, 69)
    expect(c.r.ms).toBeLessThan(20_000)
    expectNoOutputs(c.out)
  })

  it('on the task record end with exit 74 and no outputs', async () => {
    const c = await start((runId) => [{ method: 'GET', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.data\\.json$`), fault: internal, times: Infinity }])
    expectOneError(c.r, 74, /failed to read task kfp-s3fault-\d+\/start\/start/)
    expectNoOutputs(c.out)
  }, 150_000)

  it('on the log upload leave the step its result: exit 0, the outputs, a warning', async () => {
    const c = await start((runId) => [{ method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.task_stdout\\.log$`), fault: internal, times: Infinity }])
    expect(c.r.code, shown(c.r)).toBe(0)
    expect(outputsIn(c.out)).toEqual({ task_id: 'start', split_count: '0', splits: '[]' })
    // A warning for the final upload (and one for the uploads while the step runs, where the agent makes them).
    const warnings = c.r.stderr.split('\n').filter((l) => /^metaflow-kfp: warning: failed to save the task logs/.test(l))
    expect(warnings.length, shown(c.r)).toBeGreaterThanOrEqual(1)
    expect(warnings.length, shown(c.r)).toBeLessThanOrEqual(2)
    expect(c.r.stderr).not.toMatch(/^metaflow-kfp: error:/m)
  }, 150_000)

  it('on the metadata upload end with exit 74 and no outputs', async () => {
    const c = await start((runId) => [{ method: 'PUT', client: 'agent', path: new RegExp(`${TASK(runId)}/0\\.local_metadata$`), fault: internal, times: Infinity }])
    expectOneError(c.r, 74, /failed to save the local metadata of kfp-s3fault-\d+\/start\/start/)
    expectNoOutputs(c.out)
  }, 150_000)
})
