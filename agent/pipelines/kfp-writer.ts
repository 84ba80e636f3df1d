// Writes a flow plan as a KFP v2 pipeline (IR, schemaVersion 2.1.0) wired like the hand-written templates: ParallelFor over splits, joins from split_count.
import { stringify } from 'yaml'
import { dagsOf, dependenciesOf, loopName, taskInDag } from './flow-plan.js'
import type { FlowPlan, PlannedStep } from './flow-plan.js'
import type { FlowParameter } from './flow-reader.js'

type Obj = Record<string, unknown>

export interface WriterOptions {
  /** the pipeline's name (pipelineInfo.name, Argo generateName) */
  name: string
  image: string
  /** the code URL the code_url input defaults to; without it every run must give one */
  codeUrl?: string | undefined
  /** --flow-file for a package */
  flowFile?: string | undefined
  /** --code-sha256: every task runs exactly these bytes */
  codeSha256?: string | undefined
  /** environment every task gets (the resolved settings), before each step's @environment */
  env: Record<string, string>
  /** the agent inside the image */
  command: string
  /** the lines of the opening comment */
  header: string[]
}

// A retry window Argo measures from the first attempt's start; KFP >= 2.14 does not retry at
// all without it, so every retry policy carries one (3 days, the templates' value).
export const RETRY_WINDOW_SECONDS = 259200

const RUN_UUID = { runtimeValue: { constant: '{{$.pipeline_job_uuid}}' } }

/** KFP's type for a Metaflow parameter type; JSON travels as its text. */
export function kfpType(type: string): string {
  switch (type) {
    case 'int':
      return 'NUMBER_INTEGER'
    case 'float':
      return 'NUMBER_DOUBLE'
    case 'bool':
      return 'BOOLEAN'
    default:
      return 'STRING'
  }
}

/** The flow parameters a run can set: those with a default or required ones (a parameter with neither stays None, as in python flow.py run). */
export function pipelineParameters(params: readonly FlowParameter[]): FlowParameter[] {
  return params.filter((p) => p.default !== null || p.required)
}

const input = (name: string) => `{{$.inputs.parameters['${name}']}}`
const output = (name: string) => `{{$.outputs.parameters['${name}'].output_file}}`
const item = (plan: FlowPlan, foreach: string) => `pipelinechannel--${plan.byStep.get(foreach)?.task}-splits-loop-item`
const splitPathInputs = (p: PlannedStep) => (p.splitPathFrom.length === 1 ? ['split_path'] : p.splitPathFrom.map((_, i) => `split_path_${i}`))

export function writeKfp(plan: FlowPlan, o: WriterOptions): string {
  const params = pipelineParameters(plan.parameters)
  const components: Obj = {}
  const executors: Obj = {}
  const codeInput = (stack: readonly string[]) => (stack.length === 0 ? 'code_url' : 'pipelinechannel--code_url')

  const containerTask = (p: PlannedStep): Obj => {
    const inputs: Obj = { code_url: { componentInputParameter: codeInput(p.stack) }, run_uuid: RUN_UUID }
    const inputDefs: Obj = { code_url: { parameterType: 'STRING' }, run_uuid: { parameterType: 'STRING' } }
    const args = ['step', p.step, '--code-url', input('code_url'), '--run-id', `kfp-${input('run_uuid')}`]
    if (o.flowFile !== undefined) args.push('--flow-file', o.flowFile)
    if (o.codeSha256 !== undefined) args.push('--code-sha256', o.codeSha256)
    if (p.retry && p.retry.userCode > 0) args.push('--max-user-code-retries', String(p.retry.userCode))
    if (p.isStart) {
      for (const param of params) {
        inputs[param.name] = { componentInputParameter: param.name }
        inputDefs[param.name] = { parameterType: kfpType(param.type) }
        args.push('--param', `${param.name}=${input(param.name)}`)
      }
    }
    for (const parent of p.parents) args.push('--parent', parent)
    const paths = splitPathInputs(p)
    p.splitPathFrom.forEach((f, i) => {
      inputs[paths[i] as string] = { componentInputParameter: item(plan, f) }
      inputDefs[paths[i] as string] = { parameterType: 'NUMBER_INTEGER' }
    })
    if (paths.length > 0 && p.splitPathFrom.length > 0) args.push('--split-path', paths.map(input).join(','))
    if (p.splitIndexFrom !== undefined) {
      inputs.split_index = { componentInputParameter: item(plan, p.splitIndexFrom) }
      inputDefs.split_index = { parameterType: 'NUMBER_INTEGER' }
      args.push('--split-index', input('split_index'))
    }
    if (p.joinForeach !== undefined && p.numSplitsFrom !== undefined) {
      inputs.num_splits = { taskOutputParameter: { producerTask: plan.byStep.get(p.numSplitsFrom)?.task, outputParameterKey: 'split_count' } }
      inputDefs.num_splits = { parameterType: 'NUMBER_INTEGER' }
      args.push('--join-foreach', p.joinForeach, '--num-splits', input('num_splits'))
    }
    const outputDefs: Obj = { task_id: { parameterType: 'STRING' } }
    if (p.isForeach) Object.assign(outputDefs, { split_count: { parameterType: 'NUMBER_INTEGER' }, splits: { parameterType: 'LIST' } })
    for (const name of Object.keys(outputDefs)) args.push('--output', `${name}=${output(name)}`)

    components[`comp-${p.task}`] = { executorLabel: `exec-${p.task}`, inputDefinitions: { parameters: inputDefs }, outputDefinitions: { parameters: outputDefs } }
    const container: Obj = { image: o.image, command: [o.command], args }
    const env = { ...o.env, ...p.env }
    if (Object.keys(env).length > 0) container.env = Object.entries(env).map(([name, value]) => ({ name, value }))
    const resources = kfpResources(p)
    if (resources) container.resources = resources
    executors[`exec-${p.task}`] = { container }

    const task: Obj = { taskInfo: { name: p.task }, componentRef: { name: `comp-${p.task}` } }
    const deps = dependenciesOf(plan, p)
    if (deps.length > 0) task.dependentTasks = deps
    task.inputs = { parameters: inputs }
    task.cachingOptions = { enableCache: false }
    if (p.retry) {
      task.retryPolicy = {
        maxRetryCount: p.retry.total,
        backoffDuration: `${p.retry.backoffSeconds}s`,
        backoffFactor: 1,
        backoffMaxDuration: `${RETRY_WINDOW_SECONDS}s`,
      }
    }
    return task
  }

  // The loop over a foreach's splits, placed in the foreach's own DAG.
  const loopTask = (f: PlannedStep): Obj => {
    const name = loopName(plan, f.step)
    const inputs: Obj = { 'pipelinechannel--code_url': { componentInputParameter: codeInput(f.stack) } }
    for (const g of f.stack) inputs[item(plan, g)] = { componentInputParameter: item(plan, g) }
    const splits = `pipelinechannel--${f.task}-splits`
    inputs[splits] = { taskOutputParameter: { producerTask: f.task, outputParameterKey: 'splits' } }
    return {
      taskInfo: { name },
      componentRef: { name: `comp-${name}` },
      dependentTasks: [f.task],
      inputs: { parameters: inputs },
      parameterIterator: { itemInput: item(plan, f.step), items: { inputParameter: splits } },
    }
  }

  let root: Obj = {}
  for (const dag of dagsOf(plan)) {
    const tasks: Obj = {}
    for (const p of dag.steps) {
      tasks[p.task] = containerTask(p)
      if (p.isForeach) tasks[loopName(plan, p.step)] = loopTask(p)
    }
    if (dag.stack.length === 0) {
      const rootInputs: Obj = { code_url: o.codeUrl === undefined ? { parameterType: 'STRING' } : { parameterType: 'STRING', defaultValue: o.codeUrl } }
      for (const param of params) rootInputs[param.name] = rootInput(param)
      root = { inputDefinitions: { parameters: rootInputs }, dag: { tasks } }
      continue
    }
    const foreach = dag.stack[dag.stack.length - 1] as string
    const inputDefs: Obj = { 'pipelinechannel--code_url': { parameterType: 'STRING' } }
    for (const g of dag.stack.slice(0, -1)) inputDefs[item(plan, g)] = { parameterType: 'NUMBER_INTEGER' }
    inputDefs[`pipelinechannel--${plan.byStep.get(foreach)?.task}-splits`] = { parameterType: 'LIST' }
    inputDefs[item(plan, foreach)] = { parameterType: 'NUMBER_INTEGER' }
    components[`comp-${loopName(plan, foreach)}`] = { inputDefinitions: { parameters: inputDefs }, dag: { tasks } }
  }
  // Steps whose parents sit in another DAG are reached through their loop; check the wiring is whole.
  for (const p of plan.steps) for (const parent of p.parents) if (p.splitIndexFrom === undefined && taskInDag(plan, parent, p.stack) === undefined) throw new Error(`internal: ${p.step} cannot see ${parent}`)

  const doc = {
    pipelineInfo: { name: o.name },
    schemaVersion: '2.1.0',
    root,
    components: sortKeys(components),
    deploymentSpec: { executors: sortKeys(executors) },
  }
  return `${o.header.map((l) => `# ${l}`.trimEnd()).join('\n')}\n${toYaml(doc)}`
}

/**
 * YAML that KFP's and Argo's Go parsers read back as written. Why YAML 1.1: they parse 1.1,
 * where an unquoted n, y, on, off or yes is a boolean, so a parameter named n became false.
 */
export function toYaml(doc: unknown): string {
  return stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' })
}

function rootInput(p: FlowParameter): Obj {
  const spec: Obj = { parameterType: kfpType(p.type) }
  if (p.default !== null) {
    spec.defaultValue = p.default
    spec.isOptional = true
  }
  if (p.help) spec.description = p.help
  return spec
}

/**
 * @resources as KFP's resource spec, requests equal to limits, memory in MB as Metaflow counts it.
 * Both field sets the kfp SDK writes: the strings newer backends read and the numbers (cores, GB)
 * older ones read.
 */
function kfpResources(p: PlannedStep): Obj | undefined {
  const r = p.resources
  if (!r) return undefined
  const spec: Obj = {}
  const cpu = r.cpu === null ? NaN : Number(r.cpu)
  const memory = r.memory === null ? NaN : Number(r.memory)
  if (r.cpu !== null) {
    Object.assign(spec, { resourceCpuRequest: r.cpu, resourceCpuLimit: r.cpu })
    if (Number.isFinite(cpu)) Object.assign(spec, { cpuRequest: cpu, cpuLimit: cpu })
  }
  if (r.memory !== null) {
    Object.assign(spec, { resourceMemoryRequest: `${r.memory}M`, resourceMemoryLimit: `${r.memory}M` })
    if (Number.isFinite(memory)) Object.assign(spec, { memoryRequest: memory / 1000, memoryLimit: memory / 1000 })
  }
  if (r.gpu !== null) spec.accelerator = { resourceType: 'nvidia.com/gpu', resourceCount: r.gpu, type: 'nvidia.com/gpu', count: r.gpu }
  return Object.keys(spec).length > 0 ? spec : undefined
}

function sortKeys(o: Obj): Obj {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
