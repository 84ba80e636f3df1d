// Executes a KFP v2 pipeline (IR) locally for run-local: the constructs this repo's templates and generate use (loops, dsl.If/Elif/Else groups, dsl.OneOf), and a refusal naming any other.
import { join } from 'node:path'
import { AgentError } from '../errors.js'
import { kfpCondition } from './conditions.js'
import { forEachBounded, walkDag } from './local-dag.js'
import type { NodeStatus } from './local-dag.js'
import type { FormRunOptions } from './local-task.js'
import { onlyKeys, refuse, shapeReaders } from '../pipelines/template-shape.js'
import type { Obj } from '../pipelines/template-shape.js'

const { obj, str, strList } = shapeReaders('the pipeline', 'pipeline-templates/*.kfp.yaml')

type Values = Record<string, unknown>

const TOP_KEYS = ['pipelineInfo', 'schemaVersion', 'root', 'components', 'deploymentSpec', 'sdkVersion', 'defaultPipelineRoot']
const TASK_KEYS = ['taskInfo', 'componentRef', 'inputs', 'dependentTasks', 'cachingOptions', 'retryPolicy', 'parameterIterator', 'iteratorPolicy', 'triggerPolicy']
const COMPONENT_KEYS = ['inputDefinitions', 'outputDefinitions', 'executorLabel', 'dag']
const CONTAINER_KEYS = ['image', 'command', 'args', 'env', 'resources']
const PARAM_SPEC_KEYS = ['parameterType', 'defaultValue', 'isOptional', 'description']

/** The pipeline input names of a KFP v2 pipeline, for run-local to map --code-url onto. */
export function kfpInputNames(doc: Obj): string[] {
  return Object.keys(obj(obj(obj(doc.root, 'root').inputDefinitions ?? {}, 'root.inputDefinitions').parameters ?? {}, 'root.inputDefinitions.parameters'))
}

export async function runKfp(doc: Obj, o: FormRunOptions): Promise<void> {
  onlyKeys(doc, TOP_KEYS, 'the pipeline')
  if (doc.schemaVersion !== '2.1.0') {
    throw refuse(`schemaVersion ${JSON.stringify(doc.schemaVersion)}`, 'write schemaVersion: 2.1.0 (the KFP v2 IR)')
  }
  const components = obj(doc.components ?? {}, 'components')
  const executors = obj(obj(doc.deploymentSpec ?? {}, 'deploymentSpec').executors ?? {}, 'deploymentSpec.executors')
  const root = obj(doc.root, 'root')
  onlyKeys(root, COMPONENT_KEYS, 'root')
  const inputs = rootInputs(root, o.params)

  /** Runs a DAG component's tasks; returns the DAG's own outputs (dag.outputs), as condition groups pass them on. */
  const runDag = async (component: Obj, where: string, scope: Values, indices: readonly number[]): Promise<Values> => {
    const dag = obj(component.dag, `${where}.dag`)
    onlyKeys(dag, ['tasks', 'outputs'], `${where}.dag`)
    const tasks = obj(dag.tasks, `${where}.dag.tasks`)
    const outputs = new Map<string, Values>()
    const nodes = Object.entries(tasks).map(([name, raw]) => {
      const task = obj(raw, `task ${name}`)
      onlyKeys(task, TASK_KEYS, `task ${name}`)
      const taskInputs = obj(obj(task.inputs ?? {}, `task ${name}.inputs`).parameters ?? {}, `task ${name}.inputs.parameters`)
      onlyKeys(obj(task.inputs ?? {}, `task ${name}.inputs`), ['parameters'], `task ${name}.inputs`)
      const producers = Object.values(taskInputs).flatMap((v) => {
        const p = obj(v, `task ${name} input`).taskOutputParameter
        return p === undefined ? [] : [str(obj(p, `task ${name} taskOutputParameter`).producerTask, `task ${name} producerTask`)]
      })
      const deps = [...new Set([...strList(task.dependentTasks ?? [], `task ${name}.dependentTasks`), ...producers])]
      // Checked before any task runs: a trigger strategy (exit handlers) is refused by name.
      const policy = obj(task.triggerPolicy ?? {}, `task ${name}.triggerPolicy`)
      onlyKeys(policy, ['condition'], `task ${name}.triggerPolicy`)
      const condition = policy.condition === undefined ? undefined : str(policy.condition, `task ${name}.triggerPolicy.condition`)
      return {
        name,
        deps,
        run: async (status: ReadonlyMap<string, NodeStatus>) => {
          // KFP's Argo compiler makes every dependency depends: X.Succeeded, so after a skipped task nothing runs.
          if (deps.some((d) => status.get(d) !== 'succeeded')) return 'omitted' as const
          const resolved: Values = {}
          for (const [key, spec] of Object.entries(taskInputs)) resolved[key] = resolveInput(spec, `task ${name} input ${key}`, scope, outputs, o.runUuid)
          const ref = str(obj(task.componentRef, `task ${name}.componentRef`).name, `task ${name}.componentRef.name`)
          const comp = obj(components[ref], `component ${ref}`)
          onlyKeys(comp, COMPONENT_KEYS, `component ${ref}`)
          // KFP's driver evaluates the condition over the task's resolved inputs; false skips the task.
          if (condition !== undefined && !kfpCondition(condition, resolved, `task ${name}`)) return 'skipped' as const
          if (task.parameterIterator !== undefined) {
            await runLoop(name, task, comp, ref, resolved, indices)
          } else if (comp.dag !== undefined) {
            outputs.set(name, await runDag(comp, `component ${ref}`, declaredInputs(comp, `component ${ref}`, resolved), indices))
          } else {
            outputs.set(name, await runContainer(name, comp, ref, declaredInputs(comp, `component ${ref}`, resolved), indices))
          }
        },
      }
    })
    const status = await walkDag(nodes, where)
    return dagOutputs(dag, where, outputs, status)
  }

  const runLoop = async (name: string, task: Obj, comp: Obj, ref: string, resolved: Values, indices: readonly number[]) => {
    const it = obj(task.parameterIterator, `task ${name}.parameterIterator`)
    onlyKeys(it, ['items', 'itemInput'], `task ${name}.parameterIterator`)
    const items = obj(it.items, `task ${name}.parameterIterator.items`)
    onlyKeys(items, ['inputParameter', 'raw'], `task ${name}.parameterIterator.items`)
    const list = items.raw !== undefined ? parseJson(str(items.raw, 'items.raw'), `task ${name} items.raw`) : resolved[str(items.inputParameter, 'items.inputParameter')]
    if (!Array.isArray(list)) throw refuse(`a parameterIterator over ${JSON.stringify(list)} in task ${name}`, 'iterate over a LIST, such as the splits output of a foreach step')
    const itemInput = str(it.itemInput, `task ${name}.parameterIterator.itemInput`)
    const policy = obj(task.iteratorPolicy ?? {}, `task ${name}.iteratorPolicy`)
    onlyKeys(policy, ['parallelismLimit'], `task ${name}.iteratorPolicy`)
    const cap = typeof policy.parallelismLimit === 'number' && policy.parallelismLimit > 0 ? policy.parallelismLimit : Infinity
    if (comp.dag === undefined) throw refuse(`a parameterIterator on the container task ${name}`, 'loop over a DAG component, as the KFP SDK compiles ParallelFor')
    await forEachBounded(list.length, Math.min(cap, o.parallelism), async (i) => {
      await runDag(comp, `component ${ref}`, declaredInputs(comp, `component ${ref}`, { ...resolved, [itemInput]: list[i] }), [...indices, i])
    })
  }

  const runContainer = async (name: string, comp: Obj, ref: string, scope: Values, indices: readonly number[]): Promise<Values> => {
    const label = str(comp.executorLabel, `component ${ref}.executorLabel`)
    const executor = obj(executors[label], `executor ${label}`)
    onlyKeys(executor, ['container'], `executor ${label}`)
    const container = obj(executor.container, `executor ${label}.container`)
    onlyKeys(container, CONTAINER_KEYS, `executor ${label}.container`)
    const outDefs = obj(obj(comp.outputDefinitions ?? {}, `component ${ref}.outputDefinitions`).parameters ?? {}, `component ${ref}.outputDefinitions.parameters`)
    onlyKeys(obj(comp.outputDefinitions ?? {}, `component ${ref}.outputDefinitions`), ['parameters'], `component ${ref}.outputDefinitions`)
    const dir = await o.tasks.taskDir()
    const outputFiles = Object.fromEntries(Object.keys(outDefs).map((k) => [k, join(dir, 'outputs', k)]))
    const fill = (text: string) => substitute(text, scope, outputFiles, `executor ${label}`)
    const values = await o.tasks.run({
      label: indices.length === 0 ? name : `${name}[${indices.join(',')}]`,
      command: strList(container.command ?? [], `executor ${label}.command`).map(fill),
      args: strList(container.args ?? [], `executor ${label}.args`).map(fill),
      env: envOf(container.env, `executor ${label}.env`),
      outputs: outputFiles,
    })
    const typed: Values = {}
    for (const [k, text] of Object.entries(values)) typed[k] = fromText(text, typeOf(outDefs[k], `output ${k}`), `output ${k} of task ${name}`)
    return typed
  }

  await runDag(root, 'root', inputs, [])
}

/** A DAG's outputs: one task output each (valueFromParameter), or the one of several that ran (valueFromOneof, dsl.OneOf). */
function dagOutputs(dag: Obj, where: string, outputs: Map<string, Values>, status: ReadonlyMap<string, NodeStatus>): Values {
  const specs = obj(obj(dag.outputs ?? {}, `${where}.dag.outputs`).parameters ?? {}, `${where}.dag.outputs.parameters`)
  onlyKeys(obj(dag.outputs ?? {}, `${where}.dag.outputs`), ['parameters'], `${where}.dag.outputs`)
  const values: Values = {}
  const pick = (sel: unknown, at: string): { found: boolean; value?: unknown } => {
    const s = obj(sel, at)
    onlyKeys(s, ['producerSubtask', 'outputParameterKey'], at)
    const producer = str(s.producerSubtask, `${at}.producerSubtask`)
    const key = str(s.outputParameterKey, `${at}.outputParameterKey`)
    if (!status.has(producer)) throw new AgentError('usage', `failed to read the pipeline: ${at} reads task ${producer}, which ${where} does not have`, { hint: 'name a task of the same DAG' })
    const out = outputs.get(producer)
    if (status.get(producer) !== 'succeeded' || out === undefined || !(key in out)) return { found: false }
    return { found: true, value: out[key] }
  }
  for (const [name, raw] of Object.entries(specs)) {
    const spec = obj(raw, `${where} output ${name}`)
    onlyKeys(spec, ['valueFromParameter', 'valueFromOneof'], `${where} output ${name}`)
    if (spec.valueFromParameter !== undefined) {
      const r = pick(spec.valueFromParameter, `${where} output ${name}`)
      if (r.found) values[name] = r.value
      continue
    }
    const selectors = obj(spec.valueFromOneof, `${where} output ${name}.valueFromOneof`)
    onlyKeys(selectors, ['parameterSelectors'], `${where} output ${name}.valueFromOneof`)
    const chosen = (Array.isArray(selectors.parameterSelectors) ? selectors.parameterSelectors : []).map((sel, i) => pick(sel, `${where} output ${name} selector ${i}`)).filter((r) => r.found)
    // KFP's driver fails a dsl.OneOf that no branch (or more than one) produced.
    if (chosen.length !== 1) throw new AgentError('usage', `failed to run ${where}: its output ${name} (a dsl.OneOf) got ${chosen.length} values, not one`, { hint: 'give exactly one condition branch the chance to run' })
    values[name] = (chosen[0] as { value: unknown }).value
  }
  return values
}

/** The root inputs from --param text, else their defaults. */
function rootInputs(root: Obj, params: Record<string, string>): Values {
  const defs = obj(obj(root.inputDefinitions ?? {}, 'root.inputDefinitions').parameters ?? {}, 'root.inputDefinitions.parameters')
  onlyKeys(obj(root.inputDefinitions ?? {}, 'root.inputDefinitions'), ['parameters'], 'root.inputDefinitions')
  for (const name of Object.keys(params)) {
    if (!(name in defs)) {
      throw new AgentError('usage', `failed to set pipeline input ${name}: the pipeline has no such input`, { hint: `its inputs are: ${Object.keys(defs).join(', ') || 'none'}` })
    }
  }
  const values: Values = {}
  for (const [name, raw] of Object.entries(defs)) {
    const spec = obj(raw, `root input ${name}`)
    onlyKeys(spec, PARAM_SPEC_KEYS, `root input ${name}`)
    const given = params[name]
    if (given !== undefined) values[name] = fromText(given, typeOf(spec, `root input ${name}`), `pipeline input ${name}`)
    else if (spec.defaultValue !== undefined) values[name] = spec.defaultValue
    else if (spec.isOptional !== true) throw new AgentError('usage', `failed to start the pipeline: input ${name} has no value`, { hint: `pass --param ${name}=VALUE` })
  }
  return values
}

/** The component's declared inputs: given values, else defaults; an undeclared input is an error. */
function declaredInputs(comp: Obj, where: string, given: Values): Values {
  const inputDefs = obj(comp.inputDefinitions ?? {}, `${where}.inputDefinitions`)
  onlyKeys(inputDefs, ['parameters'], `${where}.inputDefinitions`)
  const defs = obj(inputDefs.parameters ?? {}, `${where}.inputDefinitions.parameters`)
  const out: Values = {}
  for (const key of Object.keys(given)) {
    if (!(key in defs)) throw new AgentError('usage', `failed to read the pipeline: ${where} gets input ${key} but does not declare it`, { hint: 'add it to the component\'s inputDefinitions' })
  }
  for (const [key, raw] of Object.entries(defs)) {
    const spec = obj(raw, `${where} input ${key}`)
    onlyKeys(spec, PARAM_SPEC_KEYS, `${where} input ${key}`)
    if (key in given) out[key] = given[key]
    else if (spec.defaultValue !== undefined) out[key] = spec.defaultValue
    else if (spec.isOptional !== true) throw new AgentError('usage', `failed to read the pipeline: ${where} needs input ${key}, which its task does not pass`, { hint: 'pass it in the task\'s inputs.parameters' })
  }
  return out
}

function resolveInput(raw: unknown, where: string, scope: Values, outputs: Map<string, Values>, runUuid: string): unknown {
  const spec = obj(raw, where)
  const kinds = Object.keys(spec)
  if (kinds.length !== 1) throw refuse(`the input form ${JSON.stringify(kinds)} of ${where}`, 'use one of componentInputParameter, taskOutputParameter, runtimeValue')
  if (spec.componentInputParameter !== undefined) {
    const name = str(spec.componentInputParameter, where)
    if (!(name in scope)) throw new AgentError('usage', `failed to read the pipeline: ${where} reads ${name}, which its DAG does not have`, { hint: 'declare it in the enclosing inputDefinitions and pass it in' })
    return scope[name]
  }
  if (spec.taskOutputParameter !== undefined) {
    const t = obj(spec.taskOutputParameter, where)
    onlyKeys(t, ['producerTask', 'outputParameterKey'], where)
    const producer = str(t.producerTask, where)
    const key = str(t.outputParameterKey, where)
    const values = outputs.get(producer)
    if (values === undefined) throw refuse(`the output of ${producer} read by ${where} (not a container task in the same DAG)`, 'read outputs of container tasks only; run-local does not collect loop outputs (dsl.Collected)')
    if (!(key in values)) throw new AgentError('usage', `failed to read the pipeline: ${where} reads output ${key} of ${producer}, which it does not declare`, { hint: 'add it to the producer\'s outputDefinitions' })
    return values[key]
  }
  if (spec.runtimeValue !== undefined) {
    const r = obj(spec.runtimeValue, where)
    onlyKeys(r, ['constant'], `${where}.runtimeValue`)
    if (typeof r.constant !== 'string') return r.constant
    return r.constant.replace(/\{\{\$\.[^}]*\}\}/g, (p) => {
      if (p === '{{$.pipeline_job_uuid}}') return runUuid
      throw refuse(`the placeholder ${p} in ${where}`, 'run-local resolves {{$.pipeline_job_uuid}} only')
    })
  }
  throw refuse(`the input form ${kinds[0]} of ${where}`, 'use componentInputParameter, taskOutputParameter or runtimeValue')
}

/** Fills {{$.inputs.parameters['x']}} and {{$.outputs.parameters['x'].output_file}}; refuses every other placeholder. */
function substitute(text: string, scope: Values, outputFiles: Record<string, string>, where: string): string {
  return text.replace(/\{\{\$[^}]*\}\}/g, (p) => {
    const input = /^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$/.exec(p)
    if (input) {
      const name = input[1] as string
      if (!(name in scope)) throw new AgentError('usage', `failed to read the pipeline: ${where} uses input ${name}, which its component does not declare`, { hint: 'add it to inputDefinitions' })
      return toText(scope[name])
    }
    const output = /^\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}$/.exec(p)
    if (output) {
      const path = outputFiles[output[1] as string]
      if (path === undefined) throw new AgentError('usage', `failed to read the pipeline: ${where} writes output ${output[1]}, which its component does not declare`, { hint: 'add it to outputDefinitions' })
      return path
    }
    throw refuse(`the placeholder ${p} in ${where}`, "use {{$.inputs.parameters['x']}} and {{$.outputs.parameters['x'].output_file}}")
  })
}

/** A parameter value as a placeholder puts it on the command line (KFP's own text form). */
function toText(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return JSON.stringify(v)
}

/** Text from a file or a flag, as the declared type: STRING verbatim, numbers trimmed, LIST and STRUCT as JSON. */
function fromText(text: string, type: string, where: string): unknown {
  switch (type) {
    case 'STRING':
      return text
    case 'NUMBER_INTEGER':
    case 'NUMBER_DOUBLE': {
      const n = Number(text.trim())
      if (text.trim() === '' || !Number.isFinite(n) || (type === 'NUMBER_INTEGER' && !Number.isInteger(n))) {
        throw new AgentError('usage', `failed to read ${where}: ${JSON.stringify(text)} is not a ${type === 'NUMBER_INTEGER' ? 'whole number' : 'number'}`)
      }
      return n
    }
    case 'BOOLEAN': {
      const t = text.trim()
      if (t !== 'true' && t !== 'false') throw new AgentError('usage', `failed to read ${where}: ${JSON.stringify(text)} is not true or false`)
      return t === 'true'
    }
    case 'LIST':
    case 'STRUCT': {
      const v = parseJson(text, where)
      if (type === 'LIST' ? !Array.isArray(v) : typeof v !== 'object' || v === null || Array.isArray(v)) {
        throw new AgentError('usage', `failed to read ${where}: ${JSON.stringify(text)} is not a JSON ${type === 'LIST' ? 'array' : 'object'}`)
      }
      return v
    }
    default:
      throw refuse(`the parameter type ${type} of ${where}`, 'use STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST or STRUCT')
  }
}

function typeOf(spec: unknown, where: string): string {
  return str(obj(spec, where).parameterType, `${where}.parameterType`)
}

function envOf(raw: unknown, where: string): Record<string, string> {
  const env: Record<string, string> = {}
  if (raw === undefined) return env
  if (!Array.isArray(raw)) throw refuse(`${where} that is not a list`, 'write env as a list of {name, value}')
  for (const e of raw) {
    const entry = obj(e, where)
    onlyKeys(entry, ['name', 'value'], where)
    env[str(entry.name, `${where}.name`)] = str(entry.value ?? '', `${where}.value`)
  }
  return env
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new AgentError('usage', `failed to read ${where}: ${(err as Error).message}`)
  }
}
