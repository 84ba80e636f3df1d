// Executes an Argo Workflow locally for run-local: DAG and container templates, withSequence loops, depends and when, and a refusal naming anything else.
import { dirname, join } from 'node:path'
import { AgentError } from '../errors.js'
import { argoDepends, argoWhen, dependsTasks } from './conditions.js'
import type { ArgoTaskResult } from './conditions.js'
import { forEachBounded, walkDag } from './local-dag.js'
import type { NodeStatus } from './local-dag.js'
import type { FormRunOptions } from './local-task.js'
import { onlyKeys, refuse, shapeReaders } from '../pipelines/template-shape.js'
import type { Obj } from '../pipelines/template-shape.js'

const { obj, list, str, strList } = shapeReaders('the workflow', 'pipeline-templates/*.argo.yaml')

const SPEC_KEYS = ['entrypoint', 'arguments', 'templates', 'serviceAccountName', 'parallelism', 'ttlStrategy', 'podGC']
const TEMPLATE_KEYS = ['name', 'inputs', 'outputs', 'dag', 'container', 'retryStrategy', 'metadata', 'activeDeadlineSeconds']
const TASK_KEYS = ['name', 'template', 'dependencies', 'depends', 'when', 'arguments', 'withSequence']
const CONTAINER_KEYS = ['image', 'command', 'args', 'env', 'resources', 'imagePullPolicy']

interface Scope {
  inputs: Record<string, string>
  tasks: Map<string, Record<string, string>>
  item?: string | undefined
}

/** The workflow parameter names, for run-local to map --code-url onto. */
export function argoParamNames(doc: Obj): string[] {
  const spec = obj(doc.spec, 'spec')
  return paramList(obj(spec.arguments ?? {}, 'spec.arguments').parameters, 'spec.arguments.parameters').map((p) => p.name)
}

export async function runArgo(doc: Obj, o: FormRunOptions): Promise<void> {
  onlyKeys(doc, ['apiVersion', 'kind', 'metadata'].concat('spec'), 'the workflow')
  if (doc.kind !== 'Workflow') throw refuse(`kind ${JSON.stringify(doc.kind)}`, 'write a Workflow (a WorkflowTemplate or CronWorkflow wraps the same spec)')
  const meta = obj(doc.metadata ?? {}, 'metadata')
  onlyKeys(meta, ['name', 'generateName', 'namespace', 'labels', 'annotations'], 'metadata')
  const spec = obj(doc.spec, 'spec')
  onlyKeys(spec, SPEC_KEYS, 'spec')
  onlyKeys(obj(spec.arguments ?? {}, 'spec.arguments'), ['parameters'], 'spec.arguments')
  const templates = new Map<string, Obj>()
  for (const t of list(spec.templates, 'spec.templates')) {
    const tpl = obj(t, 'a template')
    onlyKeys(tpl, TEMPLATE_KEYS, `template ${String(tpl.name)}`)
    templates.set(str(tpl.name, 'template name'), tpl)
  }

  const workflow = workflowValues(spec, meta, o)
  const cap = typeof spec.parallelism === 'number' && spec.parallelism > 0 ? spec.parallelism : Infinity
  const parallelism = Math.min(cap, o.parallelism)

  /** Replaces every {{…}} the scope knows; refuses the rest by name. */
  const fill = (text: string, scope: Scope, where: string): string =>
    text.replace(/\{\{([^}]*)\}\}/g, (whole, inner: string) => {
      const key = inner.trim()
      if (key === 'item' && scope.item !== undefined) return scope.item
      if (key === 'retries') return '0'
      if (workflow.has(key)) return workflow.get(key) as string
      let m = /^inputs\.parameters\.([\w-]+)$/.exec(key)
      if (m) {
        const v = scope.inputs[m[1] as string]
        if (v === undefined) throw new AgentError('usage', `failed to read the workflow: ${where} uses ${whole}, which its template does not declare`, { hint: 'add it to inputs.parameters' })
        return v
      }
      m = /^tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)$/.exec(key)
      if (m) {
        const out = scope.tasks.get(m[1] as string)
        if (out === undefined) throw refuse(`${whole} in ${where} (not a finished container task of this DAG without a loop)`, 'read outputs of tasks listed in dependencies; run-local does not aggregate loop outputs')
        const v = out[m[2] as string]
        if (v === undefined) throw new AgentError('usage', `failed to read the workflow: ${where} uses ${whole}, which that task does not output`, { hint: 'add it to the template\'s outputs.parameters' })
        return v
      }
      throw refuse(`the variable ${whole} in ${where}`, 'use {{workflow.uid}}, {{workflow.parameters.X}}, {{inputs.parameters.X}}, {{tasks.T.outputs.parameters.X}}, {{item}} or {{retries}}')
    })

  const runTemplate = async (name: string, args: Record<string, string>, indices: readonly number[], label: string): Promise<Record<string, string>> => {
    const tpl = templates.get(name)
    if (!tpl) throw new AgentError('usage', `failed to read the workflow: template ${name} does not exist`, { hint: 'fix the template name' })
    const inputs = templateInputs(tpl, name, args)
    if (tpl.dag !== undefined) {
      if (tpl.outputs !== undefined) throw refuse(`outputs on the DAG template ${name}`, 'read outputs from container tasks')
      await runDagTemplate(tpl, name, inputs, indices)
      return {}
    }
    if (tpl.container !== undefined) return runContainer(tpl, name, inputs, label)
    throw refuse(`the template ${name}, which is neither a dag nor a container (steps, script, resource, … are not supported)`, 'use dag and container templates')
  }

  const runDagTemplate = async (tpl: Obj, name: string, inputs: Record<string, string>, indices: readonly number[]) => {
    const dag = obj(tpl.dag, `template ${name}.dag`)
    onlyKeys(dag, ['tasks'], `template ${name}.dag`)
    const scope: Scope = { inputs, tasks: new Map() }
    const nodes = list(dag.tasks, `template ${name}.dag.tasks`).map((raw) => {
      const task = obj(raw, `a task of ${name}`)
      const taskName = str(task.name, `a task name in ${name}`)
      const where = `task ${taskName}`
      onlyKeys(task, TASK_KEYS, where)
      if (task.dependencies !== undefined && task.depends !== undefined) throw new AgentError('usage', `failed to read the workflow: ${where} has both dependencies and depends`, { hint: 'use one of them' })
      const depends = task.depends === undefined ? undefined : str(task.depends, `${where}.depends`)
      const deps = depends === undefined ? [...new Set(strList(task.dependencies ?? [], `${where}.dependencies`))] : dependsTasks(depends)
      return {
        name: taskName,
        deps,
        run: async (status: ReadonlyMap<string, NodeStatus>) => {
          const results = new Map<string, ArgoTaskResult>(deps.map((d) => [d, RESULT[status.get(d) ?? 'omitted']]))
          // dependencies: [A] is Argo's depends "A.Succeeded || A.Skipped || A.Daemoned" (a bare name); a task whose depends is false is Omitted.
          const ok = depends === undefined ? deps.every((d) => argoDepends(d, results, where)) : argoDepends(depends, results, where)
          if (!ok) return 'omitted' as const
          if (task.when !== undefined && !argoWhen(fill(str(task.when, `${where}.when`), scope, `${where}.when`), where)) return 'skipped' as const
          onlyKeys(obj(task.arguments ?? {}, `${where}.arguments`), ['parameters'], `${where}.arguments`)
          const argSpecs = paramList(obj(task.arguments ?? {}, `${where}.arguments`).parameters, `${where}.arguments.parameters`)
          const target = str(task.template, `${where}.template`)
          const argsFor = (item?: string) => {
            const s: Scope = { ...scope, item }
            return Object.fromEntries(argSpecs.map((p) => [p.name, fill(p.value ?? '', s, where)]))
          }
          if (task.withSequence === undefined) {
            const out = await runTemplate(target, argsFor(), indices, indices.length ? `${taskName}[${indices.join(',')}]` : taskName)
            scope.tasks.set(taskName, out)
            return
          }
          const seq = obj(task.withSequence, `${where}.withSequence`)
          onlyKeys(seq, ['count'], `${where}.withSequence`)
          const countText = fill(String(seq.count), scope, `${where}.withSequence.count`).trim()
          if (!/^\d+$/.test(countText)) throw new AgentError('usage', `failed to run ${where}: withSequence count ${JSON.stringify(countText)} is not a whole number`, { hint: 'count over a split_count output' })
          await forEachBounded(Number(countText), parallelism, (i) =>
            runTemplate(target, argsFor(String(i)), [...indices, i], `${taskName}[${[...indices, i].join(',')}]`).then(() => undefined))
        },
      }
    })
    await walkDag(nodes, `template ${name}`)
  }

  const runContainer = async (tpl: Obj, name: string, inputs: Record<string, string>, label: string): Promise<Record<string, string>> => {
    const container = obj(tpl.container, `template ${name}.container`)
    onlyKeys(container, CONTAINER_KEYS, `template ${name}.container`)
    const outputs = obj(tpl.outputs ?? {}, `template ${name}.outputs`)
    onlyKeys(outputs, ['parameters'], `template ${name}.outputs`)
    const dir = await o.tasks.taskDir()
    // A pod's filesystem is its own: locally every container path of an output (and its
    // folder, as in --output-dir) moves under this task's private folder.
    const local = (p: string) => join(dir, 'fs', p)
    const files: Record<string, string> = {}
    const defaults: Record<string, string> = {}
    const prefixes = new Set<string>()
    for (const raw of list(outputs.parameters ?? [], `template ${name}.outputs.parameters`)) {
      const p = obj(raw, `template ${name} output`)
      onlyKeys(p, ['name', 'valueFrom'], `template ${name} output`)
      const pname = str(p.name, `template ${name} output name`)
      const from = obj(p.valueFrom, `output ${pname}.valueFrom`)
      onlyKeys(from, ['path', 'default'], `output ${pname}.valueFrom`)
      const path = str(from.path, `output ${pname}.valueFrom.path`)
      if (!path.startsWith('/')) throw refuse(`the relative output path ${path} in template ${name}`, 'use an absolute path such as /tmp/outputs/task_id')
      files[pname] = local(path)
      prefixes.add(path).add(dirname(path))
      if (from.default !== undefined) defaults[pname] = String(from.default)
    }
    const scope: Scope = { inputs, tasks: new Map() }
    const where = `template ${name}`
    const mapPath = (arg: string) => {
      for (const p of prefixes) if (arg === p || arg.startsWith(`${p}/`)) return local(arg)
      return arg
    }
    const env: Record<string, string> = {}
    for (const e of list(container.env ?? [], `${where}.env`)) {
      const entry = obj(e, `${where}.env`)
      onlyKeys(entry, ['name', 'value'], `${where}.env`)
      env[str(entry.name, `${where}.env name`)] = fill(str(entry.value ?? '', `${where}.env value`), scope, where)
    }
    const values = await o.tasks.run({
      label,
      command: strList(container.command ?? [], `${where}.command`).map((a) => fill(a, scope, where)),
      args: strList(container.args ?? [], `${where}.args`).map((a) => mapPath(fill(a, scope, where))),
      env,
      outputs: files,
      defaults,
    })
    // Argo trims one trailing newline from a parameter file.
    return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.endsWith('\n') ? v.slice(0, -1) : v]))
  }

  const entry = str(spec.entrypoint, 'spec.entrypoint')
  await runTemplate(entry, {}, [], entry)
}

const RESULT: Record<NodeStatus, ArgoTaskResult> = { succeeded: 'Succeeded', skipped: 'Skipped', omitted: 'Omitted' }

function workflowValues(spec: Obj, meta: Obj, o: FormRunOptions): Map<string, string> {
  const declared = paramList(obj(spec.arguments ?? {}, 'spec.arguments').parameters, 'spec.arguments.parameters')
  for (const name of Object.keys(o.params)) {
    if (!declared.some((p) => p.name === name)) {
      throw new AgentError('usage', `failed to set workflow parameter ${name}: the workflow has no such parameter`, { hint: `its parameters are: ${declared.map((p) => p.name).join(', ') || 'none'}` })
    }
  }
  const values = new Map<string, string>([['workflow.uid', o.runUuid]])
  const name = typeof meta.name === 'string' ? meta.name : `${typeof meta.generateName === 'string' ? meta.generateName : 'workflow-'}${o.runUuid.slice(0, 5)}`
  values.set('workflow.name', name)
  for (const p of declared) {
    const v = o.params[p.name] ?? p.value
    if (v === undefined) throw new AgentError('usage', `failed to start the workflow: parameter ${p.name} has no value`, { hint: `pass --param ${p.name}=VALUE` })
    values.set(`workflow.parameters.${p.name}`, v)
  }
  return values
}

function templateInputs(tpl: Obj, name: string, args: Record<string, string>): Record<string, string> {
  const inputs = obj(tpl.inputs ?? {}, `template ${name}.inputs`)
  onlyKeys(inputs, ['parameters'], `template ${name}.inputs`)
  const declared = paramList(inputs.parameters, `template ${name}.inputs.parameters`)
  for (const key of Object.keys(args)) {
    if (!declared.some((p) => p.name === key)) throw new AgentError('usage', `failed to read the workflow: template ${name} gets parameter ${key} but does not declare it`, { hint: 'add it to its inputs.parameters' })
  }
  const out: Record<string, string> = {}
  for (const p of declared) {
    const v = args[p.name] ?? p.value
    if (v === undefined) throw new AgentError('usage', `failed to read the workflow: template ${name} needs parameter ${p.name}, which its caller does not pass`, { hint: 'pass it in the task\'s arguments' })
    out[p.name] = v
  }
  return out
}

/** A parameters list: name plus value (or default); other fields are refused. */
function paramList(raw: unknown, where: string): { name: string; value?: string | undefined }[] {
  return list(raw ?? [], where).map((e) => {
    const p = obj(e, where)
    onlyKeys(p, ['name', 'value', 'default', 'description'], `a parameter in ${where}`)
    const v = p.value ?? p.default
    return { name: str(p.name, `${where} name`), value: v === undefined ? undefined : String(v) }
  })
}
