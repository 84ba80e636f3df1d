// Writes a flow plan as a KFP v2 pipeline (IR, schemaVersion 2.1.0) wired like the hand-written templates: ParallelFor over splits, joins from split_count.
import { stringify } from 'yaml'
import { dagsOf, dependenciesOf, loopName, taskInDag, taskName } from './flow-plan.js'
import type { FlowPlan, PlannedStep, SwitchCase } from './flow-plan.js'
import type { FlowParameter } from './flow-reader.js'
import { platformDocument } from './kfp-platform.js'

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
  /** Metaflow top-level options every task passes on: @project's --branch, --production */
  topLevel?: string[] | undefined
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

  const containerTask = (p: PlannedStep, codeName: string): Obj => {
    const inputs: Obj = { code_url: { componentInputParameter: codeName }, run_uuid: RUN_UUID }
    const inputDefs: Obj = { code_url: { parameterType: 'STRING' }, run_uuid: { parameterType: 'STRING' } }
    const args = ['step', p.step, '--code-url', input('code_url'), '--run-id', `kfp-${input('run_uuid')}`]
    if (o.flowFile !== undefined) args.push('--flow-file', o.flowFile)
    if (o.codeSha256 !== undefined) args.push('--code-sha256', o.codeSha256)
    if (o.topLevel) args.push(...o.topLevel)
    if (p.retry && p.retry.userCode > 0) args.push('--max-user-code-retries', String(p.retry.userCode))
    if (p.isStart) {
      for (const param of params) {
        inputs[param.name] = { componentInputParameter: param.name }
        inputDefs[param.name] = { parameterType: kfpType(param.type) }
        args.push('--param', `${param.name}=${input(param.name)}`)
      }
    }
    for (const parent of p.parents) args.push('--parent', parent)
    for (const group of p.parentAny) args.push('--parent-any', group.join(','))
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
      args.push('--join-foreach', p.joinForeach.join(','), '--num-splits', input('num_splits'))
    }
    const outputDefs: Obj = { task_id: { parameterType: 'STRING' } }
    if (p.isForeach) Object.assign(outputDefs, { split_count: { parameterType: 'NUMBER_INTEGER' }, splits: { parameterType: 'LIST' } })
    if (p.switchCases) outputDefs.switch_step = { parameterType: 'STRING' }
    for (const name of Object.keys(outputDefs)) args.push('--output', `${name}=${output(name)}`)

    components[`comp-${p.task}`] = { executorLabel: `exec-${p.task}`, inputDefinitions: { parameters: inputDefs }, outputDefinitions: { parameters: outputDefs } }
    const container: Obj = { image: o.image, command: [o.command], args }
    const env = { ...o.env, ...p.env }
    if (Object.keys(env).length > 0) container.env = Object.entries(env).map(([name, value]) => ({ name, value }))
    const resources = kfpResources(p)
    if (resources) container.resources = resources
    executors[`exec-${p.task}`] = { container }

    const task: Obj = { taskInfo: { name: p.task }, componentRef: { name: `comp-${p.task}` } }
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
  const loopTask = (f: PlannedStep, codeName: string): Obj => {
    const name = loopName(plan, f.step)
    const inputs: Obj = { 'pipelinechannel--code_url': { componentInputParameter: codeName } }
    for (const g of f.stack) inputs[item(plan, g)] = { componentInputParameter: item(plan, g) }
    const splits = `pipelinechannel--${f.task}-splits`
    inputs[splits] = { taskOutputParameter: { producerTask: f.task, outputParameterKey: 'splits' } }
    return {
      taskInfo: { name },
      componentRef: { name: `comp-${name}` },
      inputs: { parameters: inputs },
      parameterIterator: { itemInput: item(plan, f.step), items: { inputParameter: splits } },
    }
  }

  let counter = 0
  // The switch_step channels of the conditions each loop sits in: the kfp SDK passes them into the loop too.
  const loopChannels = new Map<string, string[]>()
  let root: Obj = {}
  for (const dag of dagsOf(plan)) {
    const base = dag.stack.length === 0 ? 0 : (plan.byStep.get(dag.stack[dag.stack.length - 1] as string) as PlannedStep).guard.length
    const tree = caseTree(dag.steps, plan.byStep, base)
    const tasks = emitGroup(tree, dag.stack.length === 0 ? 'code_url' : 'pipelinechannel--code_url')
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
    for (const c of loopChannels.get(loopName(plan, foreach)) ?? []) inputDefs[c] = { parameterType: 'STRING' }
    components[`comp-${loopName(plan, foreach)}`] = { inputDefinitions: { parameters: inputDefs }, dag: { tasks } }
  }

  /**
   * The tasks of one DAG (a pipeline's root, a loop's body, or one case of a switch). A switch's
   * cases sit in a condition-branches-N group holding one condition-N group per case, as the kfp
   * SDK compiles dsl.If/Elif/Else; a dependency on a task inside a case becomes one on the group.
   */
  function emitGroup(group: CaseGroup, codeName: string, channels: readonly string[] = []): Obj {
    const tasks: Obj = {}
    const elementOf = new Map<string, string>()
    const branchNames = new Map<CaseBranches, string>()
    for (const el of group.items) {
      if ('step' in el) {
        elementOf.set(el.task, el.task)
        if (el.isForeach) elementOf.set(loopName(plan, el.step), loopName(plan, el.step))
      } else {
        const name = `condition-branches-${++counter}`
        branchNames.set(el, name)
        for (const t of tasksUnder(el, (f) => loopName(plan, f))) elementOf.set(t, name)
      }
    }
    const depsOf = (ts: string[]) => [...new Set(ts.flatMap((t) => outside(t)))]
    // What a task of this DAG waits for, lifted to the elements of this DAG.
    const outside = (t: string): string[] => {
      const p = plan.steps.find((s) => s.task === t || (s.isForeach && loopName(plan, s.step) === t)) as PlannedStep
      const deps = p.task === t ? dependenciesOf(plan, p) : [p.task]
      return deps.map((d) => elementOf.get(d)).filter((d): d is string => d !== undefined && d !== elementOf.get(t))
    }
    for (const el of group.items) {
      if ('step' in el) {
        const task = containerTask(el, codeName)
        const deps = depsOf([el.task])
        if (deps.length > 0) task.dependentTasks = deps
        // KFP orders a task after a switch's cases only through a dsl.OneOf of their outputs (the
        // SDK refuses .after() across a dsl.If); the agent itself finds the parent with --parent-any.
        const oneOfs = deps.filter((d) => d.startsWith('condition-branches-'))
        oneOfs.forEach((b, i) => {
          const key = oneOfs.length === 1 ? 'case_task_id' : `case_task_id_${i}`
          ;(task.inputs as { parameters: Obj }).parameters[key] = { taskOutputParameter: { producerTask: b, outputParameterKey: `pipelinechannel--${b}-oneof-1` } }
          ;((components[`comp-${el.task}`] as Obj).inputDefinitions as { parameters: Obj }).parameters[key] = { parameterType: 'STRING' }
        })
        tasks[el.task] = sortTask(task)
        if (el.isForeach) {
          const loop = loopTask(el, codeName)
          const deps = depsOf([loopName(plan, el.step)])
          if (deps.length > 0) loop.dependentTasks = deps
          loopChannels.set(loopName(plan, el.step), [...channels])
          for (const c of channels) (loop.inputs as { parameters: Obj }).parameters[c] = { componentInputParameter: c }
          tasks[loopName(plan, el.step)] = sortTask(loop)
        }
        continue
      }
      const name = branchNames.get(el) as string
      tasks[name] = branchesTask(el, name, codeName, channels, depsOf(tasksUnder(el, (f) => loopName(plan, f))), caseEnds(el))
    }
    return tasks
  }

  /** A switch's condition-branches group: one condition-N group per case, If/Elif/.../Else on its switch_step. */
  function branchesTask(b: CaseBranches, name: string, codeName: string, channels: readonly string[], deps: string[], ends: Map<string, string[]>): Obj {
    const sw = plan.byStep.get(b.switch) as PlannedStep
    const channel = `pipelinechannel--${sw.task}-switch_step`
    const cases = sw.switchCases as string[]
    const inner: Obj = {}
    const needs = new Map<string, string>([[channel, 'STRING']])
    const selectors: Obj[] = []
    const caseNames: string[] = []
    cases.forEach((c, i) => {
      const group = b.cases.get(c) as CaseGroup
      const cname = `condition-${++counter}`
      caseNames.push(cname)
      const tasks = emitGroup(group, 'pipelinechannel--code_url', [...channels, channel])
      const groupNeeds = needsOf(tasks)
      groupNeeds.set(channel, 'STRING')
      for (const [k, v] of groupNeeds) needs.set(k, v)
      const outputs: Obj = {}
      const outputDefs: Obj = {}
      // The task id of this case's last step: what a dsl.OneOf over the cases reads.
      const end = ends.get(c)
      if (end !== undefined) {
        const [producer, key] = end.length === 1 ? [taskName(end[0] as string), 'task_id'] : [findBranches(tasks, end), `pipelinechannel--${findBranches(tasks, end)}-oneof-1`]
        const out = `pipelinechannel--${producer}-${key}`.replace(/^pipelinechannel--condition-branches-(\d+)-pipelinechannel--/, 'pipelinechannel--')
        outputs[out] = { valueFromParameter: { producerSubtask: producer, outputParameterKey: key } }
        outputDefs[out] = { parameterType: 'STRING' }
        selectors.push({ producerSubtask: cname, outputParameterKey: out })
      }
      const comp: Obj = { inputDefinitions: { parameters: defsOf(groupNeeds) } }
      if (Object.keys(outputDefs).length > 0) comp.outputDefinitions = { parameters: outputDefs }
      comp.dag = Object.keys(outputs).length > 0 ? { outputs: { parameters: outputs }, tasks } : { tasks }
      components[`comp-${cname}`] = comp
      const ref = (n: string) => `inputs.parameter_values['${n}']`
      const earlier = cases.slice(0, i).map((e) => `!(${ref(channel)} == '${e}')`)
      const condition = i === cases.length - 1 && i > 0 ? earlier.join(' && ') : [...earlier, `${ref(channel)} == '${c}'`].join(' && ')
      inner[cname] = {
        taskInfo: { name: cname },
        componentRef: { name: `comp-${cname}` },
        inputs: { parameters: Object.fromEntries([...groupNeeds.keys()].sort().map((k) => [k, { componentInputParameter: k }])) },
        triggerPolicy: { condition },
      }
    })
    const comp: Obj = { inputDefinitions: { parameters: defsOf(needs) } }
    if (selectors.length === cases.length) {
      comp.outputDefinitions = { parameters: { [`pipelinechannel--${name}-oneof-1`]: { parameterType: 'STRING' } } }
      comp.dag = { outputs: { parameters: { [`pipelinechannel--${name}-oneof-1`]: { valueFromOneof: { parameterSelectors: selectors } } } }, tasks: inner }
    } else {
      comp.dag = { tasks: inner }
    }
    components[`comp-${name}`] = comp
    const inputs: Obj = {}
    for (const k of [...needs.keys()].sort()) {
      inputs[k] = k === channel ? { taskOutputParameter: { producerTask: sw.task, outputParameterKey: 'switch_step' } } : { componentInputParameter: k === 'pipelinechannel--code_url' ? codeName : k }
    }
    const task: Obj = { taskInfo: { name }, componentRef: { name: `comp-${name}` } }
    if (deps.length > 0) task.dependentTasks = deps
    task.inputs = { parameters: inputs }
    return task
  }

  /** The parents of a step that sit in each case of `b`: the steps a OneOf over its cases reads. */
  function caseEnds(b: CaseBranches): Map<string, string[]> {
    const ends = new Map<string, string[]>()
    const inside = new Set(tasksUnder(b, (f) => loopName(plan, f)))
    for (const p of plan.steps) {
      if (inside.has(p.task)) continue
      for (const group of p.parentAny) {
        if (!group.every((g) => inside.has(taskName(g)))) continue
        for (const g of group) {
          const c = (plan.byStep.get(g) as PlannedStep).guard.find((x) => x.switch === b.switch) as SwitchCase
          ends.set(c.case, [...(ends.get(c.case) ?? []), g])
        }
      }
    }
    return ends
  }

  /** The condition-branches task of `tasks` that holds the steps `ends`. */
  function findBranches(tasks: Obj, ends: string[]): string {
    for (const [name, t] of Object.entries(tasks)) {
      if (!name.startsWith('condition-branches-')) continue
      const comp = components[(t as { componentRef: { name: string } }).componentRef.name] as Obj
      if (ends.every((e) => containsTask(comp, taskName(e)))) return name
    }
    throw new Error(`internal: no group holds ${ends.join(', ')}`)
  }

  function containsTask(comp: Obj, task: string): boolean {
    const tasks = (comp.dag as { tasks: Obj } | undefined)?.tasks ?? {}
    return Object.entries(tasks).some(([k, t]) => k === task || containsTask(components[(t as { componentRef: { name: string } }).componentRef.name] as Obj, task))
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
  // @timeout's pod deadline goes in a second document, the PlatformSpec (kfp-platform.ts).
  const platform = platformDocument(plan)
  return `${o.header.map((l) => `# ${l}`.trimEnd()).join('\n')}\n${toYaml(doc)}${platform ? `---\n${toYaml(platform)}` : ''}`
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

/** One DAG's steps, or one case's: steps (with their loops) and the switches whose cases sit inside. */
interface CaseGroup {
  items: (PlannedStep | CaseBranches)[]
}

interface CaseBranches {
  switch: string
  cases: Map<string, CaseGroup>
}

/** Nests a DAG's steps by the switch cases they run under, beyond the `base` cases the DAG itself runs under. */
function caseTree(steps: readonly PlannedStep[], byStep: Map<string, PlannedStep>, base: number): CaseGroup {
  const root: CaseGroup = { items: [] }
  const branchesOf = new Map<string, CaseBranches>()
  for (const p of steps) {
    let group = root
    for (const c of p.guard.slice(base)) {
      let b = branchesOf.get(c.switch)
      if (b === undefined) {
        b = { switch: c.switch, cases: new Map((byStep.get(c.switch)?.switchCases ?? []).map((x) => [x, { items: [] }])) }
        branchesOf.set(c.switch, b)
        group.items.push(b)
      }
      group = b.cases.get(c.case) as CaseGroup
    }
    group.items.push(p)
  }
  return root
}

/** Every task name inside a switch's branches: steps and their loops. */
function tasksUnder(b: CaseBranches, loop: (step: string) => string): string[] {
  return [...b.cases.values()].flatMap((g) => g.items.flatMap((el) => ('step' in el ? [el.task, ...(el.isForeach ? [loop(el.step)] : [])] : tasksUnder(el, loop))))
}

/** The enclosing inputs the tasks of a DAG read, with their types (by the names the writer gives them). */
function needsOf(tasks: Obj): Map<string, string> {
  const needs = new Map<string, string>()
  for (const t of Object.values(tasks)) {
    for (const spec of Object.values(((t as Obj).inputs as { parameters?: Obj } | undefined)?.parameters ?? {})) {
      const k = (spec as { componentInputParameter?: string }).componentInputParameter
      if (k !== undefined) needs.set(k, k.endsWith('-loop-item') ? 'NUMBER_INTEGER' : 'STRING')
    }
  }
  return needs
}

function defsOf(needs: Map<string, string>): Obj {
  return Object.fromEntries([...needs.keys()].sort().map((k) => [k, { parameterType: needs.get(k) }]))
}

const TASK_ORDER = ['taskInfo', 'componentRef', 'dependentTasks', 'inputs', 'cachingOptions', 'retryPolicy', 'parameterIterator', 'triggerPolicy']

/** A task's fields in one order, as the kfp SDK writes them. */
function sortTask(t: Obj): Obj {
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => TASK_ORDER.indexOf(a) - TASK_ORDER.indexOf(b)))
}
