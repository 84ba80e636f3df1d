// metaflow-kfp submit / status / terminate against the KFP stand-in (no KFP API server runs here): set-ups, credentials, --wait, faults.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAgent, startAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { startServer } from '../helpers/http-server'
import { FIXTURE_FLOWS, FLOWS, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { startStandIn } from './standin'
import { env, noSecrets as noSecretsIn, oneErrorLine, runIdOf } from './submit-helpers'
import type { StandIn } from './standin'

const PARAMS = join(REPO, 'pipeline-templates', 'params_flow.kfp.yaml')
const HELLO = join(REPO, 'pipeline-templates', 'hello_flow.kfp.yaml')
const TOKEN = 'tok-7f3a9c-team-a-secret'
const OTHER_TOKEN = 'tok-55d1e0-team-b-secret'
const COOKIE_VALUE = 'cookie-9b8a7-secret-value'

function noSecrets(r: AgentRun): void {
  noSecretsIn(r, [TOKEN, OTHER_TOKEN, COOKIE_VALUE])
}

describe('metaflow-kfp submit', () => {
  const tempDir = useTempDir()
  let single: StandIn
  let multi: StandIn
  let tokenFile: string
  let shared: string
  beforeAll(async () => {
    // Not from useTempDir: that removes its folders after each test, and the stand-ins outlive them.
    const dir = (shared = mkdtempSync(join(tmpdir(), 'mfkfp-standin-')))
    tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, 'projected-1-xyz')
    ;[single, multi] = await Promise.all([
      startStandIn(dir, { multi_user: false, page_size_cap: 1 }),
      startStandIn(dir, {
        multi_user: true,
        page_size_cap: 1,
        credentials: [
          { token: TOKEN, namespaces: ['team-a'] },
          { token: OTHER_TOKEN, namespaces: ['team-b'] },
          { token_file: tokenFile, namespaces: ['team-a'] },
          { cookie: `oauth2_proxy_kubeflow=${COOKIE_VALUE}`, namespaces: ['team-a'] },
        ],
      }),
    ])
  }, 150_000)
  afterAll(async () => {
    await Promise.all([single?.stop(), multi?.stop()])
    rmSync(shared, { recursive: true, force: true })
  })

  it("goes from a flow file to the run URL in one command with the seed's profile named by METAFLOW_PROFILE", async () => {
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
        // The one key the seed's profile lacks: the seed's kfp.Client() found KFP in-cluster or through kubeconfig.
        KF_PIPELINES_ENDPOINT: single.url,
      }),
    )
    const r = await runAgent(
      ['submit', join(FLOWS, 'hello_flow.py'), '--experiment-name', 'MF-on-KFP-P2', '--run-name', 'hello_run', '--code-url', 'https://example.com/flows/hello_flow.py'],
      { env: env(home, { METAFLOW_PROFILE: 'sree' }), cwd: home },
    )
    expect(r.code, r.stderr).toBe(0)
    const id = runIdOf(r)
    expect(r.stdout).toContain(`Run URL: https://kubeflow.example.com/pipeline/#/runs/details/${id}\n`)
    const run = (await single.runs()).find((x) => x.run_id === id) as Record<string, any>
    expect(run.display_name).toBe('hello_run')
    // The generated pipeline carries the profile's settings to every task, as generate writes them.
    expect(JSON.stringify(run.pipeline_spec)).toContain('arn:aws:iam::123456789012:role/my-team-role')
    const exp = (await single.log()).find((l) => l.method === 'POST' && l.path === '/apis/v2beta1/experiments' && l.body.includes('MF-on-KFP-P2'))
    expect(exp).toBeDefined()
  })

  it('goes from a flow file to the run URL with exported variables instead of a profile, with no double slash after the prefix', async () => {
    const home = tempDir()
    const r = await runAgent(['submit', join(FLOWS, 'hello_flow.py'), '--code-url=https://example.com/flows/hello_flow.py'], {
      env: env(home, {
        METAFLOW_AWS_ARN: 'arn:aws:iam::170606514770:role/dev-role',
        METAFLOW_AWS_S3_REGION: 'us-west-2',
        METAFLOW_DATASTORE_SYSROOT_S3: 's3://bucket/aip/metaflow',
        KFP_RUN_URL_PREFIX: 'https://kubeflow.example.com/pipeline/#/runs/details/',
        KF_PIPELINES_ENDPOINT: single.url,
      }),
      cwd: home,
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`Run URL: https://kubeflow.example.com/pipeline/#/runs/details/${runIdOf(r)}\n`)
  })

  it("puts every task of a flow file on @project's --branch, or --production, as generate does", async () => {
    const project = join(FIXTURE_FLOWS, 'generate', 'project_flow.py')
    for (const [flag, want] of [[['--branch', 'feature_x'], ['--branch', 'feature_x']], [['--production'], ['--production']]] as const) {
      const r = await runAgent(['submit', project, '--host', single.url, '--code-url', 'https://example.com/flows/project_flow.py', ...flag], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(0)
      const run = (await single.runs()).find((x) => x.run_id === runIdOf(r)) as Record<string, any>
      const executors = Object.values(run.pipeline_spec.deploymentSpec.executors) as { container: { args: string[] } }[]
      expect(executors.length).toBeGreaterThan(0)
      for (const e of executors) {
        const args = e.container.args
        expect(args.slice(args.indexOf(want[0]), args.indexOf(want[0]) + want.length)).toEqual(want)
      }
    }
  })

  it('sends a pipeline file as it is, with --param typed as the pipeline declares it, and links the UI host without a prefix', async () => {
    const r = await runAgent(['submit', PARAMS, '--host', single.url, '--param', 'alpha=0.75', '--param', 'who=kfp', '--run-name', 'typed'], {
      env: env(tempDir(), { KF_PIPELINES_UI_ENDPOINT: 'https://ui.example.com/' }),
    })
    expect(r.code, r.stderr).toBe(0)
    const id = runIdOf(r)
    expect(r.stdout).toContain(`Run URL: https://ui.example.com/#/runs/details/${id}`)
    const run = (await single.runs()).find((x) => x.run_id === id) as Record<string, any>
    expect(run.runtime_config.parameters).toEqual({ alpha: 0.75, who: 'kfp' })
  })

  it('with --pipeline-name, uploads the flow as a new version of a kebab-cased pipeline each time and runs that version', async () => {
    const e = env(tempDir())
    const args = ['submit', PARAMS, '--host', single.url, '--pipeline-name', 'ParamsFlow', '--param', 'alpha=0.3']
    const first = await runAgent(args, { env: e })
    expect(first.code, first.stderr).toBe(0)
    const second = await runAgent(args, { env: e })
    expect(second.code, second.stderr).toBe(0)
    const { pipelines, versions } = await single.pipelines()
    const p = pipelines.filter((x) => x.name === 'params-flow')
    expect(p).toHaveLength(1)
    const mine = versions.filter((v) => v.pipeline_id === p[0]?.pipeline_id)
    expect(mine).toHaveLength(2)
    const run = (await single.runs()).find((x) => x.run_id === runIdOf(second)) as Record<string, any>
    expect(run.pipeline_spec ?? undefined).toBeUndefined()
    expect(run.pipeline_version_reference.pipeline_version_id).toBe(mine.find((v) => v.name !== 'params-flow')?.pipeline_version_id)
    expect(run.runtime_config.parameters).toEqual({ alpha: 0.3 })
  })

  it('refuses a --pipeline-name KFP cannot take, before sending anything', async () => {
    const r = await runAgent(['submit', PARAMS, '--host', single.url, '--pipeline-name', 'bad/name'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/failed to accept --pipeline-name "bad\/name"/)
  })

  it('refuses a --param the pipeline does not declare before sending anything', async () => {
    const before = (await single.log()).length
    const r = await runAgent(['submit', PARAMS, '--host', single.url, '--param', 'beta=1'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/failed to set --param beta: .*declares no such input.*its inputs are: code_url, alpha, who/)
    expect((await single.log()).length).toBe(before)
  })

  it('finds an experiment whose name holds + and % through paged listings, and does not create it again', async () => {
    const name = 'a+b 100%'
    const e = env(tempDir())
    const first = await runAgent(['submit', HELLO, '--host', single.url, '--experiment-name', name], { env: e })
    expect(first.code, first.stderr).toBe(0)
    const second = await runAgent(['submit', HELLO, '--host', single.url, '--experiment-name', name], { env: e })
    expect(second.code, second.stderr).toBe(0)
    const creates = (await single.log()).filter((l) => l.method === 'POST' && l.path === '/apis/v2beta1/experiments' && l.body.includes('a+b 100%'))
    expect(creates).toHaveLength(1)
  })

  it('in multi-user mode, submits into the namespace with a token, and prints no token', async () => {
    const r = await runAgent(['submit', HELLO, '--host', multi.url, '--namespace', 'team-a', '--token', TOKEN], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    noSecrets(r)
    const exp = (await multi.log()).find((l) => l.method === 'POST' && l.path === '/apis/v2beta1/experiments')
    expect(JSON.parse(exp?.body ?? '{}')).toMatchObject({ display_name: 'Default', namespace: 'team-a' })
  })

  it('in multi-user mode, submits with a login cookie', async () => {
    const r = await runAgent(['submit', HELLO, '--host', multi.url, '--cookie', `oauth2_proxy_kubeflow=${COOKIE_VALUE}`], { env: env(tempDir(), { KFP_NAMESPACE: 'team-a' }) })
    expect(r.code, r.stderr).toBe(0)
    noSecrets(r)
  })

  it('re-reads the token file for every request, so a token the kubelet rotated mid-wait is used', async () => {
    writeFileSync(tokenFile, 'projected-1-xyz')
    const p = startAgent(['submit', HELLO, '--host', multi.url, '--namespace', 'team-a', '--wait', '--poll-interval', '1.5'], {
      env: env(tempDir(), { KF_PIPELINES_SA_TOKEN_PATH: tokenFile }),
    })
    await p.waitFor(/Run ID: /, 60_000)
    // As the kubelet does it: the new token appears whole (a rename), never as an empty file.
    writeFileSync(`${tokenFile}.new`, 'projected-2-abc')
    renameSync(`${tokenFile}.new`, tokenFile)
    const r = await p.done
    expect(r.code, r.stderr).toBe(0)
    const used = new Set((await multi.log()).map((l) => l.authorization))
    expect(used).toContain('Bearer projected-1-xyz')
    expect(used).toContain('Bearer projected-2-abc')
  })

  it('exits 64 in multi-user mode without a namespace, saying how to give one', async () => {
    const r = await runAgent(['submit', HELLO, '--host', multi.url, '--token', TOKEN], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/multi-user mode and no namespace was given \(give --namespace NS/)
    noSecrets(r)
  })

  it('exits 77 with one line naming the credential tried when KFP answers 401, without printing it', async () => {
    const r = await runAgent(['submit', HELLO, '--host', multi.url, '--namespace', 'team-a'], { env: env(tempDir(), { KFP_API_TOKEN: 'tok-wrong-but-secret' }) })
    expect(r.code, r.stderr).toBe(77)
    const line = oneErrorLine(r)
    expect(line).toMatch(/refused the bearer token from KFP_API_TOKEN: 401 /)
    expect(line).toMatch(/\(give a token with --token or KFP_API_TOKEN/)
    expect(r.stderr + r.stdout).not.toContain('tok-wrong-but-secret')
  })

  it('exits 77 when KFP answers 403 for a namespace the token may not use', async () => {
    const r = await runAgent(['submit', HELLO, '--host', multi.url, '--namespace', 'team-a', '--token', OTHER_TOKEN], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(77)
    expect(oneErrorLine(r)).toMatch(/refused the bearer token from --token: 403 .*check --namespace/)
    noSecrets(r)
  })

  it('exits 69 with one line when the host cannot be reached', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((res) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port
        srv.close(() => res(p))
      })
    })
    const r = await runAgent(['submit', HELLO, '--host', `http://127.0.0.1:${port}`], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(69)
    expect(oneErrorLine(r)).toMatch(new RegExp(`failed to reach the KFP API: could not reach KFP at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\(check --host`))
  }, 60_000)

  it('exits 77 naming the cookie when a login proxy answers with a redirect to its login page, showing no query string', async () => {
    const proxy = await startServer((_req, res) => {
      res.writeHead(302, { location: 'https://login.example.com/dex/auth?state=abc-secret-state' })
      res.end()
    })
    try {
      const r = await runAgent(['submit', HELLO, '--host', `${proxy.url}/pipeline`, '--cookie', `oauth2_proxy_kubeflow=${COOKIE_VALUE}`], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(77)
      expect(oneErrorLine(r)).toMatch(/refused the cookie oauth2_proxy_kubeflow \(--cookie\): redirected to https:\/\/login\.example\.com\/dex\/auth, a login page/)
      expect(r.stderr).not.toContain('abc-secret-state')
      noSecrets(r)
    } finally {
      await proxy.close()
    }
  })

  it('exits 64 saying so when the host has neither the v2beta1 nor the v1beta1 API (not KFP)', async () => {
    const other = await startServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('404 page not found')
    })
    try {
      const r = await runAgent(['submit', HELLO, '--host', other.url], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(64)
      expect(oneErrorLine(r)).toMatch(/has neither \/apis\/v2beta1 nor \/apis\/v1beta1 \(not the KFP API\) \(give the URL of the KFP API/)
    } finally {
      await other.close()
    }
  })

  it('refuses an option that only a flow file uses when given a pipeline file, which is sent as it is', async () => {
    const before = (await single.log()).length
    for (const [flag, name] of [[['--image', 'my-image:1'], '--image'], [['--branch', 'feature_x'], '--branch'], [['--production'], '--production']] as const) {
      const r = await runAgent(['submit', HELLO, '--host', single.url, ...flag], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(64)
      expect(oneErrorLine(r)).toContain(`failed to accept ${name}: it applies to a flow file`)
    }
    expect((await single.log()).length).toBe(before)
  })

  it('checks the UI host and namespace from the environment or the profile before any request, naming where they came from', async () => {
    const home = tempDir()
    mkdirSync(join(home, '.metaflowconfig'))
    writeFileSync(join(home, '.metaflowconfig', 'config.json'), JSON.stringify({ KFP_NAMESPACE: 'Team_A' }))
    const before = (await single.log()).length
    const ns = await runAgent(['submit', HELLO, '--host', single.url], { env: env(home) })
    expect(ns.code, ns.stderr).toBe(64)
    expect(oneErrorLine(ns)).toMatch(/failed to accept the namespace "Team_A" \(KFP_NAMESPACE in .*config\.json\)/)
    const ui = await runAgent(['submit', HELLO, '--host', single.url], { env: env(tempDir(), { KF_PIPELINES_UI_ENDPOINT: 'ftp://ui.example.com' }) })
    expect(ui.code, ui.stderr).toBe(64)
    expect(oneErrorLine(ui)).toMatch(/failed to accept KF_PIPELINES_UI_ENDPOINT "ftp:\/\/ui\.example\.com": not http/)
    expect((await single.log()).length).toBe(before)
  })

  it('exits 64 when no host is given anywhere', async () => {
    const r = await runAgent(['submit', HELLO], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(64)
    expect(oneErrorLine(r)).toMatch(/no host given \(give --host URL/)
  })

  it('retries the listing through 503s and resets', async () => {
    await single.faults([
      { method: 'GET', path: '/experiments$', status: 503, count: 1 },
      { method: 'GET', path: '/experiments$', reset: true, count: 1 },
    ])
    const r = await runAgent(['submit', HELLO, '--host', single.url, '--experiment-name', 'flaky'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/retrying the experiment listing/)
  })

  it('never creates a run twice when KFP made it but its answer was a 503: it finds the run by its request marker', async () => {
    await single.faults([{ method: 'POST', path: '/runs$', status: 503, count: 1, after: true }])
    const r = await runAgent(['submit', HELLO, '--host', single.url, '--run-name', 'once-only'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    const runs = (await single.runs()).filter((x) => x.display_name === 'once-only')
    expect(runs).toHaveLength(1)
    expect(runIdOf(r)).toBe(runs[0]?.run_id)
    expect(r.stderr).toMatch(/not creating it again/)
  })

  it('creates the run again when a reset came before KFP made it', async () => {
    await single.faults([{ method: 'POST', path: '/runs$', reset: true, count: 1 }])
    const r = await runAgent(['submit', HELLO, '--host', single.url, '--run-name', 'after-reset'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    expect((await single.runs()).filter((x) => x.display_name === 'after-reset')).toHaveLength(1)
  })

  it('sends a second, platform document as {pipeline_spec, platform_spec}, which KFP accepts', async () => {
    const file = join(tempDir(), 'with-platform.yaml')
    const { readFileSync } = await import('node:fs')
    writeFileSync(file, `${readFileSync(HELLO, 'utf8')}\n---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors: {}\n`)
    const r = await runAgent(['submit', file, '--host', single.url], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    const run = (await single.runs()).find((x) => x.run_id === runIdOf(r)) as Record<string, any>
    expect(Object.keys(run.pipeline_spec).sort()).toEqual(['pipeline_spec', 'platform_spec'])
  })

  it('exits 69 after a bounded number of tries when every run creation answers 503, having looked for the run before each retry', async () => {
    await single.faults([{ method: 'POST', path: '/runs$', status: 503, count: 5 }])
    const before = (await single.log()).length
    const r = await runAgent(['submit', HELLO, '--host', single.url, '--run-name', 'never-made'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(69)
    expect(oneErrorLine(r)).toMatch(/failed to create the run "never-made": 503 stand-in fault/)
    const calls = (await single.log()).slice(before)
    expect(calls.filter((l) => l.method === 'POST' && l.path === '/apis/v2beta1/runs')).toHaveLength(5)
    expect(calls.filter((l) => l.method === 'GET' && l.path === '/apis/v2beta1/runs')).toHaveLength(4)
    expect((await single.runs()).filter((x) => x.display_name === 'never-made')).toHaveLength(0)
  }, 60_000)

  it("exits 65 with KFP's own message in one line when it refuses the pipeline spec", async () => {
    const bad = join(tempDir(), 'bad.yaml')
    const { readFileSync } = await import('node:fs')
    writeFileSync(bad, readFileSync(HELLO, 'utf8').replace(/^root:\n/m, 'root:\n  colour: red\n'))
    const r = await runAgent(['submit', bad, '--host', single.url], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(65)
    expect(oneErrorLine(r)).toMatch(/failed to create the run .*KFP refused it: 400 Invalid input error: Failed to parse the pipeline spec: .*colour/)
  })

  it('--wait follows the run to SUCCEEDED, one line per task state change with --progress, and exits 0', async () => {
    await single.configure({ outcome: 'SUCCEEDED' })
    const r = await runAgent(['submit', HELLO, '--host', single.url, '--wait', '--poll-interval', '0.1', '--progress'], { env: env(tempDir()) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/task start RUNNING\n[\s\S]*task start SUCCEEDED/)
    expect(r.stderr).toMatch(/task end SUCCEEDED/)
    expect(r.stdout).toMatch(new RegExp(`^Run ${runIdOf(r)} SUCCEEDED$`, 'm'))
  })

  it('--wait reports FAILED and exits 1, quiet when not a terminal except the final line', async () => {
    await single.configure({ outcome: 'FAILED' })
    try {
      const r = await runAgent(['submit', HELLO, '--host', single.url, '--wait', '--poll-interval', '0.1'], { env: env(tempDir()) })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr).not.toMatch(/task /)
      expect(r.stdout).toMatch(new RegExp(`^Run ${runIdOf(r)} FAILED: task end failed$`, 'm'))
    } finally {
      await single.configure({ outcome: 'SUCCEEDED' })
    }
  })

  it('stops watching on Ctrl-C and says the run goes on', async () => {
    const p = startAgent(['submit', HELLO, '--host', single.url, '--wait', '--poll-interval', '30'], { env: env(tempDir()) })
    await p.waitFor(/Run URL: /, 60_000)
    await new Promise((r) => setTimeout(r, 300))
    p.child.kill('SIGINT')
    const r = await p.done
    expect(r.code, r.stderr).toBe(130)
    expect(r.stderr).toMatch(/stopped watching run \S+; the run goes on in KFP/)
  })

  it('on Ctrl-C during a slow request, stops at once with 130 and says no further request was sent', async () => {
    await single.faults([{ method: 'GET', path: '/healthz$', delay: 20, count: 1 }])
    const before = (await single.log()).length
    const p = startAgent(['submit', HELLO, '--host', single.url], { env: env(tempDir()) })
    for (let i = 0; i < 200 && !(await single.log()).slice(before).some((l) => l.path === '/apis/v2beta1/healthz'); i++) await new Promise((r) => setTimeout(r, 100))
    const t0 = Date.now()
    p.child.kill('SIGINT')
    const r = await p.done
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(r.code, r.stderr).toBe(130)
    expect(oneErrorLine(r)).toMatch(/failed to finish submit: stopped by SIGINT; no further request was sent/)
  }, 60_000)

  it('status prints the run state and its tasks; terminate stops a run', async () => {
    const e = env(tempDir())
    const made = await runAgent(['submit', HELLO, '--host', single.url], { env: e })
    const id = runIdOf(made)
    const st = await runAgent(['status', id, '--host', single.url], { env: e })
    expect(st.code, st.stderr).toBe(0)
    expect(st.stdout).toMatch(new RegExp(`^Run ${id}: RUNNING$`, 'm'))
    expect(st.stdout).toMatch(/^ {2}task start: RUNNING$/m)
    const t = await runAgent(['terminate', id, '--host', single.url], { env: e })
    expect(t.code, t.stderr).toBe(0)
    const after = await runAgent(['status', id, '--host', single.url], { env: e })
    expect(after.stdout).toMatch(new RegExp(`^Run ${id}: CANCELED$`, 'm'))
    const missing = await runAgent(['status', 'no-such-run', '--host', single.url], { env: e })
    expect(missing.code).toBe(64)
    expect(oneErrorLine(missing)).toMatch(/404 .*not found/)
  })
})
