// `metaflow-kfp submit | status | terminate`: send a flow or a pipeline to KFP (v2beta1, or v1beta1 on KFP 1.x), print its run URL, follow it, stop it.
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { constants as osConstants } from 'node:os'
import { AGENT_VERSION } from '../build-info.js'
import { AgentError, Interrupted } from '../errors.js'
import { abortableSleep, RetryableError } from '../net/retry.js'
import { resolveKfpKeys, resolveSettings } from '../settings.js'
import type { KfpKey, SettingFlags } from '../settings.js'
import type { Io } from '../step/run-step.js'
import type { GenerateConfig } from '../pipelines/generate.js'
import { createExperiment, createRun, findExperiments, findRuns, getRun, healthz, terminateRun, TERMINAL_STATES } from './api.js'
import { findVersions, pipelineByName, uploadPipeline, uploadVersion } from './api.js'
import type { Experiment, Pipeline, PipelineVersion, Run, RunRequest } from './api.js'
import { createExperimentV1, createRunV1, findExperimentsV1, findRunsV1, findVersionsV1, getRunV1, healthzV1 } from './api-v1.js'
import { pipelineByNameV1, terminateRunV1, uploadPipelineV1, uploadVersionV1 } from './api-v1.js'
import { DEFAULT_TOKEN_PATH, resolveCredential } from './auth.js'
import type { Credential } from './auth.js'
import { describeHttpError, isTransient, KfpHttp, KfpHttpError } from './http.js'
import { parsePipelineFile, typedParameters } from './pipeline-file.js'

export interface KfpConfig {
  command: 'submit' | 'status' | 'terminate'
  /** submit: the pipeline or flow file; status and terminate: the run id */
  target: string
  host?: string | undefined
  uiHost?: string | undefined
  token?: string | undefined
  cookie?: string | undefined
  namespace?: string | undefined
  experimentName?: string | undefined
  runName?: string | undefined
  /** upload the pipeline as a new version of this named pipeline and run that version, instead of a one-off run */
  pipelineName?: string | undefined
  /** NAME=VALUE, typed by the pipeline's declared inputs */
  params: Record<string, string>
  wait: boolean
  pollMs: number
  /** print every state change even when stderr is not a terminal */
  progress: boolean
  /** for a FLOW.py: generate's options */
  generate: Omit<GenerateConfig, 'command' | 'flowFile' | 'format' | 'output' | 'params'>
  flags: SettingFlags
}

/** KFP's API service as the kfp SDK finds it inside the cluster. */
export const IN_CLUSTER_HOST = 'http://ml-pipeline.kubeflow.svc.cluster.local:8888'

/** Exit codes of `submit --wait` for a run that ended other than SUCCEEDED (the agent's own codes are in errors.ts). */
export const RUN_EXIT = { FAILED: 1, CANCELED: 2, SKIPPED: 2 } as const

/** The calls of one KFP API version; v1beta1's answers come in v2beta1's shapes (see api-v1.ts). */
interface Api {
  version: 'v2beta1' | 'v1beta1'
  findExperiments(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment[]>
  createExperiment(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment>
  createRun(http: KfpHttp, run: RunRequest): Promise<Run>
  findRuns(http: KfpHttp, name: string, experimentId: string | undefined, namespace: string | undefined): Promise<Run[]>
  getRun(http: KfpHttp, id: string): Promise<Run>
  terminateRun(http: KfpHttp, id: string): Promise<void>
  pipelineByName(http: KfpHttp, name: string, namespace: string | undefined): Promise<Pipeline | undefined>
  uploadPipeline(http: KfpHttp, name: string, namespace: string | undefined, text: string): Promise<Pipeline>
  uploadVersion(http: KfpHttp, pipelineId: string, name: string, text: string): Promise<PipelineVersion>
  findVersions(http: KfpHttp, pipelineId: string, name: string): Promise<PipelineVersion[]>
}

const V2: Api = { version: 'v2beta1', findExperiments, createExperiment, createRun, findRuns, getRun, terminateRun, pipelineByName, uploadPipeline, uploadVersion, findVersions }

/** KFP 1.x: pipelines are shared there (no namespace on upload or lookup). */
const V1: Api = {
  version: 'v1beta1',
  findExperiments: findExperimentsV1,
  createExperiment: createExperimentV1,
  createRun: createRunV1,
  findRuns: findRunsV1,
  getRun: getRunV1,
  terminateRun: terminateRunV1,
  pipelineByName: (http, name) => pipelineByNameV1(http, name),
  uploadPipeline: (http, name, _ns, text) => uploadPipelineV1(http, name, text),
  uploadVersion: uploadVersionV1,
  findVersions: findVersionsV1,
}

interface Session {
  http: KfpHttp
  /** set once the cluster's API version is known (probe) */
  api: Api
  credential: Credential
  host: string
  runUrl: (id: string) => string
  namespace: string | undefined
  experimentName: string
}

export async function runKfp(cfg: KfpConfig, io: Io): Promise<number> {
  // A listener tells main() that a stop signal should abort these requests (and reach the line
  // below) rather than kill the process silently; fetch's own listener is not one main() sees.
  const listening = () => undefined
  io.signal?.addEventListener('abort', listening)
  try {
    return await runCommand(cfg, io)
  } catch (err) {
    // main() words a stop as a task's; here nothing was being cleaned up, only requests were stopped.
    const reason = io.signal?.reason
    if (io.signal?.aborted && reason instanceof Interrupted) {
      io.log(`error: failed to finish ${cfg.command}: ${reason.message}; no further request was sent (a run KFP already made goes on)`)
      return 128 + osConstants.signals[reason.signal]
    }
    throw err
  } finally {
    io.signal?.removeEventListener('abort', listening)
  }
}

async function runCommand(cfg: KfpConfig, io: Io): Promise<number> {
  checkInputs(cfg, io)
  const s = await session(cfg, io)
  if (cfg.command !== 'submit') await probe(s, 'any')
  if (cfg.command === 'status') {
    const run = await call(s, 'get the run status', () => s.api.getRun(s.http, cfg.target))
    await io.stdout(Buffer.from(`Run ${run.run_id}: ${run.state ?? 'UNKNOWN'}${run.error?.message ? ` (${oneLine(s, run.error.message)})` : ''}`))
    for (const t of run.run_details?.task_details ?? []) await io.stdout(Buffer.from(`  task ${t.display_name ?? t.task_id}: ${t.state ?? 'UNKNOWN'}`))
    await io.stdout(Buffer.from(`Run URL: ${s.runUrl(run.run_id)}`))
    return 0
  }
  if (cfg.command === 'terminate') {
    await call(s, `terminate run ${cfg.target}`, () => s.api.terminateRun(s.http, cfg.target))
    io.log(`asked KFP to terminate run ${cfg.target}; it ends once its running tasks stop: ${s.runUrl(cfg.target)}`)
    return 0
  }
  return submit(cfg, s, io)
}

async function session(cfg: KfpConfig, io: Io): Promise<Session> {
  const keys = resolveKfpKeys(
    { KF_PIPELINES_ENDPOINT: cfg.host, KF_PIPELINES_UI_ENDPOINT: cfg.uiHost, KFP_API_TOKEN: cfg.token, KFP_NAMESPACE: cfg.namespace, KF_PIPELINES_DEFAULT_EXPERIMENT_NAME: cfg.experimentName },
    io.env,
  )
  const v = (k: KfpKey) => keys.values[k]?.value
  const from = (k: KfpKey, flag: string) => (keys.values[k]?.source === 'flag' ? flag : keys.values[k]?.source === 'env' ? k : `${k} in ${keys.profilePath}`)
  // In a pod with no host given, the kfp SDK talks to the in-cluster service; so does submit, so the seed's examples work as written there.
  const rawHost = v('KF_PIPELINES_ENDPOINT') ?? (io.env.KUBERNETES_SERVICE_HOST ? IN_CLUSTER_HOST : undefined)
  if (!rawHost) throw new AgentError('usage', 'failed to find the KFP API: no host given', { hint: 'give --host URL (e.g. https://kubeflow.example.com/pipeline, or http://localhost:8888 through kubectl port-forward) or set KF_PIPELINES_ENDPOINT' })
  const host = withScheme(rawHost, keys.values.KF_PIPELINES_ENDPOINT ? from('KF_PIPELINES_ENDPOINT', '--host') : '--host')
  const ui = v('KF_PIPELINES_UI_ENDPOINT')
  // Checked now, wherever they came from: a bad value found after the run was made would hide its URL.
  const uiBase = ui === undefined ? host : withScheme(ui, from('KF_PIPELINES_UI_ENDPOINT', '--ui-host'))
  const namespace = v('KFP_NAMESPACE')
  if (namespace !== undefined) checkNamespace(namespace, from('KFP_NAMESPACE', '--namespace'))
  const prefix = v('KFP_RUN_URL_PREFIX')
  const tokenPath = v('KF_PIPELINES_SA_TOKEN_PATH')
  const credential = await resolveCredential({
    token: v('KFP_API_TOKEN') ? { value: v('KFP_API_TOKEN') as string, from: from('KFP_API_TOKEN', '--token') } : undefined,
    tokenFile: { path: tokenPath ?? DEFAULT_TOKEN_PATH, named: tokenPath !== undefined, from: tokenPath ? from('KF_PIPELINES_SA_TOKEN_PATH', '') : 'the in-cluster default' },
    cookie: cfg.cookie,
  })
  const http = new KfpHttp({ host, credential, signal: io.signal, onRetry: (line) => io.log(line) })
  const runUrl = (id: string) => (prefix ? `${prefix.replace(/\/+$/, '')}/${id}` : `${uiBase}/#/runs/details/${id}`)
  return { http, api: V2, credential, host, runUrl, namespace, experimentName: v('KF_PIPELINES_DEFAULT_EXPERIMENT_NAME') ?? 'Default' }
}

async function submit(cfg: KfpConfig, s: Session, io: Io): Promise<number> {
  const pipelineName = cfg.pipelineName === undefined ? undefined : kfpPipelineName(cfg.pipelineName)
  const flow = cfg.target.endsWith('.py')
  // A file is read (and its --param checked) before any request; a flow is generated in the form the cluster runs.
  let text = flow ? '' : await readPipeline(cfg, io)
  let pipeline = flow ? undefined : parsePipelineFile(text, cfg.target)
  let parameters = pipeline ? typedParameters(cfg.params, pipeline.inputs, pipeline.name) : {}
  const health = await probe(s, pipeline === undefined ? 'any' : pipeline.format === 'argo' ? 'v1' : 'v2')
  if (!pipeline) {
    text = await generatePipeline(cfg, io, s.api === V1 ? 'argo' : 'kfp')
    pipeline = parsePipelineFile(text, cfg.target)
    parameters = typedParameters(cfg.params, pipeline.inputs, pipeline.name)
  }
  const namespace = health.multi_user ? s.namespace : undefined
  if (health.multi_user && !namespace) {
    throw new AgentError('usage', `failed to submit to ${s.host}: KFP runs in multi-user mode and no namespace was given`, { hint: 'give --namespace NS (your Kubeflow profile namespace) or set KFP_NAMESPACE' })
  }
  const experimentName = s.experimentName
  const experiment = await call(s, `find or create the experiment ${JSON.stringify(experimentName)}`, () => experimentId(s, experimentName, namespace, io.signal))
  const runName = cfg.runName ?? `${pipeline.name} ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`
  // The marker makes creation safe to try again: a run the server made before its answer was lost is found, not made twice.
  const description = `submitted by metaflow-kfp ${AGENT_VERSION}, request ${randomUUID()}`
  const request: RunRequest = { display_name: runName, description, experiment_id: experiment, pipeline_spec: pipeline.pipelineSpec, runtime_config: { parameters } }
  if (pipelineName !== undefined) {
    const version = await call(s, `upload the pipeline ${pipelineName}`, () => uploadAsVersion(s, pipelineName, namespace, text, io), true)
    delete request.pipeline_spec
    request.pipeline_version_reference = { pipeline_id: version.pipeline_id, pipeline_version_id: version.pipeline_version_id }
    io.log(`uploaded the pipeline ${pipelineName}, version ${version.name ?? version.pipeline_version_id}`)
  }
  const run = await call(s, `create the run ${JSON.stringify(runName)}`, () => createRunOnce(s, request, namespace, io), true)
  if (s.api === V1) io.log(`sent through KFP's ${s.api.version} API as an Argo Workflow`)
  await io.stdout(Buffer.from(`Run ID: ${run.run_id}`))
  await io.stdout(Buffer.from(`Run URL: ${s.runUrl(run.run_id)}`))
  if (!cfg.wait) return 0
  return watch(s, run.run_id, cfg, io)
}

/**
 * KFP's pipeline names must match ^[a-z0-9][a-z0-9-]{0,127}$: a CamelCase or snake_case flow name
 * (HelloFlow, my_flow) becomes hello-flow, my-flow; anything else is refused.
 */
export function kfpPipelineName(given: string): string {
  const name = given
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .replace(/[_\s.]+/g, '-')
    .toLowerCase()
  if (!/^[a-z0-9][a-z0-9-]{0,127}$/.test(name)) {
    throw new AgentError('usage', `failed to accept --pipeline-name ${JSON.stringify(given)}: KFP takes lowercase letters, digits and dashes, starting with a letter or digit, at most 128`, { hint: 'e.g. --pipeline-name hello-flow' })
  }
  return name
}

/**
 * The file as a new version of the named pipeline (the pipeline made first when missing, its first
 * version then being this file). Like run creation, an upload whose answer was lost is looked up by
 * its name before it is sent again.
 */
async function uploadAsVersion(s: Session, name: string, namespace: string | undefined, text: string, io: Io): Promise<PipelineVersion> {
  const api = s.api
  let pipeline = await api.pipelineByName(s.http, name, namespace)
  if (!pipeline) {
    try {
      pipeline = await api.uploadPipeline(s.http, name, namespace, text)
      const first = (await api.findVersions(s.http, pipeline.pipeline_id, name))[0]
      if (first) return first
    } catch (err) {
      const again = (err instanceof KfpHttpError && err.status === 409) || isTransient(err)
      if (!again) throw err
      pipeline = await api.pipelineByName(s.http, name, namespace)
      if (!pipeline) throw err
    }
  }
  const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, '').toLowerCase()
  const versionName = `${name.slice(0, 100)}-${stamp}-${randomUUID().slice(0, 4)}`
  for (let attempt = 1; ; attempt++) {
    try {
      return await api.uploadVersion(s.http, pipeline.pipeline_id, versionName, text)
    } catch (err) {
      if (!isTransient(err) || attempt >= 4) throw err
      const made = (await api.findVersions(s.http, pipeline.pipeline_id, versionName))[0]
      if (made) return made
      io.log(`retrying the upload of version ${versionName}: KFP answered ${oneLine(s, describeHttpError(err))}`)
      await abortableSleep(Math.round(500 * 2 ** attempt * Math.random()), io.signal)
    }
  }
}

/** What can be refused before anything is sent, so a bad value is exit 64 and not a failed request. */
function checkInputs(cfg: KfpConfig, io: Io): void {
  const usage = (message: string, hint: string) => new AgentError('usage', message, { hint })
  if (cfg.command !== 'submit' && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(cfg.target)) {
    throw usage(`failed to accept the run id ${JSON.stringify(cfg.target)}: expected letters, digits, '.', '_' and '-', as KFP's run ids (UUIDs)`, 'give the id submit printed')
  }
  if (cfg.namespace !== undefined) checkNamespace(cfg.namespace, '--namespace')
  if (cfg.uiHost !== undefined) withScheme(cfg.uiHost, '--ui-host')
  if (cfg.host !== undefined) withScheme(cfg.host, '--host')
  if (cfg.command !== 'submit') return
  resolveSettings(cfg.flags, io.env)
  if (!cfg.target.endsWith('.py')) {
    const g = cfg.generate
    const given = [g.codeUrl && '--code-url', g.packageFlowFile && '--flow-file', g.flowName && '--flow-name', g.image && '--image', g.name && '--name', g.branch && '--branch', g.production && '--production'].find(Boolean)
    if (given) throw usage(`failed to accept ${given}: it applies to a flow file, and ${cfg.target} is sent as it is`, 'give the flow .py file to generate from, or leave the flag out')
  }
}

/** A Kubernetes namespace is a DNS label. */
function checkNamespace(ns: string, from: string): void {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) {
    throw new AgentError('usage', `failed to accept the namespace ${JSON.stringify(ns)} (${from}): not a Kubernetes namespace name`, { hint: 'give your Kubeflow profile namespace, e.g. team-a' })
  }
}

/**
 * Which API the cluster speaks, and whether it is multi-user. KFP 1.x has no v2beta1 at all (a 404 on its
 * healthz), so it is spoken to through v1beta1. An Argo Workflow goes only through v1beta1, on KFP 1.x
 * and on a KFP 2.x that still serves it (which runs the workflow as a v1 pipeline, not converted to
 * IR; one set to block v1 pipelines says so when the run is created); KFP v2 IR goes only through v2beta1.
 */
async function probe(s: Session, want: 'v1' | 'v2' | 'any'): Promise<{ multi_user: boolean }> {
  // A 404 from healthz is no API of that version there; anything else is a failure to report as usual.
  const health = (fn: (http: KfpHttp) => Promise<{ multi_user: boolean }>) =>
    call(s, 'reach the KFP API', () => fn(s.http).catch((err) => Promise.reject(err instanceof KfpHttpError && err.status === 404 ? new NoSuchApi() : err)))
  const missing = (err: unknown) => {
    if (!(err instanceof NoSuchApi)) throw err
  }
  if (want !== 'v1') {
    try {
      const h = await health(healthz)
      s.api = V2
      return h
    } catch (err) {
      missing(err)
    }
  }
  let h: { multi_user: boolean } | undefined
  try {
    h = await health(healthzV1)
    s.api = V1
  } catch (err) {
    missing(err)
  }
  if (!h && want === 'v1') {
    throw new AgentError('usage', `failed to submit the Argo Workflow: ${s.host} has no /apis/v1beta1, the only KFP API that runs one (a KFP 2.x without its v1 API, or not the KFP API)`, {
      hint: 'send the KFP v2 form to a KFP 2.x cluster: the flow .py itself, or a file from metaflow-kfp generate --format kfp',
    })
  }
  if (!h) {
    throw new AgentError('usage', `failed to reach the KFP API: ${s.host} has neither /apis/v2beta1 nor /apis/v1beta1 (not the KFP API)`, {
      hint: 'give the URL of the KFP API, e.g. https://<kubeflow host>/pipeline, or http://localhost:8888 through kubectl port-forward svc/ml-pipeline 8888',
    })
  }
  if (want === 'v2') {
    throw new AgentError('usage', `failed to submit a KFP v2 pipeline: ${s.host} is KFP 1.x (it has /apis/v1beta1 and no /apis/v2beta1), which runs only Argo Workflows`, {
      hint: 'submit the flow .py (it is generated as an Argo Workflow for KFP 1.x), or a file from metaflow-kfp generate --format argo',
    })
  }
  return h
}

/** healthz answered 404: no API of that version at the host. */
class NoSuchApi extends Error {}

async function readPipeline(cfg: KfpConfig, io: Io): Promise<string> {
  try {
    return await readFile(resolve(io.cwd, cfg.target), 'utf8')
  } catch (err) {
    throw new AgentError('usage', `failed to read the pipeline ${cfg.target}`, { cause: err, hint: 'give a KFP v2 pipeline YAML, an Argo Workflow YAML for KFP 1.x, or a flow .py file' })
  }
}

/** The flow as the cluster runs it (KFP v2 IR, or an Argo Workflow for KFP 1.x), with the same options as `metaflow-kfp generate`. */
async function generatePipeline(cfg: KfpConfig, io: Io, format: 'kfp' | 'argo'): Promise<string> {
  const { runGenerate } = await import('../pipelines/generate.js')
  const dir = await mkdtemp(join(tmpdir(), 'metaflow-kfp-submit-'))
  try {
    const out = join(dir, 'pipeline.yaml')
    await runGenerate({ ...cfg.generate, command: 'generate', flowFile: cfg.target, format, output: out, params: {}, flags: cfg.flags }, { ...io, log: () => undefined })
    io.log(`generated the ${format === 'kfp' ? 'KFP v2 pipeline' : 'Argo Workflow (for KFP 1.x)'} for ${cfg.target}`)
    return await readFile(out, 'utf8')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function experimentId(s: Session, name: string, namespace: string | undefined, signal: AbortSignal | undefined): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const found = await s.api.findExperiments(s.http, name, namespace)
    if (found[0]) return found[0].experiment_id
    try {
      return (await s.api.createExperiment(s.http, name, namespace)).experiment_id
    } catch (err) {
      // 409: made meanwhile (by us, if an earlier answer was lost); 5xx or a reset: look again before trying again.
      const again = (err instanceof KfpHttpError && err.status === 409) || isTransient(err)
      if (!again || attempt >= 4) throw err
      await abortableSleep(Math.round(500 * 2 ** attempt * Math.random()), signal)
    }
  }
}

async function createRunOnce(s: Session, request: RunRequest, namespace: string | undefined, io: Io): Promise<Run> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await s.api.createRun(s.http, request)
    } catch (err) {
      if (!isTransient(err) || attempt >= 5) throw err
      const made = (await s.api.findRuns(s.http, request.display_name, request.experiment_id, namespace)).find((r) => r.description === request.description)
      if (made) {
        io.log(`the run was created although KFP answered ${oneLine(s, describeHttpError(err))}; not creating it again`)
        return made
      }
      const delay = Math.round(Math.min(8000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2))
      io.log(`retrying the run creation in ${(delay / 1000).toFixed(1)} s: KFP answered ${oneLine(s, describeHttpError(err))} and holds no run of this request`)
      await abortableSleep(delay, io.signal)
    }
  }
}

async function watch(s: Session, id: string, cfg: KfpConfig, io: Io): Promise<number> {
  const loud = cfg.progress || Boolean(process.stderr.isTTY)
  const seen = new Map<string, string>()
  let state = ''
  try {
    for (;;) {
      const run = await call(s, 'follow the run', () => s.api.getRun(s.http, id))
      for (const t of run.run_details?.task_details ?? []) {
        const key = t.task_id ?? t.display_name ?? ''
        if (t.state && seen.get(key) !== t.state) {
          seen.set(key, t.state)
          if (loud) io.log(`${clock()} task ${t.display_name ?? key} ${t.state}`)
        }
      }
      if (run.state && run.state !== state) {
        state = run.state
        if (loud && !TERMINAL_STATES.has(state)) io.log(`${clock()} run ${state}`)
      }
      if (TERMINAL_STATES.has(state)) {
        const why = run.error?.message ? `: ${oneLine(s, run.error.message)}` : ''
        await io.stdout(Buffer.from(`Run ${id} ${state}${why}`))
        return state === 'SUCCEEDED' ? 0 : RUN_EXIT[state as keyof typeof RUN_EXIT]
      }
      await abortableSleep(cfg.pollMs, io.signal)
    }
  } catch (err) {
    const reason = io.signal?.reason
    if (io.signal?.aborted && reason instanceof Interrupted) {
      io.log(`stopped watching run ${id}; the run goes on in KFP: ${s.runUrl(id)} (metaflow-kfp status ${id}, or metaflow-kfp terminate ${id})`)
      return 128 + osConstants.signals[reason.signal]
    }
    throw err
  }
}

/** Runs one API step and turns its failure into one line naming what was tried and what to do. */
async function call<T>(s: Session, what: string, fn: () => Promise<T>, creating = false): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof AgentError) throw err
    if (err instanceof KfpHttpError) {
      // KFP 2.16.1+ set with BLOCK_V1_PIPELINES refuses an Argo Workflow (the status code differs by call).
      if (/V1 pipeline specs are not allowed/i.test(err.message)) {
        throw new AgentError('codeRejected', `failed to ${what}: KFP refused it: ${err.message}`, { hint: 'this cluster runs only KFP v2 pipelines: submit the flow .py, or a file from metaflow-kfp generate --format kfp' })
      }
      if (err.status === 401 || err.status === 403) {
        throw new AgentError('credentials', `failed to ${what}: KFP at ${s.host} refused ${s.credential.describe}: ${err.message}`, {
          hint: err.status === 403 ? 'the credential is known but not allowed in this namespace: check --namespace, or use a token of that profile (e.g. default-editor)' : s.credential.advice,
        })
      }
      if (err.status === 404) throw new AgentError('usage', `failed to ${what}: ${err.message}`, { hint: 'check the run id or experiment, and that --host is the KFP API' })
      if (err.status >= 400 && err.status < 500 && err.status !== 429) {
        throw new AgentError(creating ? 'codeRejected' : 'usage', `failed to ${what}: KFP refused it: ${err.message}`, { hint: creating ? 'fix the pipeline or the parameters KFP names, then submit again' : 'fix what KFP names, then try again' })
      }
      throw new AgentError('codeUnavailable', `failed to ${what}: ${err.message}`, { hint: 'KFP kept failing; try again later, or check the API server' })
    }
    if (err instanceof RetryableError) {
      throw new AgentError('codeUnavailable', `failed to ${what}: could not reach KFP at ${s.host}: ${oneLine(s, describeHttpError(err))}`, { hint: 'check --host or KF_PIPELINES_ENDPOINT, the network, or your kubectl port-forward' })
    }
    throw err
  }
}

function oneLine(s: Session, text: string): string {
  return s.http.clean(text)
}

function withScheme(url: string, flag: string): string {
  const u = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`
  let parsed: URL
  try {
    parsed = new URL(u)
  } catch {
    throw new AgentError('usage', `failed to accept ${flag} ${JSON.stringify(url)}: not a URL`, { hint: 'give e.g. https://kubeflow.example.com/pipeline' })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new AgentError('usage', `failed to accept ${flag} ${JSON.stringify(url)}: not http:// or https://`, { hint: 'give e.g. https://kubeflow.example.com/pipeline' })
  if (parsed.username || parsed.password) throw new AgentError('usage', `failed to accept ${flag}: it holds a user name or password`, { hint: 'give credentials with --token or --cookie instead' })
  return u.replace(/\/+$/, '')
}

function clock(): string {
  return new Date().toISOString().slice(11, 19)
}
