// The built agent on moto's S3 and STS: the seed's foreach flow under an assumed role, credentials that outlive their session, refusals.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv, runAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { metaflowRun } from '../helpers/metaflow-client'
import { FOREACH_FLOW_TASKS, restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, putObject, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { FIXTURE_FLOWS, FLOWS, PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const BUCKET = 'team-datastore'
const ROOT = `s3://${BUCKET}/aip/metaflow`
const ROLE = 'arn:aws:iam::123456789012:role/dev-zestimate-role'
let moto: Moto

beforeAll(async () => {
  moto = await startMoto()
  await makeBucket(moto.endpoint, BUCKET)
  await putObject(moto.endpoint, BUCKET, 'code/foreach_flow.py', readFileSync(join(FLOWS, 'foreach_flow.py')))
  await putObject(moto.endpoint, BUCKET, 'code/aws_identity_flow.py', readFileSync(join(FIXTURE_FLOWS, 'aws_identity_flow.py')))
})
afterAll(async () => {
  await moto?.stop()
})

/** Runs one agent command and fails the test with its output unless it exits 0. */
async function task(runs: AgentRun[], args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<AgentRun> {
  const r = await runAgent(args, { env, cwd })
  runs.push(r)
  expect(r.code, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0)
  return r
}

/** The seed's foreach flow task by task, as a pipeline would run it; returns every run of the agent. */
async function runForeach(env: NodeJS.ProcessEnv, runId: string, out: string): Promise<AgentRun[]> {
  const runs: AgentRun[] = []
  const common = ['--code-url', `s3://${BUCKET}/code/foreach_flow.py`, '--python', PYTHON, '--run-id', runId]
  await task(runs, ['step', 'start', ...common, '--output-dir', join(out, 'start')], env, out)
  expect(readFileSync(join(out, 'start', 'split_count'), 'utf8')).toBe('4')
  await Promise.all([0, 1, 2, 3].map((i) => task(runs, ['step', 'explore', ...common, '--parent', 'start', '--split-index', String(i)], env, out)))
  await task(runs, ['step', 'join', ...common, '--join-foreach', 'explore', '--num-splits', '4'], env, out)
  await task(runs, ['step', 'end', ...common, '--parent', 'join', '--output-dir', join(out, 'end')], env, out)
  return runs
}


/** Metaflow's own tooling: pull each task's saved metadata back, then ask its client about the run. */
async function judge(flowRun: string, tasks: [string, string][]) {
  const laptop = tempDir()
  const env = s3ClientEnv(moto.endpoint, ROOT, laptop)
  const [flow, runId] = flowRun.split('/') as [string, string]
  await restoreLocalMetadata(env, flow, runId, tasks)
  return metaflowRun(flowRun, env)
}

/** Nothing secret in anything the agent printed or wrote: source keys, role keys, session tokens. */
function expectNoSecrets(runs: AgentRun[], dirs: string[]) {
  const texts = runs.flatMap((r) => [r.stdout, r.stderr])
  for (const d of dirs) for (const f of readdirSync(d, { recursive: true, withFileTypes: true })) if (f.isFile()) texts.push(readFileSync(join(f.parentPath, f.name), 'utf8'))
  const all = texts.join('\n')
  expect(all).not.toContain(MOTO_KEYS.AWS_SECRET_ACCESS_KEY)
  expect(all).not.toContain(MOTO_KEYS.AWS_ACCESS_KEY_ID)
  // moto's role keys start with ASIA, like real STS keys; its session tokens with FQoGZXIvYXdzE.
  expect(all).not.toMatch(/ASIA[A-Z0-9]{12,}/)
  expect(all).not.toMatch(/FQoGZXIvYXdzE/)
}

describe('the foreach flow on S3 under an assumed role', () => {
  it("runs configured by a Metaflow profile in the seed's form", async () => {
    const home = tempDir()
    mkdirSync(join(home, '.metaflowconfig'))
    // The seed's config_sree.json layout, with this test's bucket and role.
    writeFileSync(join(home, '.metaflowconfig', 'config_sree.json'), `{
    "METAFLOW_DATASTORE_SYSROOT_S3": "${ROOT}",
    "METAFLOW_DEFAULT_DATASTORE": "s3",

    "METAFLOW_AWS_ARN" : "${ROLE}",
    "METAFLOW_AWS_S3_REGION" : "us-west-2",

    "KFP_RUN_URL_PREFIX" : "https://kubeflow.example/pipeline/#/runs/details"
}
`)
    // The endpoint comes from the standard AWS variable, which the agent and botocore both honour.
    const env = agentEnv({ ...MOTO_KEYS, HOME: home, METAFLOW_PROFILE: 'sree', AWS_ENDPOINT_URL: moto.endpoint })
    const out = tempDir()

    const config = await runAgent(['config'], { env })
    expect(config.code).toBe(0)
    expect(config.stdout).toContain(`METAFLOW_AWS_ARN=${ROLE}  # profile ${join(home, '.metaflowconfig', 'config_sree.json')}`)
    expect(config.stdout).toContain('AWS_SECRET_ACCESS_KEY=****')

    const runs = await runForeach(env, 'kfp-profile', out)
    expect(runs[0]?.stderr).toContain(`assumed role ${ROLE}`)
    expect(runs[0]?.stderr).toMatch(/credential endpoint served [1-9]\d* request/)
    expect(readFileSync(join(out, 'end', 'task_id'), 'utf8')).toBe('end')

    const report = await judge('ForeachFlow/kfp-profile', FOREACH_FLOW_TASKS)
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toEqual(['explore-0', 'explore-1', 'explore-2', 'explore-3'])
    expect(report.end).toMatchObject({ results: ['HOUSE OF CARDS', 'NARCOS', 'STRANGER THINGS', 'SUBURRA'], total_letters: 42 })
    expectNoSecrets([...runs, config], [out])
  })

  it('runs configured by the environment alone', async () => {
    const env = agentEnv({
      ...MOTO_KEYS,
      HOME: tempDir(),
      METAFLOW_DATASTORE_SYSROOT_S3: ROOT,
      METAFLOW_DEFAULT_DATASTORE: 's3',
      METAFLOW_AWS_ARN: ROLE,
      METAFLOW_AWS_S3_REGION: 'us-east-1',
      KFP_RUN_URL_PREFIX: 'https://kubeflow.example/pipeline/#/runs/details/',
      // Metaflow's own endpoint key for S3, the standard one for STS.
      METAFLOW_S3_ENDPOINT_URL: moto.endpoint,
      AWS_ENDPOINT_URL_STS: moto.endpoint,
    })
    const out = tempDir()
    const runs = await runForeach(env, 'kfp-env', out)
    const report = await judge('ForeachFlow/kfp-env', FOREACH_FLOW_TASKS)
    expect(report.successful).toBe(true)
    expect(report.end).toMatchObject({ total_letters: 42 })
    expectNoSecrets(runs, [out])
  })
})

describe('credentials that outlive their session', () => {
  it('keep a step writing to S3 past the first expiry, and refuse a request without the token', async () => {
    const env = agentEnv({
      ...MOTO_KEYS,
      HOME: tempDir(),
      AWS_ENDPOINT_URL: moto.endpoint,
      // Test-only: 4-second sessions refreshed 2 seconds before they end (see credentials.ts).
      METAFLOW_KFP_TEST_CREDENTIAL_TTL: '4',
      METAFLOW_KFP_TEST_CREDENTIAL_REFRESH: '2',
    })
    const out = tempDir()
    const runs: AgentRun[] = []
    const common = ['--code-url', `s3://${BUCKET}/code/aws_identity_flow.py`, '--python', PYTHON, '--run-id', 'kfp-refresh', '--datastore', 's3', '--datastore-root', ROOT, '--role-arn', ROLE]
    const start = await task(runs, ['step', 'start', ...common, '--param', 'sleep_seconds=9'], env, out)
    await task(runs, ['step', 'end', ...common, '--parent', 'start'], env, out)

    // The agent assumed the role again several times while the step slept.
    expect(start.stderr.match(/assumed role /g)?.length).toBeGreaterThanOrEqual(4)
    const served = Number(/credential endpoint served (\d+) request/.exec(start.stderr)?.[1])
    expect(served).toBeGreaterThanOrEqual(2)

    const report = await judge('AwsIdentityFlow/kfp-refresh', [['_parameters', 'params'], ['start', 'start'], ['end', 'end']])
    expect(report.successful).toBe(true)
    const a = report.end as Record<string, unknown>
    expect(a.credential_method).toBe('container-role')
    expect(a.shadowing_env).toEqual([])
    expect(a.caller_arn).toMatch(/:assumed-role\/dev-zestimate-role\/mfkfp-kfp-refresh-start$/)
    expect(a.without_token_status).toBe(401)
    expect(a.last_key).not.toBe(a.first_key)
    expect(a.written).toBe(`${ROOT}/data/AwsIdentityFlow/kfp-refresh/after-sleep`)
    expectNoSecrets(runs, [out])
  })
})

describe('a role STS refuses', () => {
  let strict: Moto
  beforeAll(async () => {
    // moto's strict mode: the source keys are unknown to its IAM, so AssumeRole is refused.
    strict = await startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: '0' })
  })
  afterAll(async () => {
    await strict?.stop()
  })

  it('ends with exit code 77 and one line naming the role and nothing secret', async () => {
    const env = agentEnv({ ...MOTO_KEYS, HOME: tempDir(), AWS_ENDPOINT_URL: strict.endpoint })
    const r = await runAgent(['step', 'start', '--code-url', `s3://${BUCKET}/code/foreach_flow.py`, '--python', PYTHON, '--run-id', 'kfp-denied', '--datastore', 's3', '--datastore-root', ROOT, '--role-arn', ROLE], { env })
    expect(r.code).toBe(77)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^metaflow-kfp: error: failed to assume role ${ROLE.replace(/[/]/g, '\\/')}: .*(InvalidClientTokenId|security token).*\\(.+\\)$`))
    expectNoSecrets([r], [])
  })
})
