// KFP 1.x's v1beta1 calls, answering in the v2beta1 shapes of api.ts so submit, status and terminate follow one recipe for both.
import { filterParam, KfpHttp, KfpHttpError } from './http.js'
import type { Experiment, Pipeline, PipelineVersion, Run, RunRequest, TaskDetail } from './api.js'

interface ResourceReference {
  key: { type: string; id: string }
  name?: string
  relationship?: string
}

interface V1Run {
  id: string
  name?: string
  description?: string
  status?: string
  error?: string
  resource_references?: ResourceReference[]
}

interface V1RunDetail {
  run?: V1Run
  pipeline_runtime?: { workflow_manifest?: string }
}

/**
 * v1's run.status is the Argo Workflow's phase (plus KFP's own Terminating); submit speaks v2's states,
 * so it is read into them here. Error is Argo's "the workflow itself broke", a failure all the same.
 */
const V1_STATES: Record<string, string> = {
  '': 'PENDING',
  Pending: 'PENDING',
  Running: 'RUNNING',
  Succeeded: 'SUCCEEDED',
  Skipped: 'SKIPPED',
  Omitted: 'SKIPPED',
  Failed: 'FAILED',
  Error: 'FAILED',
  Terminating: 'CANCELING',
  Terminated: 'CANCELED',
}

export function v1State(status: string | undefined): string {
  return V1_STATES[status ?? ''] ?? (status ?? '').toUpperCase()
}

function equalsFilter(key: string, value: string): string {
  // v1's predicate names its operation `op` (v2 renamed it `operation`); KFP decodes the filter twice, see filterParam.
  return filterParam(JSON.stringify({ predicates: [{ op: 'EQUALS', key, string_value: value }] }))
}

const ref = (type: string, id: string, relationship: string): ResourceReference => ({ key: { type, id }, relationship })

export async function healthzV1(http: KfpHttp): Promise<{ multi_user: boolean }> {
  const r = await http.idempotent<{ multi_user?: boolean }>('GET', '/apis/v1beta1/healthz', {}, undefined, 'the health check')
  return { multi_user: r.multi_user === true }
}

/** Pages through a v1 listing, keeping the items the filter meant (a server that ignored the filter picks no wrong one). */
async function pages<T>(http: KfpHttp, path: string, key: string, query: Record<string, string | undefined>, what: string, keep: (x: T) => boolean): Promise<T[]> {
  const found: T[] = []
  let token: string | undefined
  for (let n = 0; n < 1000; n++) {
    const r = await http.idempotent<Record<string, unknown>>('GET', path, { ...query, page_size: '100', page_token: token }, undefined, what)
    found.push(...((r[key] as T[] | undefined) ?? []).filter(keep))
    token = (r.next_page_token as string | undefined) || undefined
    if (!token) break
  }
  return found
}

export async function findExperimentsV1(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment[]> {
  const inNs = namespace ? { 'resource_reference_key.type': 'NAMESPACE', 'resource_reference_key.id': namespace } : {}
  const found = await pages<{ id: string; name: string }>(http, '/apis/v1beta1/experiments', 'experiments', { ...inNs, filter: equalsFilter('name', name) }, 'the experiment listing', (e) => e.name === name)
  return found.map((e) => ({ experiment_id: e.id, display_name: e.name }))
}

export async function createExperimentV1(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment> {
  const body: Record<string, unknown> = { name, description: '' }
  if (namespace) body.resource_references = [ref('NAMESPACE', namespace, 'OWNER')]
  const e = await http.once<{ id: string; name: string }>('POST', '/apis/v1beta1/experiments', {}, body)
  return { experiment_id: e.id, display_name: e.name }
}

/**
 * A run from the request's inline Argo Workflow (pipeline_spec) or uploaded version: the workflow
 * goes as a JSON string (KFP 1.x json-decodes workflow_manifest), parameters as name/value strings,
 * the experiment as the run's OWNER reference.
 */
export async function createRunV1(http: KfpHttp, run: RunRequest): Promise<Run> {
  const parameters = Object.entries(run.runtime_config.parameters).map(([name, value]) => ({ name, value: String(value) }))
  const refs: ResourceReference[] = []
  if (run.experiment_id) refs.push(ref('EXPERIMENT', run.experiment_id, 'OWNER'))
  const spec: Record<string, unknown> = { parameters }
  if (run.pipeline_version_reference) refs.push(ref('PIPELINE_VERSION', run.pipeline_version_reference.pipeline_version_id, 'CREATOR'))
  else spec.workflow_manifest = JSON.stringify(run.pipeline_spec)
  const body = { name: run.display_name, description: run.description, pipeline_spec: spec, resource_references: refs }
  return fromDetail(await http.once<V1RunDetail>('POST', '/apis/v1beta1/runs', {}, body))
}

export async function findRunsV1(http: KfpHttp, name: string, experimentId: string | undefined, namespace: string | undefined): Promise<Run[]> {
  const scope = experimentId
    ? { 'resource_reference_key.type': 'EXPERIMENT', 'resource_reference_key.id': experimentId }
    : namespace
      ? { 'resource_reference_key.type': 'NAMESPACE', 'resource_reference_key.id': namespace }
      : {}
  const found = await pages<V1Run>(http, '/apis/v1beta1/runs', 'runs', { ...scope, filter: equalsFilter('name', name) }, 'the run listing', (r) => r.name === name)
  return found.map((r) => fromRun(r))
}

export async function getRunV1(http: KfpHttp, id: string): Promise<Run> {
  return fromDetail(await http.idempotent<V1RunDetail>('GET', `/apis/v1beta1/runs/${encodeURIComponent(id)}`, {}, undefined, 'the run status'))
}

export async function terminateRunV1(http: KfpHttp, id: string): Promise<void> {
  await http.idempotent('POST', `/apis/v1beta1/runs/${encodeURIComponent(id)}/terminate`, {}, undefined, 'terminate')
}

/** KFP 1.x has no lookup by name: the pipeline listing, filtered by name (pipelines are shared there, not namespaced). */
export async function pipelineByNameV1(http: KfpHttp, name: string): Promise<Pipeline | undefined> {
  const found = await pages<{ id: string; name: string }>(http, '/apis/v1beta1/pipelines', 'pipelines', { filter: equalsFilter('name', name) }, 'the pipeline lookup', (p) => p.name === name)
  return found[0] ? { pipeline_id: found[0].id, name: found[0].name } : undefined
}

export async function uploadPipelineV1(http: KfpHttp, name: string, yamlText: string): Promise<Pipeline> {
  const p = await http.upload<{ id: string; name: string }>('/apis/v1beta1/pipelines/upload', { name }, `${name}.yaml`, yamlText)
  return { pipeline_id: p.id, name: p.name }
}

export async function uploadVersionV1(http: KfpHttp, pipelineId: string, name: string, yamlText: string): Promise<PipelineVersion> {
  const v = await http.upload<{ id: string; name: string }>('/apis/v1beta1/pipelines/upload_version', { name, pipelineid: pipelineId }, `${name}.yaml`, yamlText)
  return { pipeline_id: pipelineId, pipeline_version_id: v.id, name: v.name }
}

export async function findVersionsV1(http: KfpHttp, pipelineId: string, name: string): Promise<PipelineVersion[]> {
  const found = await pages<{ id: string; name: string }>(
    http,
    '/apis/v1beta1/pipeline_versions',
    'versions',
    { 'resource_key.type': 'PIPELINE', 'resource_key.id': pipelineId, filter: equalsFilter('name', name) },
    'the pipeline version listing',
    (v) => v.name === name,
  )
  return found.map((v) => ({ pipeline_id: pipelineId, pipeline_version_id: v.id, name: v.name }))
}

function fromDetail(d: V1RunDetail): Run {
  if (!d.run?.id) throw new KfpHttpError(502, "KFP's answer holds no run", undefined)
  return fromRun(d.run, d.pipeline_runtime?.workflow_manifest)
}

function fromRun(r: V1Run, workflowManifest?: string): Run {
  const experiment = r.resource_references?.find((x) => x.key.type === 'EXPERIMENT')?.key.id
  const wf = parseWorkflow(workflowManifest)
  const message = r.error || (wf?.status?.phase && V1_STATES[wf.status.phase] === 'FAILED' ? wf.status.message : undefined)
  const run: Run = { run_id: r.id, display_name: r.name, description: r.description, experiment_id: experiment, state: v1State(r.status) }
  if (message) run.error = { message }
  if (wf) run.run_details = { task_details: tasksOf(wf) }
  return run
}

interface ArgoNode {
  id?: string
  displayName?: string
  type?: string
  phase?: string
}

interface ArgoWorkflow {
  status?: { phase?: string; message?: string; nodes?: Record<string, ArgoNode> }
}

function parseWorkflow(text: string | undefined): ArgoWorkflow | undefined {
  if (!text) return undefined
  try {
    const wf = JSON.parse(text) as unknown
    return typeof wf === 'object' && wf !== null ? (wf as ArgoWorkflow) : undefined
  } catch {
    return undefined // a status line without tasks beats failing the watch on a manifest KFP could not render
  }
}

/** The workflow's pods (each a task, or one try of a retried task), by the name Argo shows, in v2's state words. */
function tasksOf(wf: ArgoWorkflow): TaskDetail[] {
  return Object.entries(wf.status?.nodes ?? {})
    .filter(([, n]) => n.type === 'Pod')
    .map(([id, n]) => ({ task_id: n.id ?? id, display_name: n.displayName ?? id, state: v1State(n.phase) }))
}
