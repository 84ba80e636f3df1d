// Reads a KFP v2 pipeline file for a run: its spec (and platform spec), its declared inputs, and typed runtime parameters.
import { parseAllDocuments } from 'yaml'
import { AgentError } from '../errors.js'

export interface PipelineFile {
  /** pipelineInfo.name */
  name: string
  /** what goes in the run's pipeline_spec: the bare IR, or {pipeline_spec, platform_spec} when the file has a second document */
  pipelineSpec: Record<string, unknown>
  /** root.inputDefinitions.parameters: name -> parameterType (STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT) */
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
  if (typeof ir.apiVersion === 'string' && ir.apiVersion.startsWith('argoproj.io/')) {
    throw usage(`failed to submit ${path}: it is an Argo Workflow, for KFP 1.x (v1beta1), which submit does not send yet`, 'generate the KFP v2 form (metaflow-kfp generate --format kfp) for a KFP 2.x cluster')
  }
  const info = ir.pipelineInfo
  const name = isObject(info) && typeof info.name === 'string' ? info.name : undefined
  if (!name || !isObject(ir.root)) throw usage(`failed to read the pipeline ${path}: it has no pipelineInfo.name or root, so it is not a KFP v2 pipeline`, 'give a KFP v2 pipeline (metaflow-kfp generate writes one)')
  if (rest.length > 0 || (platform !== undefined && !(isObject(platform) && 'platforms' in platform))) {
    throw usage(`failed to read the pipeline ${path}: after the pipeline, only one platform document (platforms: …) may follow`, 'keep one pipeline, and at most its PlatformSpec, per file')
  }
  const inputs: Record<string, string> = {}
  const params = isObject(ir.root) && isObject(ir.root.inputDefinitions) ? ir.root.inputDefinitions.parameters : undefined
  if (isObject(params)) for (const [k, v] of Object.entries(params)) inputs[k] = isObject(v) && typeof v.parameterType === 'string' ? v.parameterType : 'STRING'
  return { name, pipelineSpec: platform === undefined ? ir : { pipeline_spec: ir, platform_spec: platform }, inputs }
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
