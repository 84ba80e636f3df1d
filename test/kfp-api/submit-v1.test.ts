// metaflow-kfp submit / status / terminate on a KFP 1.x cluster (v1beta1 only), against KFP 1.8's stand-in (no KFP API server runs here).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runAgent } from '../helpers/agent-process'
import { FLOWS, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { startStandIn, startStandInV1 } from './standin'
import type { LoggedRequest, StandIn } from './standin'
import { env, noSecrets, oneErrorLine, runIdOf } from './submit-helpers'

const ARGO_PARAMS = join(REPO, 'pipeline-templates', 'params_flow.argo.yaml')
const ARGO_HELLO = join(REPO, 'pipeline-templates', 'hello_flow.argo.yaml')
const KFP_HELLO = join(REPO, 'pipeline-templates', 'hello_flow.kfp.yaml')
const TOKEN = 'tok-v1-4c2e8a-team-a-secret'

type StoredRun = Record<string, any> & { _parameters: Record<string, string>; _workflow: Record<string, any> }

const bodyOf = (l: LoggedRequest | undefined) => JSON.parse(l?.body ?? '{}') as Record<string, any>

describe('metaflow-kfp submit to KFP 1.x (v1beta1)', () => {
  const tempDir = useTempDir()
  let kfp1: StandIn
  let multi: StandIn
  let shared: string
  beforeAll(async () => {
    // Not from useTempDir: that removes its folders after each test, and the stand-ins outlive them.
    shared = mkdtempSync(join(tmpdir(), 'mfkfp-standin-v1-'))
    ;[kfp1, multi] = await Promise.all([
      startStandInV1(shared, { multi_user: false, page_size_cap: 1 }),
      startStandInV1(shared, { multi_user: true, page_size_cap: 1, credentials: [{ token: TOKEN, namespaces: ['team-a'] }] }),
    ])
  }, 150_000)
  afterAll(async () => {
    await Promise.all([kfp1?.stop(), multi?.stop()])
    rmSync(shared, { recursive: true, force: true })
  })

  // KFP 1.8 drops an unknown body field without a word, so after each test: the agent sent none.
  afterEach(async () => {
    const dropped = [...(await kfp1.log()), ...(await multi.log())].flatMap((l) => l.unknown_fields ?? [])
    expect(dropped, 'body fields KFP 1.8 would have dropped').toEqual([])
  })

  const runs = async (s: StandIn) => (await s.runs()) as StoredRun[]

  it("goes from a flow file to the run URL with the seed's profile: generated as an Argo Workflow, sent through v1beta1", async () => {
    const home = tempDir()
    mkdirSync(join(home, '.metaflowconfig'))
    writeFileSync(
      join(home, '.metaflowconfig', 'config_sree.json'),
      JSON.stringify({
        METAFLOW_DATASTORE_SYSROOT_S3: 's3://my-bucket/aip/metaflow',
        METAFLOW_DEFAULT_DATASTORE: 's3',
        METAFLOW_AWS_ARN: 'arn:aws:iam::123456789012:role/my-team-role',
        METAFLOW_AWS_S3_REGION: 'us-west-2',
        KFP_RUN_URL_PREFIX: 'https://kubeflow.example.com/pipeline/#/runs/details',
        KF_PIPELINES_ENDPOINT: kfp1.url,
      }),
    )
    const r = await runAgent(
      ['submit', join(FLOWS, 'hello_flow.py'), '--experiment-name', 'MF-on-KFP-P2', '--run-name', 'hello_run', '--code-url', 'https://example.com/flows/hello_flow.py'],
      { env: env(home, { METAFLOW_PROFILE: 'sree' }), cwd: home },
    )
    expect(r.code, r.stderr).toBe(0)
    const id = runIdOf(r)
    expect(r.stdout).toContain(`Run URL: https://kubeflow.example.com/pipeline/#/runs/details/${id}\n`)
    expect(r.stderr).toMatch(/generated the Argo Workflow \(for KFP 1\.x\)/)
    const run = (await runs(kfp1)).find((x) => x.id === id) as StoredRun
    expect(run.name).toBe('hello_run')
    expect(run._workflow.kind).toBe('Workflow')
    expect(JSON.stringify(run._workflow)).toContain('arn:aws:iam::123456789012:role/my-team-role')
    const log = await kfp1.log()
    expect(bodyOf(log.find((l) => l.method === 'POST' && l.path === '/apis/v1beta1/experiments'))).toEqual({ name: 'MF-on-KFP-P2', description: '' })
    expect(log.some((l) => l.path.startsWith('/apis/v2beta1/') && l.path !== '/apis/v2beta1/healthz')).toBe(false)
  })

  it('sends an Argo Workflow file with its manifest as a JSON string, --param as workflow parameter strings, and the experiment as OWNER', async () => {
    const r = await runAgent(['submit', ARGO_PARAMS, '--host', kfp1.url, '--param', 'alpha=0.75', '--param', 'config={"depth": 1}', '--run-name', 'typed-v1'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    const id = runIdOf(r)
    expect(r.stdout).toContain(`Run URL: ${kfp1.url}/#/runs/details/${id}`)
    const run = (await runs(kfp1)).find((x) => x.id === id) as StoredRun
    expect(run._parameters).toMatchObject({ alpha: '0.75', config: '{"depth": 1}', who: 'world' })
    const sent = bodyOf((await kfp1.log()).find((l) => l.method === 'POST' && l.path === '/apis/v1beta1/runs' && l.body.includes('typed-v1')))
    expect(typeof sent.pipeline_spec.workflow_manifest).toBe('string')
    expect(JSON.parse(sent.pipeline_spec.workflow_manifest)).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow' })
    expect(sent.resource_references).toEqual([{ key: { type: 'EXPERIMENT', id: run.resource_references[0].key.id }, relationship: 'OWNER' }])
  })

  it('refuses a --param the workflow does not declare before sending anything (KFP 1.x would drop it silently)', async () => {
    const before = (await kfp1.log()).length
    const r = await runAgent(['submit', ARGO_PARAMS, '--host', kfp1.url, '--param', 'beta=1'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/failed to set --param beta: .*declares no such input.*its inputs are: code-url, alpha, who, count, config/)
    expect((await kfp1.log()).length).toBe(before)
  })

  it('refuses a KFP v2 pipeline file in one line on a KFP 1.x cluster, saying what to send instead', async () => {
    const r = await runAgent(['submit', KFP_HELLO, '--host', kfp1.url], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/failed to submit a KFP v2 pipeline: .* is KFP 1\.x .*runs only Argo Workflows \(submit the flow \.py/)
  })

  it("sends an Argo Workflow to a KFP 2.x cluster through its v1beta1 API, which runs it as a v1 pipeline", async () => {
    const kfp2 = await startStandInV1(shared, { multi_user: false, v2_healthz: true })
    try {
      const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp2.url, '--run-name', 'argo-on-2x'], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(0)
      expect((await runs(kfp2)).map((x) => x.name)).toEqual(['argo-on-2x'])
      // An Argo file never tries v2beta1: KFP v2's run API takes IR.
      expect((await kfp2.log()).some((l) => l.path.startsWith('/apis/v2beta1/'))).toBe(false)
    } finally {
      await kfp2.stop()
    }
  })

  it('refuses an Argo Workflow in one line when the cluster has no v1beta1 API (a KFP 2.x without it)', async () => {
    const kfp2 = await startStandIn(shared, { multi_user: false })
    try {
      const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp2.url], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(64)
      expect(oneErrorLine(r)).toMatch(/failed to submit the Argo Workflow: .* has no \/apis\/v1beta1, the only KFP API that runs one .*\(send the KFP v2 form/)
      expect(await kfp2.runs()).toEqual([])
    } finally {
      await kfp2.stop()
    }
  })

  it('exits 65 with KFP\'s message when a KFP 2.x cluster blocks v1 pipelines', async () => {
    const kfp2 = await startStandInV1(shared, { multi_user: false, v2_healthz: true, block_v1: true })
    try {
      const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp2.url], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(65)
      expect(oneErrorLine(r)).toMatch(/KFP refused it: 400 .*V1 pipeline specs are not allowed.*\(this cluster runs only KFP v2 pipelines/)
    } finally {
      await kfp2.stop()
    }
  })

  it('in multi-user mode, makes the experiment with a NAMESPACE reference and runs in it with a token it never prints', async () => {
    const r = await runAgent(['submit', ARGO_HELLO, '--host', multi.url, '--namespace', 'team-a', '--token', TOKEN, '--experiment-name', 'team exp'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    noSecrets(r, [TOKEN])
    const log = await multi.log()
    expect(bodyOf(log.find((l) => l.method === 'POST' && l.path === '/apis/v1beta1/experiments'))).toEqual({
      name: 'team exp',
      description: '',
      resource_references: [{ key: { type: 'NAMESPACE', id: 'team-a' }, relationship: 'OWNER' }],
    })
    const listing = log.find((l) => l.method === 'GET' && l.path === '/apis/v1beta1/experiments')
    expect(listing?.query).toMatchObject({ 'resource_reference_key.type': 'NAMESPACE', 'resource_reference_key.id': 'team-a' })
    expect((await runs(multi)).find((x) => x.id === runIdOf(r))?.resource_references).toContainEqual({ key: { type: 'NAMESPACE', id: 'team-a' }, relationship: 'OWNER' })
  })

  it('in multi-user mode, exits 64 without a namespace and 77 naming the credential KFP refused', async () => {
    const none = await runAgent(['submit', ARGO_HELLO, '--host', multi.url, '--token', TOKEN], { env: env(tempDir()) })
    expect(none.code, none.stderr).toBe(64)
    expect(oneErrorLine(none)).toMatch(/multi-user mode and no namespace was given/)
    const wrong = await runAgent(['submit', ARGO_HELLO, '--host', multi.url, '--namespace', 'team-a'], { env: env(tempDir(), { KFP_API_TOKEN: 'tok-v1-wrong-secret' }) })
    expect(wrong.code, wrong.stderr).toBe(77)
    expect(oneErrorLine(wrong)).toMatch(/refused the bearer token from KFP_API_TOKEN: 401 /)
    noSecrets(wrong, ['tok-v1-wrong-secret'])
  })

  it("finds an experiment whose name holds + and % through v1's paged, twice-decoded listing, and does not create it again", async () => {
    const e = env(tempDir())
    for (let i = 0; i < 2; i++) {
      const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp1.url, '--experiment-name', 'v1 a+b 100%'], { env: e })
      expect(r.code, r.stderr).toBe(0)
    }
    const creates = (await kfp1.log()).filter((l) => l.method === 'POST' && l.path === '/apis/v1beta1/experiments' && l.body.includes('v1 a+b 100%'))
    expect(creates).toHaveLength(1)
  })

  it('never creates a run twice when KFP 1.x made it but answered 503: it finds the run by its request marker', async () => {
    await kfp1.faults([{ method: 'POST', path: '/apis/v1beta1/runs$', status: 503, count: 1, after: true }])
    const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp1.url, '--run-name', 'v1-once-only'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    const made = (await runs(kfp1)).filter((x) => x.name === 'v1-once-only')
    expect(made).toHaveLength(1)
    expect(runIdOf(r)).toBe(made[0]?.id)
    expect(r.stderr).toMatch(/not creating it again/)
  })

  it('with --pipeline-name, uploads the workflow as a new version of a shared v1 pipeline each time and runs that version', async () => {
    const e = env(tempDir())
    const args = ['submit', ARGO_PARAMS, '--host', kfp1.url, '--pipeline-name', 'ParamsFlowV1', '--param', 'alpha=0.3']
    const first = await runAgent(args, { env: e })
    expect(first.code, first.stderr).toBe(0)
    const second = await runAgent(args, { env: e })
    expect(second.code, second.stderr).toBe(0)
    const { pipelines, versions } = await kfp1.pipelines()
    const p = pipelines.filter((x) => x.name === 'params-flow-v1')
    expect(p).toHaveLength(1)
    const mine = versions.filter((v) => v.resource_references[0].key.id === p[0]?.id)
    expect(mine).toHaveLength(2)
    const run = (await runs(kfp1)).find((x) => x.id === runIdOf(second)) as StoredRun
    expect(run.resource_references).toContainEqual({ key: { type: 'PIPELINE_VERSION', id: mine.find((v) => v.name !== 'params-flow-v1')?.id }, relationship: 'CREATOR' })
    expect(run._parameters.alpha).toBe('0.3')
  })

  it("--wait follows run.status and the workflow's pods (a retried task's attempt as Argo names it), one line per task state change with --progress, and exits 0", async () => {
    await kfp1.configure({ outcome: 'Succeeded' })
    const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp1.url, '--wait', '--poll-interval', '0.1', '--progress'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/task start\(0\) RUNNING\n[\s\S]*task start\(0\) SUCCEEDED/)
    expect(r.stderr).toMatch(/task end\(0\) SUCCEEDED/)
    // Argo's DAG and Retry nodes are not tasks: start, hello and end, each RUNNING then SUCCEEDED, and nothing else.
    expect(r.stderr.split('\n').filter((l) => / task /.test(l))).toHaveLength(6)
    expect(r.stdout).toMatch(new RegExp(`^Run ${runIdOf(r)} SUCCEEDED$`, 'm'))
  })

  it("--wait reports a Failed workflow with Argo's message and exits 1", async () => {
    await kfp1.configure({ outcome: 'Failed' })
    try {
      const r = await runAgent(['submit', ARGO_HELLO, '--host', kfp1.url, '--wait', '--poll-interval', '0.1'], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stdout).toMatch(new RegExp(`^Run ${runIdOf(r)} FAILED: child 'end' failed$`, 'm'))
    } finally {
      await kfp1.configure({ outcome: 'Succeeded' })
    }
  })

  it('status reads a v1 run and its pods; terminate stops it, and a finished run is refused in one line', async () => {
    const e = env(tempDir())
    const made = await runAgent(['submit', ARGO_HELLO, '--host', kfp1.url], { env: e })
    const id = runIdOf(made)
    const st = await runAgent(['status', id, '--host', kfp1.url], { env: e })
    expect(st.code, st.stderr).toBe(0)
    expect(st.stdout).toMatch(new RegExp(`^Run ${id}: RUNNING$`, 'm'))
    expect(st.stdout).toMatch(/^ {2}task start\(0\): RUNNING$/m)
    expect(st.stdout.match(/^ {2}task /gm)).toHaveLength(1)
    const t = await runAgent(['terminate', id, '--host', kfp1.url], { env: e })
    expect(t.code, t.stderr).toBe(0)
    expect((await kfp1.log()).some((l) => l.method === 'POST' && l.path === `/apis/v1beta1/runs/${id}/terminate`)).toBe(true)
    // KFP 1.x stops a run through Argo's deadline: the workflow ends Failed.
    const after = await runAgent(['status', id, '--host', kfp1.url], { env: e })
    expect(after.stdout).toMatch(new RegExp(`^Run ${id}: FAILED \\(Step exceeded its deadline\\)$`, 'm'))
    const again = await runAgent(['terminate', id, '--host', kfp1.url], { env: e })
    expect(again.code, again.stderr).toBe(64)
    expect(oneErrorLine(again)).toMatch(/failed to terminate run .*KFP refused it: 400 /)
  })
})
