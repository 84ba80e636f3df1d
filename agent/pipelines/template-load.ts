// Reads a pipeline template file and tells its form: a KFP v2 pipeline (IR) or an Argo Workflow.
import { readFile } from 'node:fs/promises'
import { parseAllDocuments } from 'yaml'
import { AgentError } from '../errors.js'

export type LoadedTemplate =
  | { form: 'kfp'; doc: Record<string, unknown> }
  | { form: 'argo'; doc: Record<string, unknown> }

export async function loadTemplate(path: string): Promise<LoadedTemplate> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new AgentError('usage', `failed to read the template ${path}`, { cause: err, hint: 'check the path' })
  }
  return parseTemplate(text, path)
}

export function parseTemplate(text: string, path: string): LoadedTemplate {
  const docs = parseAllDocuments(text)
  if (!Array.isArray(docs)) throw new AgentError('usage', `failed to parse the template ${path}: it is empty`, { hint: 'give a KFP v2 pipeline or an Argo Workflow' })
  const errors = docs.flatMap((d) => d.errors)
  if (errors[0]) throw new AgentError('usage', `failed to parse the template ${path} as YAML: ${errors[0].message.split('\n')[0]}`, { hint: 'fix the YAML syntax' })
  const values = docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown).filter((v) => v !== null && v !== undefined)
  if (values.length === 0) throw new AgentError('usage', `failed to parse the template ${path}: it is empty`, { hint: 'give a KFP v2 pipeline or an Argo Workflow' })
  // A KFP v2 pipeline may be followed by its PlatformSpec (platforms: …), as the kfp SDK writes it
  // and generate does for @timeout; run-local runs the pipeline and leaves the pod settings to KFP.
  const platform = values.length === 2 && isPlatformSpec(values[1]) && isMapping(values[0]) && !('apiVersion' in values[0])
  if (values.length > 1 && !platform) {
    throw new AgentError('usage', `failed to run the template ${path} locally: run-local supports a second YAML document only as a KFP pipeline's PlatformSpec (platforms: …)`, {
      hint: 'keep one pipeline or workflow per file',
    })
  }
  const doc = values[0]
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new AgentError('usage', `failed to parse the template ${path}: the document is not a mapping`, { hint: 'give a KFP v2 pipeline or an Argo Workflow' })
  }
  const d = doc as Record<string, unknown>
  if (typeof d.apiVersion === 'string' && d.apiVersion.startsWith('argoproj.io/')) return { form: 'argo', doc: d }
  if ('pipelineInfo' in d || 'schemaVersion' in d || 'deploymentSpec' in d) return { form: 'kfp', doc: d }
  throw new AgentError('usage', `failed to recognise the template ${path}: it is neither a KFP v2 pipeline (pipelineInfo, root, deploymentSpec) nor an Argo Workflow (apiVersion argoproj.io/v1alpha1)`, {
    hint: 'start from one of pipeline-templates/*.kfp.yaml or *.argo.yaml',
  })
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isPlatformSpec(v: unknown): boolean {
  return isMapping(v) && Object.keys(v).length === 1 && isMapping(v.platforms)
}
