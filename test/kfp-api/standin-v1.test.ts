// The KFP 1.8 stand-in itself: the kfp 1.8 SDK's own Client works against it (no stricter than KFP 1.8), and it refuses what KFP 1.8 refuses (so it can fail).
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { PYTHON_KFP1, startStandInV1 } from './standin'
import type { StandIn } from './standin'

const WORKFLOW = join(REPO, 'pipeline-templates', 'params_flow.argo.yaml')
const manifest = () => JSON.stringify(parse(readFileSync(WORKFLOW, 'utf8')))

describe('the KFP 1.8 stand-in', () => {
  const tempDir = useTempDir()
  let single: StandIn
  let multi: StandIn
  beforeAll(async () => {
    const dir = tempDir()
    ;[single, multi] = await Promise.all([
      startStandInV1(dir, { multi_user: false }),
      startStandInV1(dir, { multi_user: true, credentials: [{ token: 'tok-team-a', namespaces: ['team-a'] }] }),
    ])
  }, 120_000)
  afterAll(async () => {
    await Promise.all([single?.stop(), multi?.stop()])
  })

  const post = (s: StandIn, path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(s.url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
  const run = (extra: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) => ({ name: 'x', pipeline_spec: { workflow_manifest: manifest(), ...spec }, ...extra })
  const message = async (r: Response) => ((await r.json()) as { message: string }).message

  it("serves the kfp 1.8 SDK's own Client: experiments, a run of a workflow file, get_run to the end, uploads and a run of a version", async () => {
    const script = join(tempDir(), 'sdk1.py')
    writeFileSync(
      script,
      [
        'import sys, kfp',
        'c = kfp.Client(host=sys.argv[1])',
        "e = c.create_experiment('sdk experiment')",
        "assert c.create_experiment('sdk experiment').id == e.id",
        "r = c.run_pipeline(experiment_id=e.id, job_name='sdk run', pipeline_package_path=sys.argv[2], params={'alpha': 0.25, 'who': 'sdk'})",
        'states = [c.get_run(r.id).run.status for _ in range(5)]',
        "p = c.upload_pipeline(sys.argv[2], pipeline_name='sdk-upload')",
        "v = c.upload_pipeline_version(sys.argv[2], pipeline_version_name='v2', pipeline_id=p.id)",
        "r2 = c.run_pipeline(experiment_id=e.id, job_name='of a version', version_id=v.id, params={'alpha': '0.1'})",
        "print('states', states[0], states[-1], [x.name for x in c.list_experiments().experiments], c.get_pipeline_id('sdk-upload') == p.id, len(c.list_pipeline_versions(p.id).versions))",
      ].join('\n'),
    )
    // HOME: the SDK reads and writes ~/.config/kfp/context.json.
    const { stdout } = await promisify(execFile)(PYTHON_KFP1, [script, single.url, WORKFLOW], { timeout: 120_000, env: { ...process.env, HOME: tempDir() } })
    expect(stdout).toMatch(/^states Running Succeeded \['sdk experiment'\] True 2$/m)
    const runs = (await single.runs()) as Record<string, any>[]
    expect(runs.find((r) => r.name === 'sdk run')?._parameters).toMatchObject({ alpha: '0.25', who: 'sdk', count: '2' })
    expect(runs.find((r) => r.name === 'of a version')?._parameters).toMatchObject({ alpha: '0.1' })
  })

  it("drops an unknown field as KFP 1.8's gateway does, logging it, and refuses a field of the wrong type in the gateway's error shape", async () => {
    const r1 = await post(single, '/apis/v1beta1/runs', run({ name: 'with-colour', colour: 'red' }))
    expect(r1.status).toBe(200)
    expect((await single.log()).find((l) => l.body.includes('with-colour'))?.unknown_fields).toEqual(['run.colour'])
    const r2 = await post(single, '/apis/v1beta1/runs', run({}, { parameters: [{ name: 'alpha', value: 0.5 }] }))
    expect(r2.status).toBe(400)
    const body = (await r2.json()) as Record<string, unknown>
    expect(body).toMatchObject({ code: 3, details: [] })
    expect(body.error).toBe(body.message)
    expect(body.message).toMatch(/cannot unmarshal 0\.5 into Go value of type str/)
  })

  it("refuses a workflow_manifest that is YAML text, or not an Argo Workflow, as KFP 1.8's json decoding and validation do", async () => {
    const yamlText = await post(single, '/apis/v1beta1/runs', run({}, { workflow_manifest: readFileSync(WORKFLOW, 'utf8') }))
    expect(yamlText.status).toBe(400)
    expect(await message(yamlText)).toMatch(/Invalid argo workflow format/)
    const template = await post(single, '/apis/v1beta1/runs', run({}, { workflow_manifest: manifest().replace('"Workflow"', '"WorkflowTemplate"') }))
    expect(await message(template)).toMatch(/Unexpected resource type/)
  })

  it('drops a parameter the workflow does not declare, as KFP 1.8 does, and refuses more than 10000 bytes of them', async () => {
    const made = (await (await post(single, '/apis/v1beta1/runs', run({ name: 'dropping' }, { parameters: [{ name: 'beta', value: '1' }] }))).json()) as { run: { id: string } }
    const stored = ((await single.runs()) as Record<string, any>[]).find((r) => r.id === made.run.id)
    expect(Object.keys(stored?._parameters ?? {})).not.toContain('beta')
    const big = await post(single, '/apis/v1beta1/runs', run({}, { parameters: [{ name: 'who', value: 'x'.repeat(10_001) }] }))
    expect(await message(big)).toMatch(/exceed maximum size of 10000/)
  })

  it("reads the filter's v1 field op, decoding it twice, so a once-encoded '%' is refused and v2's 'operation' is unknown", async () => {
    const f = (p: Record<string, unknown>) => encodeURIComponent(JSON.stringify({ predicates: [p] }))
    const pct = f({ op: 'EQUALS', key: 'name', string_value: '100%' })
    expect((await fetch(`${single.url}/apis/v1beta1/experiments?filter=${pct}`)).status).toBe(400)
    expect((await fetch(`${single.url}/apis/v1beta1/experiments?filter=${encodeURIComponent(pct)}`)).status).toBe(200)
    expect((await fetch(`${single.url}/apis/v1beta1/experiments?filter=${encodeURIComponent(f({ operation: 'EQUALS', key: 'name', string_value: 'a' }))}`)).status).toBe(400)
  })

  it('in multi-user mode, wants a NAMESPACE reference on experiments and their listing, and an EXPERIMENT on runs', async () => {
    const auth = { authorization: 'Bearer tok-team-a' }
    expect((await fetch(`${multi.url}/apis/v1beta1/experiments`, { headers: auth })).status).toBe(400)
    expect((await post(multi, '/apis/v1beta1/experiments', { name: 'e' }, auth)).status).toBe(400)
    const owned = { name: 'e', resource_references: [{ key: { type: 'NAMESPACE', id: 'team-a' }, relationship: 'OWNER' }] }
    expect((await post(multi, '/apis/v1beta1/experiments', owned, auth)).status).toBe(200)
    expect((await post(multi, '/apis/v1beta1/experiments', owned, auth)).status).toBe(409)
    expect(await message(await post(multi, '/apis/v1beta1/runs', run(), auth))).toMatch(/Job has no experiment/)
    expect((await fetch(`${multi.url}/apis/v1beta1/experiments?resource_reference_key.type=NAMESPACE&resource_reference_key.id=team-b`, { headers: auth })).status).toBe(403)
    expect((await fetch(`${multi.url}/apis/v1beta1/experiments?resource_reference_key.type=NAMESPACE&resource_reference_key.id=team-a`)).status).toBe(401)
  })

  it('in single-user mode, refuses an experiment that names a namespace, as KFP 1.8 does', async () => {
    const owned = { name: 'ns-given', resource_references: [{ key: { type: 'NAMESPACE', id: 'team-a' }, relationship: 'OWNER' }] }
    const r = await post(single, '/apis/v1beta1/experiments', owned)
    expect(r.status).toBe(400)
    expect(await message(r)).toMatch(/In single-user mode, CreateExperimentRequest shouldn't contain resource references/)
  })

  it('has no v2beta1 API, answering 404 as Go does outside the gateway', async () => {
    const r = await fetch(`${single.url}/apis/v2beta1/healthz`)
    expect(r.status).toBe(404)
    expect(await r.text()).toBe('404 page not found\n')
  })

  it('never changes a finished run, and refuses to terminate one', async () => {
    const made = (await (await post(single, '/apis/v1beta1/runs', run({ name: 'short' }))).json()) as { run: { id: string } }
    let status = ''
    for (let i = 0; i < 20 && status !== 'Succeeded'; i++) status = ((await (await fetch(`${single.url}/apis/v1beta1/runs/${made.run.id}`)).json()) as { run: { status: string } }).run.status
    expect(status).toBe('Succeeded')
    expect((await post(single, `/apis/v1beta1/runs/${made.run.id}/terminate`, undefined)).status).toBe(400)
    const after = (await (await fetch(`${single.url}/apis/v1beta1/runs/${made.run.id}`)).json()) as { run: { status: string } }
    expect(after.run.status).toBe('Succeeded')
  })
})
