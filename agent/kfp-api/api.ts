// KFP's v2beta1 calls submit needs: healthz, experiments by display name (paged), create experiment, create/list/get/terminate runs.
import { filterParam, KfpHttp, KfpHttpError } from './http.js'

export interface Experiment {
  experiment_id: string
  display_name: string
  namespace?: string
}

export interface TaskDetail {
  task_id?: string
  display_name?: string
  state?: string
}

export interface Run {
  run_id: string
  display_name?: string
  description?: string
  experiment_id?: string
  state?: string
  error?: { message?: string }
  run_details?: { task_details?: TaskDetail[] }
}

export const TERMINAL_STATES = new Set(['SUCCEEDED', 'SKIPPED', 'FAILED', 'CANCELED'])

export async function healthz(http: KfpHttp): Promise<{ multi_user: boolean }> {
  const r = await http.idempotent<{ multi_user?: boolean }>('GET', '/apis/v2beta1/healthz', {}, undefined, 'the health check')
  return { multi_user: r.multi_user === true }
}

function equalsFilter(key: string, value: string): string {
  return filterParam(JSON.stringify({ predicates: [{ operation: 'EQUALS', key, string_value: value }] }))
}

/** Every experiment of that display name in the namespace, through all pages. */
export async function findExperiments(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment[]> {
  const found: Experiment[] = []
  let token: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const r = await http.idempotent<{ experiments?: Experiment[]; next_page_token?: string }>(
      'GET',
      '/apis/v2beta1/experiments',
      { namespace, filter: equalsFilter('display_name', name), page_size: '100', page_token: token },
      undefined,
      'the experiment listing',
    )
    // The filter is the server's; the check here keeps a server that ignored it from picking a wrong experiment.
    found.push(...(r.experiments ?? []).filter((e) => e.display_name === name))
    token = r.next_page_token || undefined
    if (!token) break
  }
  return found
}

export async function createExperiment(http: KfpHttp, name: string, namespace: string | undefined): Promise<Experiment> {
  const body: Record<string, string> = { display_name: name }
  if (namespace) body.namespace = namespace
  return http.once<Experiment>('POST', '/apis/v2beta1/experiments', {}, body)
}

export interface RunRequest {
  display_name: string
  description: string
  experiment_id?: string | undefined
  /** inline, or a pipeline_version_reference to an uploaded version */
  pipeline_spec?: Record<string, unknown>
  pipeline_version_reference?: { pipeline_id: string; pipeline_version_id: string }
  /** sent even when empty: KFP's own client always sends it */
  runtime_config: { parameters: Record<string, unknown> }
}

export async function createRun(http: KfpHttp, run: RunRequest): Promise<Run> {
  // experiment_id goes in the body; the query parameter is deprecated and ignored.
  return http.once<Run>('POST', '/apis/v2beta1/runs', {}, run)
}

/** Runs of that display name in the experiment, all pages (to find one whose creation answer was lost). */
export async function findRuns(http: KfpHttp, name: string, experimentId: string | undefined, namespace: string | undefined): Promise<Run[]> {
  const found: Run[] = []
  let token: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const r = await http.idempotent<{ runs?: Run[]; next_page_token?: string }>(
      'GET',
      '/apis/v2beta1/runs',
      { experiment_id: experimentId, namespace: experimentId ? undefined : namespace, filter: equalsFilter('display_name', name), page_size: '100', page_token: token },
      undefined,
      'the run listing',
    )
    found.push(...(r.runs ?? []).filter((x) => x.display_name === name))
    token = r.next_page_token || undefined
    if (!token) break
  }
  return found
}

export async function getRun(http: KfpHttp, id: string): Promise<Run> {
  return http.idempotent<Run>('GET', `/apis/v2beta1/runs/${encodeURIComponent(id)}`, {}, undefined, 'the run status')
}

export async function terminateRun(http: KfpHttp, id: string): Promise<void> {
  await http.idempotent('POST', `/apis/v2beta1/runs/${encodeURIComponent(id)}:terminate`, {}, undefined, 'terminate')
}

export interface Pipeline {
  pipeline_id: string
  name?: string
}

export interface PipelineVersion {
  pipeline_id: string
  pipeline_version_id: string
  name?: string
}

/** The pipeline of that name in the namespace (or shared), or undefined when KFP has none. */
export async function pipelineByName(http: KfpHttp, name: string, namespace: string | undefined): Promise<Pipeline | undefined> {
  try {
    return await http.idempotent<Pipeline>('GET', `/apis/v2beta1/pipelines/names/${encodeURIComponent(name)}`, { namespace }, undefined, 'the pipeline lookup')
  } catch (err) {
    if (err instanceof KfpHttpError && err.status === 404) return undefined
    throw err
  }
}

/** Uploads a new pipeline (KFP makes its first version from the same file). */
export async function uploadPipeline(http: KfpHttp, name: string, namespace: string | undefined, yamlText: string): Promise<Pipeline> {
  return http.upload<Pipeline>('/apis/v2beta1/pipelines/upload', { name, display_name: name, namespace }, `${name}.yaml`, yamlText)
}

export async function uploadVersion(http: KfpHttp, pipelineId: string, name: string, yamlText: string): Promise<PipelineVersion> {
  return http.upload<PipelineVersion>('/apis/v2beta1/pipelines/upload_version', { name, pipelineid: pipelineId }, `${name}.yaml`, yamlText)
}

/** The versions of a pipeline with that name (the first upload's version is named as the pipeline). */
export async function findVersions(http: KfpHttp, pipelineId: string, name: string): Promise<PipelineVersion[]> {
  const found: PipelineVersion[] = []
  let token: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const r = await http.idempotent<{ pipeline_versions?: PipelineVersion[]; next_page_token?: string }>(
      'GET',
      `/apis/v2beta1/pipelines/${encodeURIComponent(pipelineId)}/versions`,
      { filter: equalsFilter('name', name), page_size: '100', page_token: token },
      undefined,
      'the pipeline version listing',
    )
    found.push(...(r.pipeline_versions ?? []).filter((v) => v.name === name))
    token = r.next_page_token || undefined
    if (!token) break
  }
  return found
}
