// Reads how a template wires each Metaflow step (parents, loops, split flags, ordering) and checks it against Metaflow's own graph.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parse, parseAllDocuments } from 'yaml'
import { PYTHON } from './paths'

const run = promisify(execFile)
type Obj = Record<string, any>

/** Where a value comes from: a loop item over a step's splits, a step's output, or something else. */
type Origin = { kind: 'item'; step: string } | { kind: 'output'; step: string; key: string } | { kind: 'other'; text: string }

export interface StepWiring {
  step: string
  parents: string[]
  joinForeach?: string
  /** the foreach step whose split_count is --num-splits */
  numSplitsFrom?: string
  /** the foreach step whose loop item is --split-index */
  splitIndexFrom?: string
  /** the foreach steps whose loop items make up --split-path, outermost first */
  splitPathFrom: string[]
  /** the foreach steps the enclosing loops iterate over, outermost first */
  loops: string[]
  /** steps whose tasks finish before this one starts */
  after: Set<string>
}

/** The graph Metaflow itself reports: `python flow.py --quiet output-raw --json`. */
export interface MetaflowGraph {
  [step: string]: { type: string; next: string[]; matching_join?: string }
}

export async function metaflowGraph(flowFile: string): Promise<MetaflowGraph> {
  // Run in a temp dir: Metaflow creates .metaflow/ in its cwd, which left an empty one in the repository.
  const cwd = mkdtempSync(join(tmpdir(), 'mfkfp-graph-'))
  try {
    const { stdout } = await run(PYTHON, [resolve(flowFile), '--quiet', 'output-raw', '--json'], { cwd, env: { ...process.env, METAFLOW_USER: 'test' }, timeout: 120_000 })
    return (JSON.parse(stdout) as { graph: MetaflowGraph }).graph
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
}

function argsOf(args: string[], fill: (text: string) => Origin): Omit<StepWiring, 'loops' | 'after'> {
  const w: Omit<StepWiring, 'loops' | 'after'> = { step: args[1] as string, parents: [], splitPathFrom: [] }
  const stepOf = (o: Origin, what: string) => {
    if (o.kind === 'other') throw new Error(`${w.step}: ${what} comes from ${o.text}, not from a loop or a step output`)
    return o.step
  }
  for (let i = 2; i < args.length; i++) {
    const v = args[i + 1] as string
    switch (args[i]) {
      case '--parent': w.parents.push(v); i++; break
      case '--join-foreach': w.joinForeach = v; i++; break
      case '--num-splits': {
        const o = fill(v)
        if (o.kind !== 'output' || o.key !== 'split_count') throw new Error(`${w.step}: --num-splits is not a split_count output`)
        w.numSplitsFrom = o.step; i++; break
      }
      case '--split-index': {
        const o = fill(v)
        if (o.kind !== 'item') throw new Error(`${w.step}: --split-index is not a loop item`)
        w.splitIndexFrom = stepOf(o, '--split-index'); i++; break
      }
      case '--split-path': w.splitPathFrom = v.split(',').map((part) => stepOf(fill(part), '--split-path')); i++; break
    }
  }
  return w
}

/** The wiring of every container task of a KFP v2 pipeline. */
export function kfpWiring(text: string): StepWiring[] {
  // The pipeline is the first document; generate puts @timeout's PlatformSpec in a second.
  const doc = (parseAllDocuments(text) as unknown as { toJS(): unknown }[])[0]?.toJS() as Obj
  const out: StepWiring[] = []
  const stepOfTask = (comp: Obj): string | undefined => {
    if (!comp.executorLabel) return undefined
    return doc.deploymentSpec.executors[comp.executorLabel].container.args[1]
  }
  /** all steps a (container or DAG) task runs, for ordering */
  const stepsUnder = (comp: Obj): string[] => {
    const s = stepOfTask(comp)
    if (s) return [s]
    return Object.values(comp.dag.tasks as Obj).flatMap((t: Obj) => stepsUnder(doc.components[t.componentRef.name]))
  }
  const walk = (comp: Obj, scope: Record<string, Origin>, loops: string[], inherited: Set<string>) => {
    const tasks = comp.dag.tasks as Obj
    const producerStep: Record<string, string> = {}
    for (const [name, t] of Object.entries(tasks)) {
      const s = stepOfTask(doc.components[(t as Obj).componentRef.name])
      if (s) producerStep[name] = s
    }
    for (const t of Object.values(tasks) as Obj[]) {
      const c = doc.components[t.componentRef.name]
      const inputs: Record<string, Origin> = {}
      for (const [k, spec] of Object.entries((t.inputs?.parameters ?? {}) as Obj)) {
        if (spec.componentInputParameter) inputs[k] = scope[spec.componentInputParameter] ?? { kind: 'other', text: spec.componentInputParameter }
        else if (spec.taskOutputParameter) {
          inputs[k] = { kind: 'output', step: producerStep[spec.taskOutputParameter.producerTask] ?? '?', key: spec.taskOutputParameter.outputParameterKey }
        } else inputs[k] = { kind: 'other', text: JSON.stringify(spec) }
      }
      const after = new Set(inherited)
      for (const d of (t.dependentTasks ?? []) as string[]) for (const s of stepsUnder(doc.components[tasks[d].componentRef.name])) after.add(s)
      if (t.parameterIterator) {
        const items = inputs[t.parameterIterator.items.inputParameter]
        if (items?.kind !== 'output' || items.key !== 'splits') throw new Error(`loop ${t.taskInfo?.name} does not iterate over a splits output`)
        walk(c, { ...inputs, [t.parameterIterator.itemInput]: { kind: 'item', step: items.step } }, [...loops, items.step], after)
      } else if (c.dag) {
        walk(c, inputs, loops, after)
      } else {
        const args = doc.deploymentSpec.executors[c.executorLabel].container.args as string[]
        const fill = (text: string): Origin => {
          const m = /^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$/.exec(text)
          return m ? inputs[m[1] as string] ?? { kind: 'other', text } : { kind: 'other', text }
        }
        out.push({ ...argsOf(args, fill), loops, after })
      }
    }
  }
  const rootScope = Object.fromEntries(Object.keys(doc.root.inputDefinitions?.parameters ?? {}).map((k) => [k, { kind: 'other', text: k } as Origin]))
  walk(doc.root, rootScope, [], new Set())
  return out
}

/** The wiring of every container task of an Argo Workflow. */
export function argoWiring(text: string): StepWiring[] {
  const doc = parse(text) as Obj
  const templates = new Map<string, Obj>((doc.spec.templates as Obj[]).map((t) => [t.name, t]))
  const out: StepWiring[] = []
  const stepsUnder = (name: string): string[] => {
    const t = templates.get(name) as Obj
    if (t.container) return [t.container.args[1]]
    return (t.dag.tasks as Obj[]).flatMap((x) => stepsUnder(x.template))
  }
  const walk = (name: string, scope: Record<string, Origin>, loops: string[], inherited: Set<string>) => {
    const tpl = templates.get(name) as Obj
    if (tpl.container) {
      const fill = (text: string): Origin => {
        const m = /^\{\{inputs\.parameters\.([\w-]+)\}\}$/.exec(text)
        return m ? scope[m[1] as string] ?? { kind: 'other', text } : { kind: 'other', text }
      }
      out.push({ ...argsOf(tpl.container.args, fill), loops, after: inherited })
      return
    }
    const tasks = tpl.dag.tasks as Obj[]
    const byName = new Map(tasks.map((t) => [t.name as string, t]))
    for (const t of tasks) {
      const origin = (text: string, loopStep?: string): Origin => {
        if (text === '{{item}}' && loopStep) return { kind: 'item', step: loopStep }
        let m = /^\{\{inputs\.parameters\.([\w-]+)\}\}$/.exec(text)
        if (m) return scope[m[1] as string] ?? { kind: 'other', text }
        m = /^\{\{tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)\}\}$/.exec(text)
        if (m) return { kind: 'output', step: stepsUnder(byName.get(m[1] as string)?.template)[0] as string, key: m[2] as string }
        return { kind: 'other', text }
      }
      let loopStep: string | undefined
      if (t.withSequence) {
        const o = origin(t.withSequence.count)
        if (o.kind !== 'output' || o.key !== 'split_count') throw new Error(`task ${t.name} does not loop over a split_count output`)
        loopStep = o.step
      }
      const args = Object.fromEntries(((t.arguments?.parameters ?? []) as Obj[]).map((p) => [p.name, origin(p.value, loopStep)]))
      const after = new Set(inherited)
      for (const d of (t.dependencies ?? []) as string[]) for (const s of stepsUnder(byName.get(d)?.template)) after.add(s)
      walk(t.template, args, loopStep ? [...loops, loopStep] : loops, after)
    }
  }
  walk(doc.spec.entrypoint, {}, [], new Set())
  return out
}

/** Every way the template's wiring differs from Metaflow's graph; empty when they match. */
export function wiringProblems(wiring: StepWiring[], graph: MetaflowGraph): string[] {
  const problems: string[] = []
  const parentsOf: Record<string, string[]> = Object.fromEntries(Object.keys(graph).map((s) => [s, []]))
  for (const [s, node] of Object.entries(graph)) for (const n of node.next) parentsOf[n]?.push(s)
  // The foreach steps enclosing each step, as Metaflow's graph nests them.
  const stack: Record<string, string[]> = { start: [] }
  const joinOf: Record<string, string> = {}
  for (const [s, node] of Object.entries(graph)) if (node.type === 'split-foreach' && node.matching_join) joinOf[node.matching_join] = s
  const queue = ['start']
  while (queue.length > 0) {
    const s = queue.shift() as string
    for (const n of graph[s]?.next ?? []) {
      if (stack[n]) continue
      const foreach = joinOf[n]
      stack[n] = foreach !== undefined ? (stack[foreach] as string[]) : graph[s]?.type === 'split-foreach' ? [...(stack[s] as string[]), s] : (stack[s] as string[])
      queue.push(n)
    }
  }
  const seen = wiring.map((w) => w.step)
  for (const s of Object.keys(graph)) if (seen.filter((x) => x === s).length !== 1) problems.push(`step ${s} runs in ${seen.filter((x) => x === s).length} tasks, not 1`)
  for (const s of seen) if (!graph[s]) problems.push(`task runs step ${s}, which the flow does not have`)
  const eq = (a: readonly string[], b: readonly string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort())
  const same = (a: readonly string[], b: readonly string[]) => JSON.stringify(a) === JSON.stringify(b)
  for (const w of wiring) {
    const s = w.step
    const parents = parentsOf[s] ?? []
    const enclosing = stack[s] ?? []
    const expect = (ok: boolean, what: string) => ok || problems.push(`${s}: ${what}`)
    expect(same(w.loops, enclosing), `runs inside loops over [${w.loops}], Metaflow nests it in foreaches [${enclosing}]`)
    for (const p of parents) expect(w.after.has(p), `may start before its parent ${p} finished`)
    const foreach = joinOf[s]
    if (foreach !== undefined) {
      expect(w.joinForeach === parents[0] && parents.length === 1, `joins foreach ${w.joinForeach}, Metaflow's parent is ${parents}`)
      expect(w.numSplitsFrom === foreach, `--num-splits comes from ${w.numSplitsFrom}, not from the foreach ${foreach}`)
      expect(w.parents.length === 0, 'a foreach join passes --parent')
      expect(same(w.splitPathFrom, enclosing), `--split-path from [${w.splitPathFrom}], expected [${enclosing}]`)
      expect(w.splitIndexFrom === undefined, 'a foreach join passes --split-index')
    } else {
      expect(w.joinForeach === undefined, `joins foreach ${w.joinForeach}, but is no foreach join`)
      expect(eq(w.parents, parents), `has --parent [${w.parents}], Metaflow's parents are [${parents}]`)
      const first = parents.length === 1 && graph[parents[0] as string]?.type === 'split-foreach'
      if (first) {
        expect(w.splitIndexFrom === parents[0], `--split-index from ${w.splitIndexFrom}, expected the loop over ${parents[0]}`)
        expect(same(w.splitPathFrom, enclosing.slice(0, -1)), `--split-path from [${w.splitPathFrom}], expected [${enclosing.slice(0, -1)}]`)
      } else {
        expect(w.splitIndexFrom === undefined, '--split-index outside the first step of a foreach')
        expect(same(w.splitPathFrom, enclosing), `--split-path from [${w.splitPathFrom}], expected [${enclosing}]`)
      }
    }
  }
  return problems
}
