// Turns what Metaflow says about a flow into a plan both writers share: where each step runs, its placement flags, and its deploy-time options.
import { AgentError } from '../errors.js'
import type { FlowInfo, FlowParameter, FlowStep } from './flow-reader.js'

export interface StepRetry {
  /** every retry the pipeline grants: user code retries plus @catch's fallback retries */
  total: number
  /** Metaflow's --max-user-code-retries */
  userCode: number
  backoffSeconds: number
}

export interface PlannedStep {
  /** the Metaflow step name */
  step: string
  /** its task and template name in the pipeline: lowercase, dashes */
  task: string
  /** the foreach steps enclosing it, outermost first */
  stack: string[]
  isForeach: boolean
  isStart: boolean
  /** --parent STEP flags */
  parents: string[]
  /** --join-foreach STEP, for a foreach join */
  joinForeach?: string | undefined
  /** the foreach step whose split_count is --num-splits */
  numSplitsFrom?: string | undefined
  /** the foreach step whose loop item is --split-index (the first step inside a foreach) */
  splitIndexFrom?: string | undefined
  /** the foreach steps whose loop items make up --split-path, outermost first */
  splitPathFrom: string[]
  retry: StepRetry | null
  timeoutSeconds: number | null
  env: Record<string, string>
  resources: FlowStep['resources']
}

export interface FlowPlan {
  flowName: string
  /** topological order, parents first */
  steps: PlannedStep[]
  byStep: Map<string, PlannedStep>
  /** each foreach step's body: the one step it runs once per split */
  bodyOf: Map<string, string>
  parameters: FlowParameter[]
}

/** The names the writers use themselves; a flow parameter may not take them. */
export const RESERVED_INPUTS = ['code_url', 'code-url', 'run_uuid']

function refuse(step: string, construct: string, hint: string): AgentError {
  return new AgentError('usage', `failed to generate a pipeline for step ${step}: ${construct} is not supported`, { hint })
}

/** Lowercase with dashes, as KFP and Argo want task and template names. */
export function taskName(step: string): string {
  return step.toLowerCase().replace(/_/g, '-')
}

export function planFlow(flow: FlowInfo): FlowPlan {
  const steps = new Map(flow.steps.map((s) => [s.name, s]))
  const start = steps.get('start')
  if (!start) throw new AgentError('usage', `failed to generate a pipeline for ${flow.flowName}: the flow has no start step`, { hint: 'name its first step start' })
  const seenTasks = new Map<string, string>()
  for (const s of flow.steps) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.name)) throw refuse(s.name, 'a step name outside [A-Za-z0-9_]', 'rename the step')
    const t = taskName(s.name)
    const clash = seenTasks.get(t) ?? (t.startsWith('for-loop-') ? t : undefined)
    if (clash !== undefined) throw refuse(s.name, `a step name that clashes with ${clash} as a task name (${t})`, 'rename one of the steps')
    seenTasks.set(t, s.name)
    if (s.parallel) throw refuse(s.name, s.type === 'foreach' ? 'self.next(..., num_parallel=N) for @parallel' : '@parallel (a gang of tasks started together)', 'run it without @parallel, or as a foreach')
    if (s.type === 'split-switch') throw refuse(s.name, 'a switch (self.next({...}, condition=...))', 'use a static split, or run the flow with python flow.py run')
    if (!['start', 'linear', 'split', 'foreach', 'join', 'end'].includes(s.type)) throw refuse(s.name, `the step type ${s.type}`, 'use linear steps, static splits, foreaches and joins')
  }
  for (const p of flow.parameters) {
    if (RESERVED_INPUTS.includes(p.name)) throw new AgentError('usage', `failed to generate a pipeline for ${flow.flowName}: parameter ${p.name} clashes with the pipeline's own input`, { hint: 'rename the Parameter' })
    if (p.isFile) throw new AgentError('usage', `failed to generate a pipeline for ${flow.flowName}: parameter ${p.name} is an IncludeFile, which generate does not carry yet`, { hint: 'read the file in the start step, or pass its content as a str Parameter' })
  }

  // The foreach each foreach join closes, from Metaflow's matching_join.
  const foreachOfJoin = new Map<string, string>()
  const bodyOf = new Map<string, string>()
  for (const s of flow.steps) {
    if (s.type !== 'foreach') continue
    if (s.matchingJoin) foreachOfJoin.set(s.matchingJoin, s.name)
    if (s.next.length !== 1) throw refuse(s.name, 'a foreach with several next steps', 'send a foreach to one step')
    bodyOf.set(s.name, s.next[0] as string)
  }

  // Topological order from start, and each step's enclosing foreaches.
  const stack = new Map<string, string[]>([['start', []]])
  const order: string[] = []
  const pending = new Map(flow.steps.map((s) => [s.name, s.parents.length]))
  const ready = ['start']
  while (ready.length > 0) {
    const name = ready.shift() as string
    order.push(name)
    const s = steps.get(name) as FlowStep
    for (const n of s.next) {
      if (!stack.has(n)) {
        const f = foreachOfJoin.get(n)
        stack.set(n, f !== undefined ? [...(stack.get(f) ?? [])] : s.type === 'foreach' ? [...(stack.get(name) as string[]), name] : [...(stack.get(name) as string[])])
      }
      const left = (pending.get(n) ?? 0) - 1
      pending.set(n, left)
      if (left === 0) ready.push(n)
    }
  }
  for (const s of flow.steps) {
    if (!order.includes(s.name)) throw refuse(s.name, 'a step that start does not reach once every parent ran (a loop back to an earlier step)', 'remove the cycle')
  }

  const planned: PlannedStep[] = order.map((name) => {
    const s = steps.get(name) as FlowStep
    const st = stack.get(name) as string[]
    const p: PlannedStep = {
      step: name,
      task: taskName(name),
      stack: st,
      isForeach: s.type === 'foreach',
      isStart: name === 'start',
      parents: [],
      splitPathFrom: [],
      retry: null,
      timeoutSeconds: s.timeoutSeconds,
      env: s.env,
      resources: s.resources,
    }
    const foreach = foreachOfJoin.get(name)
    if (foreach !== undefined) {
      if (s.parents.length !== 1) throw refuse(name, 'a foreach join with several parents', 'join the foreach in one step')
      p.joinForeach = s.parents[0]
      p.numSplitsFrom = foreach
      p.splitPathFrom = st
    } else if (s.parents.length === 1 && steps.get(s.parents[0] as string)?.type === 'foreach') {
      p.parents = [...s.parents]
      p.splitIndexFrom = s.parents[0]
      p.splitPathFrom = st.slice(0, -1)
    } else {
      p.parents = [...s.parents]
      p.splitPathFrom = st
    }
    const total = s.userCodeRetries + s.errorRetries
    if (total > 0) p.retry = { total, userCode: s.userCodeRetries, backoffSeconds: Math.max(0, Math.round(s.minutesBetweenRetries * 60)) }
    return p
  })
  return { flowName: flow.flowName, steps: planned, byStep: new Map(planned.map((p) => [p.step, p])), bodyOf, parameters: flow.parameters }
}

/** The task in the DAG of `stack` that stands for `step`: the step's own task, or the loop that holds it. */
export function taskInDag(plan: FlowPlan, step: string, stack: readonly string[]): string | undefined {
  const p = plan.byStep.get(step) as PlannedStep
  if (p.stack.length < stack.length) return undefined
  for (let i = 0; i < stack.length; i++) if (p.stack[i] !== stack[i]) return undefined
  if (p.stack.length === stack.length) return p.task
  const foreach = p.stack[stack.length] as string
  return loopName(plan, foreach)
}

/** The loop over a foreach's splits: for-loop-<its body step>, as the KFP SDK names ParallelFor groups. */
export function loopName(plan: FlowPlan, foreach: string): string {
  return `for-loop-${taskName(plan.bodyOf.get(foreach) as string)}`
}

/** The tasks a step's task waits for in its own DAG: its parents (or the loops holding them) and the foreach it joins. */
export function dependenciesOf(plan: FlowPlan, p: PlannedStep): string[] {
  const deps = new Set<string>()
  for (const parent of [...p.parents, ...(p.joinForeach ? [p.joinForeach] : []), ...(p.numSplitsFrom ? [p.numSplitsFrom] : [])]) {
    const t = taskInDag(plan, parent, p.stack)
    if (t !== undefined) deps.add(t)
  }
  return [...deps]
}

/** Every DAG of the pipeline: the root ([]) and one per foreach body, keyed by the enclosing foreaches. */
export function dagsOf(plan: FlowPlan): { stack: string[]; steps: PlannedStep[]; loops: string[] }[] {
  const key = (s: readonly string[]) => s.join('/')
  const dags = new Map<string, { stack: string[]; steps: PlannedStep[]; loops: string[] }>([['', { stack: [], steps: [], loops: [] }]])
  for (const p of plan.steps) {
    if (!dags.has(key(p.stack))) dags.set(key(p.stack), { stack: p.stack, steps: [], loops: [] })
    dags.get(key(p.stack))?.steps.push(p)
    if (p.isForeach) dags.get(key(p.stack))?.loops.push(p.step)
  }
  return [...dags.values()]
}

/** A parameter's default as text, as `--param NAME=VALUE` and Argo parameters carry it. */
export function defaultText(p: FlowParameter): string | undefined {
  if (p.default === null) return undefined
  return typeof p.default === 'string' ? p.default : String(p.default)
}
