// Reads a pipeline file for a run (KFP v2 IR, or an Argo Workflow for KFP's v1beta1): its spec, its declared inputs, and typed runtime parameters.
import { parseAllDocuments } from 'yaml'
import { AgentError } from '../errors.js'

export interface PipelineFile {
  /** kfp: KFP v2 IR, for v2beta1; argo: an Argo Workflow, which only KFP's v1beta1 API runs */
  format: 'kfp' | 'argo'
  /** pipelineInfo.name, or the workflow's (generate)name */
  name: string
  /** what goes in the run's pipeline_spec: the bare IR, or {pipeline_spec, platform_spec} when the file has a second document */
  pipelineSpec: Record<string, unknown>
  /** root.inputDefinitions.parameters: name -> parameterType (STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT); an Argo Workflow's are all STRING */
  inputs: Record<string, string>
}

const usage = (message: string, hint: string) => new AgentError('usage', message, { hint })

export function parsePipelineFile(text: string, path: string): PipelineFile {
  const docs = parseAllDocuments(text)
  const list = Array.isArray(docs) ? docs : [docs]
  const errors = list.flatMap((d) => d.errors)
  if (errors[0]) throw usage(`failed to parse the pipeline ${path} as YAML: ${errors[0].message.split('\n')[0]}`, 'fix the YAML syntax')
  const values = list.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown).filter((v) => v !== null && v !== undefined)
  const [ir, platform, ...rest] = values
  if (!isObject(ir)) throw usage(`failed to read the pipeline ${path}: it holds no YAML mapping`, 'give a KFP v2 pipeline (metaflow-kfp generate writes one)')
  if (typeof ir.apiVersion === 'string' && ir.apiVersion.startsWith('argoproj.io/')) return argoWorkflow(ir, values.length, path)
  const info = ir.pipelineInfo
  const name = isObject(info) && typeof info.name === 'string' ? info.name : undefined
  if (!name || !isObject(ir.root)) throw usage(`failed to read the pipeline ${path}: it has no pipelineInfo.name or root, so it is not a KFP v2 pipeline`, 'give a KFP v2 pipeline (metaflow-kfp generate writes one)')
  if (rest.length > 0 || (platform !== undefined && !(isObject(platform) && 'platforms' in platform))) {
    throw usage(`failed to read the pipeline ${path}: after the pipeline, only one platform document (platforms: …) may follow`, 'keep one pipeline, and at most its PlatformSpec, per file')
  }
  const inputs: Record<string, string> = {}
  const params = isObject(ir.root) && isObject(ir.root.inputDefinitions) ? ir.root.inputDefinitions.parameters : undefined
  if (isObject(params)) for (const [k, v] of Object.entries(params)) inputs[k] = isObject(v) && typeof v.parameterType === 'string' ? v.parameterType : 'STRING'
  return { format: 'kfp', name, pipelineSpec: platform === undefined ? ir : { pipeline_spec: ir, platform_spec: platform }, inputs }
}

/** An Argo Workflow as KFP's v1beta1 takes it: one Workflow document; its parameters are its spec.arguments.parameters, strings. */
function argoWorkflow(wf: Record<string, any>, documents: number, path: string): PipelineFile {
  const hint = 'give an Argo Workflow as metaflow-kfp generate --format argo writes it, or a KFP v2 pipeline'
  if (wf.kind !== 'Workflow') throw usage(`failed to read the pipeline ${path}: it is an Argo ${String(wf.kind)}, and KFP runs only a Workflow`, hint)
  if (documents > 1) throw usage(`failed to read the pipeline ${path}: an Argo Workflow file must hold one document`, hint)
  const spec = wf.spec
  if (!isObject(spec) || !Array.isArray(spec.templates) || spec.templates.length === 0) throw usage(`failed to read the pipeline ${path}: the Argo Workflow has no spec.templates`, hint)
  const meta = isObject(wf.metadata) ? wf.metadata : {}
  const name = (typeof meta.name === 'string' && meta.name) || (typeof meta.generateName === 'string' && meta.generateName.replace(/-+$/, '')) || 'workflow'
  const inputs: Record<string, string> = {}
  const params = isObject(spec.arguments) ? spec.arguments.parameters : undefined
  if (Array.isArray(params)) for (const p of params) if (isObject(p) && typeof p.name === 'string') inputs[p.name] = 'STRING'
  return { format: 'argo', name, pipelineSpec: wf, inputs }
}

/**
 * --param NAME=VALUE as the JSON value the pipeline's declared type wants. KFP refuses a name the
 * pipeline does not declare and a value of the wrong type; checking here says so before anything is sent.
 */
export function typedParameters(given: Record<string, string>, inputs: Record<string, string>, pipeline: string): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, text] of Object.entries(given)) {
    const type = inputs[name]
    if (type === undefined) {
      throw usage(`failed to set --param ${name}: the pipeline ${pipeline} declares no such input`, `its inputs are: ${Object.keys(inputs).join(', ') || 'none'}`)
    }
    out[name] = typed(name, text, type)
  }
  return out
}

function typed(name: string, text: string, type: string): unknown {
  const bad = (what: string) => usage(`failed to set --param ${name}: ${JSON.stringify(text)} is not ${what}`, `the pipeline declares ${name} as ${type}`)
  const t = text.trim()
  switch (type) {
    case 'NUMBER_INTEGER':
      if (!/^[-+]?\d+$/.test(t) || !Number.isSafeInteger(Number(t))) throw bad('a whole number')
      return Number(t)
    case 'NUMBER_DOUBLE': {
      const n = Number(t)
      if (t === '' || !Number.isFinite(n)) throw bad('a number')
      return n
    }
    case 'BOOLEAN':
      if (t === 'true' || t === 'True') return true
      if (t === 'false' || t === 'False') return false
      throw bad('true or false')
    case 'LIST':
    case 'STRUCT': {
      let v: unknown
      try {
        v = JSON.parse(text)
      } catch {
        throw bad(type === 'LIST' ? 'a JSON list' : 'a JSON object')
      }
      if (type === 'LIST' ? !Array.isArray(v) : !isObject(v)) throw bad(type === 'LIST' ? 'a JSON list' : 'a JSON object')
      return v
    }
    default:
      return text
  }
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
