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
  /** --parent-any A,B groups: whichever one of these parents ran (the ends of a switch's cases) */
  parentAny: string[][]
  /** --join-foreach STEP (or A,B when the foreach body ends in a switch's cases), for a foreach join */
  joinForeach?: string[] | undefined
  /** the foreach step whose split_count is --num-splits */
  numSplitsFrom?: string | undefined
  /** the foreach step whose loop item is --split-index (the first step inside a foreach) */
  splitIndexFrom?: string | undefined
  /** the foreach steps whose loop items make up --split-path, outermost first */
  splitPathFrom: string[]
  /** a switch step: the steps its cases lead to */
  switchCases?: string[] | undefined
  /** the switch cases this step runs under, outermost first: it runs only when each switch took its case */
  guard: SwitchCase[]
  retry: StepRetry | null
  timeoutSeconds: number | null
  env: Record<string, string>
  resources: FlowStep['resources']
}

/** A switch step and the step it went to. */
export interface SwitchCase {
  switch: string
  case: string
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
  // The graph's own start step: the one no step leads to (Metaflow >= 2.19.22 lets @step(start=True) name it anything).
  const roots = flow.steps.filter((s) => s.parents.length === 0)
  if (roots.length !== 1) throw new AgentError('usage', `failed to generate a pipeline for ${flow.flowName}: the flow has no single start step (${roots.map((r) => r.name).join(', ') || 'none'})`, { hint: 'give it one start step, named start or marked @step(start=True)' })
  const startName = (roots[0] as FlowStep).name
  const seenTasks = new Map<string, string>()
  for (const s of flow.steps) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s.name)) throw refuse(s.name, 'a step name outside [A-Za-z0-9_]', 'rename the step')
    const t = taskName(s.name)
    const clash = seenTasks.get(t) ?? (t.startsWith('for-loop-') || t.startsWith('condition-') ? t : undefined)
    if (clash !== undefined) throw refuse(s.name, `a step name that clashes with ${clash} as a task name (${t})`, 'rename one of the steps')
    seenTasks.set(t, s.name)
    if (s.parallel) throw refuse(s.name, s.type === 'foreach' ? 'self.next(..., num_parallel=N) for @parallel' : '@parallel (a gang of tasks started together)', 'run it without @parallel, or as a foreach')
    // Why refused: KFP v2 has no loop back to a task, and a recursive Argo template would need per-iteration task ids.
    if (s.type === 'split-switch' && s.next.includes(s.name)) throw refuse(s.name, 'a recursive switch (a step whose switch leads back to itself)', 'loop inside the step, or run the flow with python flow.py run')
    if (!['start', 'linear', 'split', 'foreach', 'join', 'end', 'split-switch'].includes(s.type)) throw refuse(s.name, `the step type ${s.type}`, 'use linear steps, static splits, foreaches, joins and switches')
  }
  for (const p of flow.parameters) {
    if (RESERVED_INPUTS.includes(p.name)) throw new AgentError('usage', `failed to generate a pipeline for ${flow.flowName}: parameter ${p.name} clashes with the pipeline's own input`, { hint: 'rename the Parameter' })
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
  const stack = new Map<string, string[]>([[startName, []]])
  const order: string[] = []
  const pending = new Map(flow.steps.map((s) => [s.name, s.parents.length]))
  const ready = [startName]
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
    if (!order.includes(s.name)) throw refuse(s.name, `a step that ${startName} does not reach once every parent ran (a loop back to an earlier step)`, 'remove the cycle')
  }

  // Which switch cases each step runs under, and which of its parents are fixed and which are
  // "whichever ran" groups (the ends of one switch's cases).
  const guards = new Map<string, SwitchCase[]>()
  const fixedOf = new Map<string, string[]>()
  const anyOf = new Map<string, string[][]>()
  for (const name of order) {
    const s = steps.get(name) as FlowStep
    const edges = s.parents.map((parent) => {
      const ps = steps.get(parent) as FlowStep
      const g = guards.get(parent) as SwitchCase[]
      return { parent, guard: ps.type === 'split-switch' ? [...g, { switch: parent, case: name }] : g }
    })
    if (edges.length > 1) {
      const sw = edges.find((e) => steps.get(e.parent)?.type === 'split-switch')
      // Metaflow's "skip" case: which parent ran would not say whether the switch chose this step.
      if (sw) throw refuse(name, `a switch case that other steps also lead to (${sw.parent} goes straight to ${name})`, `put a step of its own between ${sw.parent} and ${name}`)
    }
    let common = edges[0]?.guard ?? []
    for (const e of edges) common = common.slice(0, sharedCases(common, e.guard))
    const fixed: string[] = []
    const groups = new Map<string, { parent: string; guard: SwitchCase[] }[]>()
    for (const e of edges) {
      if (e.guard.length === common.length) {
        fixed.push(e.parent)
        continue
      }
      const key = (e.guard[common.length] as SwitchCase).switch
      groups.set(key, [...(groups.get(key) ?? []), e])
    }
    for (const members of groups.values()) {
      checkCases(name, members, common.length, steps)
      for (const m of members) {
        if (!sameList(stack.get(m.parent) as string[], stack.get(name) as string[]) && foreachOfJoin.get(name) === undefined) throw refuse(name, `a step where the cases of a switch meet from another foreach level (${m.parent})`, 'meet the cases inside the foreach, then join it')
      }
    }
    guards.set(name, common)
    fixedOf.set(name, fixed)
    anyOf.set(name, [...groups.values()].map((ms) => ms.map((m) => m.parent)))
  }

  const planned: PlannedStep[] = order.map((name) => {
    const s = steps.get(name) as FlowStep
    const st = stack.get(name) as string[]
    const fixed = fixedOf.get(name) as string[]
    const any = anyOf.get(name) as string[][]
    const p: PlannedStep = {
      step: name,
      task: taskName(name),
      stack: st,
      isForeach: s.type === 'foreach',
      isStart: name === startName,
      parents: [],
      parentAny: [],
      splitPathFrom: [],
      guard: guards.get(name) as SwitchCase[],
      retry: null,
      timeoutSeconds: s.timeoutSeconds,
      env: s.env,
      resources: s.resources,
    }
    if (s.type === 'split-switch') p.switchCases = [...s.next]
    const foreach = foreachOfJoin.get(name)
    if (foreach !== undefined) {
      const ends = fixed.length === 1 && any.length === 0 ? fixed : fixed.length === 0 && any.length === 1 ? (any[0] as string[]) : undefined
      if (ends === undefined) throw refuse(name, 'a foreach join with several parents', 'join the foreach in one step')
      p.joinForeach = ends
      p.numSplitsFrom = foreach
      p.splitPathFrom = st
    } else if (s.parents.length === 1 && steps.get(s.parents[0] as string)?.type === 'foreach') {
      p.parents = [...s.parents]
      p.splitIndexFrom = s.parents[0]
      p.splitPathFrom = st.slice(0, -1)
    } else {
      p.parents = fixed
      p.parentAny = any
      p.splitPathFrom = st
    }
    const total = s.userCodeRetries + s.errorRetries
    if (total > 0) p.retry = { total, userCode: s.userCodeRetries, backoffSeconds: Math.max(0, Math.round(s.minutesBetweenRetries * 60)) }
    return p
  })
  return { flowName: flow.flowName, steps: planned, byStep: new Map(planned.map((p) => [p.step, p])), bodyOf, parameters: flow.parameters }
}

/** How many switch cases two guards share from the outermost. */
function sharedCases(a: readonly SwitchCase[], b: readonly SwitchCase[]): number {
  let i = 0
  while (i < a.length && i < b.length && a[i]?.switch === b[i]?.switch && a[i]?.case === b[i]?.case) i++
  return i
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * The parents of one "whichever ran" group must be exactly one per path through the switches
 * below `depth`: every case of each switch leads to the step, and no two of them can both run.
 */
function checkCases(step: string, members: { parent: string; guard: SwitchCase[] }[], depth: number, steps: Map<string, FlowStep>): void {
  if (members.length === 1 && (members[0] as { guard: SwitchCase[] }).guard.length === depth) return
  const both = () => refuse(step, `a step two of whose parents can both run (${members.map((m) => m.parent).join(', ')}): it joins a split and meets a switch's cases at once`, 'meet the cases in a step of their own first')
  if (members.some((m) => m.guard.length === depth)) throw both()
  const sw = (members[0]?.guard[depth] as SwitchCase).switch
  if (members.some((m) => m.guard[depth]?.switch !== sw)) throw both()
  const byCase = new Map<string, { parent: string; guard: SwitchCase[] }[]>()
  for (const m of members) {
    const c = (m.guard[depth] as SwitchCase).case
    byCase.set(c, [...(byCase.get(c) ?? []), m])
  }
  const missing = (steps.get(sw) as FlowStep).next.filter((c) => !byCase.has(c))
  if (missing.length > 0) throw refuse(step, `a step that only some cases of switch ${sw} lead to (not ${missing.join(', ')})`, `lead every case of ${sw} to ${step}, or let them meet in an earlier step`)
  for (const ms of byCase.values()) checkCases(step, ms, depth + 1, steps)
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
  for (const parent of [...p.parents, ...p.parentAny.flat(), ...(p.joinForeach ?? []), ...(p.numSplitsFrom ? [p.numSplitsFrom] : [])]) {
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
