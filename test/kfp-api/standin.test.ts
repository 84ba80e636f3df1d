// The KFP stand-in itself: the kfp SDK's own Client works against it (no stricter than KFP), and it refuses what KFP refuses (so it can fail).
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { PYTHON, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { startStandIn } from './standin'
import type { StandIn } from './standin'

const PIPELINE = join(REPO, 'pipeline-templates', 'params_flow.kfp.yaml')
const spec = () => parse(readFileSync(PIPELINE, 'utf8')) as Record<string, any>

describe('the KFP stand-in', () => {
  const tempDir = useTempDir()
  let single: StandIn
  let multi: StandIn
  beforeAll(async () => {
    const dir = tempDir()
    ;[single, multi] = await Promise.all([
      startStandIn(dir, { multi_user: false }),
      startStandIn(dir, { multi_user: true, credentials: [{ token: 'tok-team-a', namespaces: ['team-a'] }] }),
    ])
  }, 120_000)
  afterAll(async () => {
    await Promise.all([single?.stop(), multi?.stop()])
  })

  const post = (s: StandIn, path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(s.url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })

  it("serves the kfp SDK's own Client: experiment, run from the package with typed arguments, wait, terminate", async () => {
    const script = join(tempDir(), 'sdk.py')
    writeFileSync(
      script,
      [
        'import sys, kfp',
        'c = kfp.Client(host=sys.argv[1])',
        "e = c.create_experiment('sdk experiment')",
        "assert c.create_experiment('sdk experiment').experiment_id == e.experiment_id",
        "r = c.create_run_from_pipeline_package(sys.argv[2], arguments={'alpha': 0.25, 'who': 'sdk'}, run_name='sdk run', experiment_name='sdk experiment')",
        'done = c.wait_for_run_completion(r.run_id, timeout=60, sleep_duration=0.1)',
        "r2 = c.create_run_from_pipeline_package(sys.argv[2], run_name='to stop', experiment_name='sdk experiment')",
        'c.terminate_run(r2.run_id)',
        'c.get_run(r2.run_id)',
        "print('states', done.state, c.get_run(r2.run_id).state)",
      ].join('\n'),
    )
    const { stdout } = await promisify(execFile)(PYTHON, [script, single.url, PIPELINE], { timeout: 120_000 })
    expect(stdout).toMatch(/^states SUCCEEDED CANCELED$/m)
    const runs = await single.runs()
    const sdkRun = runs.find((r) => r.display_name === 'sdk run') as Record<string, any>
    expect(sdkRun.runtime_config.parameters).toEqual({ alpha: 0.25, who: 'sdk' })
  })

  it("serves the kfp SDK's uploads: a pipeline, a second version, and a run of that version", async () => {
    const script = join(tempDir(), 'upload.py')
    writeFileSync(
      script,
      [
        'import sys, kfp',
        'c = kfp.Client(host=sys.argv[1])',
        "p = c.upload_pipeline(sys.argv[2], pipeline_name='sdk-upload')",
        "v = c.upload_pipeline_version(sys.argv[2], pipeline_version_name='v2', pipeline_id=p.pipeline_id)",
        "e = c.create_experiment('sdk uploads')",
        "r = c.run_pipeline(experiment_id=e.experiment_id, job_name='of a version', pipeline_id=p.pipeline_id, version_id=v.pipeline_version_id, params={'alpha': 0.1})",
        "print('state', c.wait_for_run_completion(r.run_id, timeout=60, sleep_duration=0.1).state, len(c.list_pipeline_versions(p.pipeline_id).pipeline_versions))",
      ].join('\n'),
    )
    const { stdout } = await promisify(execFile)(PYTHON, [script, single.url, PIPELINE], { timeout: 120_000 })
    expect(stdout).toMatch(/^state SUCCEEDED 2$/m)
  })

  it('refuses an upload whose pipeline name KFP does not allow', async () => {
    const form = new FormData()
    form.append('uploadfile', new Blob([readFileSync(PIPELINE, 'utf8').replace(/name: metaflow-params-flow/, 'name: ParamsFlow')]), 'p.yaml')
    const r = await fetch(`${single.url}/apis/v2beta1/pipelines/upload?name=params`, { method: 'POST', body: form })
    expect(r.status).toBe(400)
  })

  it('refuses an unknown field in a run, with KFP error shape', async () => {
    const r = await post(single, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: spec(), runtime_config: {}, colour: 'red' })
    expect(r.status).toBe(400)
    const body = (await r.json()) as Record<string, unknown>
    expect(body).toMatchObject({ code: 3, details: [] })
    expect(body.message).toMatch(/unknown field "colour"/)
  })

  it('refuses a field of the wrong type, deep inside the run', async () => {
    const r = await post(single, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: spec(), runtime_config: { pipeline_root: 7 } })
    expect(r.status).toBe(400)
  })

  it('refuses a runtime parameter the pipeline does not declare, and one of the wrong type', async () => {
    const r1 = await post(single, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: spec(), runtime_config: { parameters: { beta: 1 } } })
    expect(r1.status).toBe(400)
    expect(((await r1.json()) as { message: string }).message).toMatch(/beta is not declared/)
    const r2 = await post(single, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: spec(), runtime_config: { parameters: { alpha: 'high' } } })
    expect(r2.status).toBe(400)
  })

  it('refuses a pipeline spec that is not KFP IR', async () => {
    const bad = spec()
    bad.root.dag.colour = 'red'
    const r = await post(single, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: bad, runtime_config: {} })
    expect(r.status).toBe(400)
    expect(((await r.json()) as { message: string }).message).toMatch(/colour/)
  })

  it('accepts camelCase names and enum numbers as protojson does', async () => {
    const f = encodeURIComponent(JSON.stringify({ predicates: [{ operation: 1, key: 'display_name', stringValue: 'nothing' }] }))
    const r = await fetch(`${single.url}/apis/v2beta1/experiments?filter=${f}`)
    expect(r.status).toBe(200)
  })

  it("decodes the filter twice as KFP does, so a once-encoded '%' in a name is refused", async () => {
    const f = encodeURIComponent(JSON.stringify({ predicates: [{ operation: 'EQUALS', key: 'display_name', string_value: '100%' }] }))
    expect((await fetch(`${single.url}/apis/v2beta1/experiments?filter=${f}`)).status).toBe(400)
    expect((await fetch(`${single.url}/apis/v2beta1/experiments?filter=${encodeURIComponent(f)}`)).status).toBe(200)
  })

  it('in multi-user mode, refuses a listing without a namespace, an experiment without one, and a run without an experiment', async () => {
    const auth = { authorization: 'Bearer tok-team-a' }
    expect((await fetch(`${multi.url}/apis/v2beta1/experiments`, { headers: auth })).status).toBe(400)
    expect((await post(multi, '/apis/v2beta1/experiments', { display_name: 'e' }, auth)).status).toBe(400)
    const r = await post(multi, '/apis/v2beta1/runs', { display_name: 'x', pipeline_spec: spec(), runtime_config: {} }, auth)
    expect(((await r.json()) as { message: string }).message).toMatch(/Experiment id can not be empty in multi-user mode/)
  })

  it('in multi-user mode, answers 401 without a known credential and 403 for another namespace', async () => {
    expect((await fetch(`${multi.url}/apis/v2beta1/experiments?namespace=team-a`)).status).toBe(401)
    expect((await fetch(`${multi.url}/apis/v2beta1/experiments?namespace=team-a`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await fetch(`${multi.url}/apis/v2beta1/experiments?namespace=team-b`, { headers: { authorization: 'Bearer tok-team-a' } })).status).toBe(403)
  })

  it('never changes a run once it is in a terminal state', async () => {
    const made = (await (await post(single, '/apis/v2beta1/runs', { display_name: 'short', pipeline_spec: spec(), runtime_config: {} })).json()) as { run_id: string }
    let state = ''
    for (let i = 0; i < 20 && state !== 'SUCCEEDED'; i++) state = ((await (await fetch(`${single.url}/apis/v2beta1/runs/${made.run_id}`)).json()) as { state: string }).state
    expect(state).toBe('SUCCEEDED')
    await post(single, `/apis/v2beta1/runs/${made.run_id}:terminate`, undefined)
    const after = (await (await fetch(`${single.url}/apis/v2beta1/runs/${made.run_id}`)).json()) as { state: string }
    expect(after.state).toBe('SUCCEEDED')
  })
})
