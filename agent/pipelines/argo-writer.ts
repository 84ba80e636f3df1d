// Writes a flow plan as an Argo Workflow wired like the hand-written templates: withSequence over split_count, valueFrom.path outputs, retryStrategy with {{retries}}.
import { dagsOf, dependenciesOf, loopName, taskInDag } from './flow-plan.js'
import type { FlowPlan, PlannedStep } from './flow-plan.js'
import { pipelineParameters, toYaml } from './kfp-writer.js'
import type { WriterOptions } from './kfp-writer.js'

type Obj = Record<string, unknown>

const OUTPUT_DIR = '/tmp/outputs'
// Seconds a task's pod may take beyond @timeout: fetching the code and saving the logs.
export const DEADLINE_SLACK_SECONDS = 300

const splitInput = (plan: FlowPlan, foreach: string) => `split-${plan.byStep.get(foreach)?.task}`
const splitPathInputs = (p: PlannedStep) => (p.splitPathFrom.length === 1 ? ['split-path'] : p.splitPathFrom.map((_, i) => `split-path-${i}`))

export function writeArgo(plan: FlowPlan, o: WriterOptions): string {
  const params = pipelineParameters(plan.parameters)
  const containers: Obj[] = []
  const dagTemplates: Obj[] = []
  // Why depends only with a switch: Argo's dependencies run a task after a Skipped one, so a case not
  // taken needs depends' .Succeeded; without switches the output stays as the hand-written templates.
  const switches = plan.steps.some((p) => p.switchCases !== undefined)

  const containerTemplate = (p: PlannedStep): Obj => {
    const inputs: Obj[] = []
    const args = ['step', p.step, '--code-url', '{{workflow.parameters.code-url}}', '--run-id', 'kfp-{{workflow.uid}}']
    if (o.flowFile !== undefined) args.push('--flow-file', o.flowFile)
    if (o.codeSha256 !== undefined) args.push('--code-sha256', o.codeSha256)
    if (o.topLevel) args.push(...o.topLevel)
    if (p.retry) args.push('--retry-count', '{{retries}}')
    if (p.retry && p.retry.userCode > 0) args.push('--max-user-code-retries', String(p.retry.userCode))
    if (p.isStart) for (const param of params) args.push('--param', `${param.name}={{workflow.parameters.${param.name}}}`)
    for (const parent of p.parents) args.push('--parent', parent)
    for (const group of p.parentAny) args.push('--parent-any', group.join(','))
    const paths = splitPathInputs(p)
    if (p.splitPathFrom.length > 0) {
      for (const n of paths) inputs.push({ name: n })
      args.push('--split-path', paths.map((n) => `{{inputs.parameters.${n}}}`).join(','))
    }
    if (p.splitIndexFrom !== undefined) {
      inputs.push({ name: 'split-index' })
      args.push('--split-index', '{{inputs.parameters.split-index}}')
    }
    if (p.joinForeach !== undefined) {
      inputs.push({ name: 'num-splits' })
      args.push('--join-foreach', p.joinForeach.join(','), '--num-splits', '{{inputs.parameters.num-splits}}')
    }
    args.push('--output-dir', OUTPUT_DIR)
    const tpl: Obj = { name: p.task }
    if (p.retry) {
      const strategy: Obj = { limit: String(p.retry.total), retryPolicy: 'Always' }
      if (p.retry.backoffSeconds > 0) strategy.backoff = { duration: `${p.retry.backoffSeconds}s`, factor: '1' }
      tpl.retryStrategy = strategy
    }
    if (p.timeoutSeconds !== null) tpl.activeDeadlineSeconds = p.timeoutSeconds + DEADLINE_SLACK_SECONDS
    if (inputs.length > 0) tpl.inputs = { parameters: inputs }
    const container: Obj = { image: o.image, command: [o.command], args }
    const env = { ...o.env, ...p.env }
    if (Object.keys(env).length > 0) container.env = Object.entries(env).map(([name, value]) => ({ name, value }))
    const resources = argoResources(p)
    if (resources) container.resources = resources
    tpl.container = container
    const outs = ['task_id', ...(p.isForeach ? ['split_count'] : []), ...(p.switchCases ? ['switch_step'] : [])]
    tpl.outputs = { parameters: outs.map((n) => ({ name: n, valueFrom: { path: `${OUTPUT_DIR}/${n}` } })) }
    return tpl
  }

  /** The arguments a DAG task passes to a step's template, from the DAG of `stack`. */
  const stepArguments = (p: PlannedStep): Obj[] => {
    const out: Obj[] = []
    const paths = splitPathInputs(p)
    p.splitPathFrom.forEach((f, i) => out.push({ name: paths[i], value: `{{inputs.parameters.${splitInput(plan, f)}}}` }))
    if (p.splitIndexFrom !== undefined) out.push({ name: 'split-index', value: `{{inputs.parameters.${splitInput(plan, p.splitIndexFrom)}}}` })
    if (p.numSplitsFrom !== undefined) out.push({ name: 'num-splits', value: `{{tasks.${plan.byStep.get(p.numSplitsFrom)?.task}.outputs.parameters.split_count}}` })
    return out
  }

  for (const dag of dagsOf(plan)) {
    const tasks: Obj[] = []
    for (const p of dag.steps) {
      containers.push(containerTemplate(p))
      const t: Obj = { name: p.task, template: p.task }
      // A foreach join waits for the loop, which waits for the foreach: as in the templates, the
      // foreach itself is not listed again (Argo reads its split_count as an ancestor's output).
      const foreachTask = p.numSplitsFrom === undefined ? undefined : plan.byStep.get(p.numSplitsFrom)?.task
      const deps = dependenciesOf(plan, p).filter((d) => d !== foreachTask)
      if (switches) {
        const depends = dependsOf(plan, p, deps)
        if (depends !== '') t.depends = depends
        const sw = p.parents.length === 1 ? plan.byStep.get(p.parents[0] as string) : undefined
        // A case's first step runs when its switch chose it; the steps after it wait for it to succeed, so
        // a case not taken is Skipped, then Omitted downstream, as Metaflow's own Argo plugin compiles it.
        if (sw?.switchCases && sw.stack.length === p.stack.length) t.when = `'{{tasks.${sw.task}.outputs.parameters.switch_step}}' == '${p.step}'`
      } else if (deps.length > 0) t.dependencies = deps
      const a = stepArguments(p)
      if (a.length > 0) t.arguments = { parameters: a }
      tasks.push(t)
      if (p.isForeach) {
        const name = loopName(plan, p.step)
        const loopArgs = [
          ...p.stack.map((g) => ({ name: splitInput(plan, g), value: `{{inputs.parameters.${splitInput(plan, g)}}}` })),
          { name: splitInput(plan, p.step), value: '{{item}}' },
        ]
        tasks.push({
          name,
          template: name,
          ...(switches ? { depends: `${p.task}.Succeeded` } : { dependencies: [p.task] }),
          withSequence: { count: `{{tasks.${p.task}.outputs.parameters.split_count}}` },
          arguments: { parameters: loopArgs },
        })
      }
    }
    if (dag.stack.length === 0) {
      dagTemplates.unshift({ name: 'main', dag: { tasks } })
    } else {
      const foreach = dag.stack[dag.stack.length - 1] as string
      dagTemplates.push({ name: loopName(plan, foreach), inputs: { parameters: dag.stack.map((g) => ({ name: splitInput(plan, g) })) }, dag: { tasks } })
    }
  }
  const workflowParams: Obj[] = [o.codeUrl === undefined ? { name: 'code-url' } : { name: 'code-url', value: o.codeUrl }]
  for (const p of params) {
    const v: Obj = { name: p.name }
    if (p.default !== null) v.value = typeof p.default === 'string' ? p.default : String(p.default)
    if (p.help) v.description = p.help
    workflowParams.push(v)
  }
  const doc = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: { generateName: `${o.name}-` },
    spec: { entrypoint: 'main', arguments: { parameters: workflowParams }, templates: [...dagTemplates, ...containers] },
  }
  return `${o.header.map((l) => `# ${l}`.trimEnd()).join('\n')}\n${toYaml(doc)}`
}

/** Argo's depends for a step: each fixed parent succeeded, and one of each group of switch case ends did. */
function dependsOf(plan: FlowPlan, p: PlannedStep, deps: string[]): string {
  const inDag = (s: string) => taskInDag(plan, s, p.stack)
  const grouped = new Set(p.parentAny.flat().map(inDag))
  const parts = deps.filter((d) => !grouped.has(d)).map((d) => `${d}.Succeeded`)
  for (const group of p.parentAny) {
    const tasks = [...new Set(group.map(inDag).filter((t): t is string => t !== undefined))]
    parts.push(tasks.length === 1 ? `${tasks[0]}.Succeeded` : `(${tasks.map((t) => `${t}.Succeeded`).join(' || ')})`)
  }
  return parts.join(' && ')
}

/** @resources as Kubernetes requests and limits; memory in MB as Metaflow counts it. */
function argoResources(p: PlannedStep): Obj | undefined {
  const r = p.resources
  if (!r) return undefined
  const amounts: Obj = {}
  if (r.cpu !== null) amounts.cpu = r.cpu
  if (r.memory !== null) amounts.memory = `${r.memory}M`
  const limits: Obj = { ...amounts }
  if (r.gpu !== null) limits['nvidia.com/gpu'] = r.gpu
  if (Object.keys(limits).length === 0) return undefined
  return Object.keys(amounts).length > 0 ? { requests: amounts, limits } : { limits }
}
