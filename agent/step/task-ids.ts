// Deterministic task ids and input paths from a step's name and its position in the enclosing foreaches.
import { AgentError } from '../errors.js'
import { FORBIDDEN_ID_CHARS, compressInputPaths } from './input-paths.js'

/** Task id of the `_parameters` task that `init` writes and the start step reads. */
export const PARAMS_TASK_ID = 'params'

export interface Placement {
  runId: string
  step: string
  /** foreach indices above this task's own --split-index, outermost first */
  splitPath: readonly number[]
  /** Metaflow's --split-index: set only on the first step inside a foreach */
  splitIndex?: number | undefined
  /** parent steps, named by step (linear steps and static joins) */
  parents: readonly string[]
  /** groups of candidate parents (--parent-any): of each group, exactly one ran at the parents' position, e.g. the cases of a switch */
  parentAny?: readonly (readonly string[])[] | undefined
  /**
   * a foreach join: all `numSplits` tasks one level deeper, each of `steps[0]`, or when the
   * body ends in a switch, of whichever of `steps` ran at that split
   */
  joinForeach?: { steps: readonly string[]; numSplits: number } | undefined
}

/** The full position of a task: the split path, then its own split index. */
export function positionOf(p: Pick<Placement, 'splitPath' | 'splitIndex'>): number[] {
  return p.splitIndex === undefined ? [...p.splitPath] : [...p.splitPath, p.splitIndex]
}

/**
 * `<step>` or `<step>-<i0>-<i1>…`. Step names are Python identifiers, so the id is never
 * numeric and never holds `/ , : !`; it depends only on the graph position, so a retried
 * task gets the same id and a join can name every parent from a split count.
 */
export function taskIdFor(step: string, position: readonly number[]): string {
  return position.length === 0 ? step : `${step}-${position.join('-')}`
}

/** True when the step has no parents: the start step, whose input is the parameters task. */
export function isStartPlacement(p: Placement): boolean {
  return p.parents.length === 0 && (p.parentAny ?? []).length === 0 && p.joinForeach === undefined
}

/**
 * The position of a task's parents: the split path. A linear step sits where its parents do;
 * the first step inside a foreach (--split-index) sits one level below its parent, the foreach step.
 */
export function parentPositionOf(p: Pick<Placement, 'splitPath'>): number[] {
  return [...p.splitPath]
}

/** True when the input paths follow from the flags alone; otherwise resolveInputPaths must ask the datastore which candidates ran. */
export function isFixedPlacement(p: Placement): boolean {
  return (p.parentAny ?? []).length === 0 && (p.joinForeach === undefined || p.joinForeach.steps.length === 1)
}

/** The parents' pathspecs (`run/step/task`) that the step reads, for a placement whose parents are fixed. */
export function inputPathsFor(p: Placement): string[] {
  if (!isFixedPlacement(p)) throw new Error('the placement names candidate parents; resolve them with resolveInputPaths')
  const position = positionOf(p)
  if (p.joinForeach) {
    const { steps, numSplits } = p.joinForeach
    const step = steps[0] as string
    return Array.from({ length: numSplits }, (_, i) => `${p.runId}/${step}/${taskIdFor(step, [...position, i])}`)
  }
  if (p.parents.length === 0) return [`${p.runId}/_parameters/${PARAMS_TASK_ID}`]
  const parentPosition = parentPositionOf(p)
  return p.parents.map((step) => `${p.runId}/${step}/${taskIdFor(step, parentPosition)}`)
}

/** Input paths in Metaflow's compressed text form. */
export function inputPathsText(p: Placement): string {
  return compressInputPaths(inputPathsFor(p))
}

/**
 * What the datastore says of one candidate parent task: finished with _task_ok True and went
 * on to this step; finished but went on to another step; ran without succeeding (failed, or
 * still running); or never started.
 */
export type TaskOutcome = 'ok' | 'elsewhere' | 'failed' | 'absent'

const OUTCOME_TEXT: Record<Exclude<TaskOutcome, 'ok'>, string> = {
  elsewhere: 'went on to another step',
  failed: 'did not succeed',
  absent: 'never ran',
}

/** Candidates at one position of which exactly one must have finished. */
interface Choice {
  /** --parent-any a,b or --join-foreach a,b, for messages */
  flag: string
  /** where in the foreach the choice is made, for messages (a join's split index) */
  split?: number | undefined
  candidates: { step: string; taskId: string; path: string }[]
}

/** How many candidate tasks resolveInputPaths asks about at once: a join of 100,000 splits must not open 200,000 reads together. */
export const RESOLVE_CONCURRENCY = 32

/**
 * The parents' pathspecs, asking `outcome` which candidate ran where the placement names
 * several: a group of --parent-any at the parents' position, or for a --join-foreach of
 * several steps, each split. Metaflow's own runtime does the same in memory: a switch's
 * convergence step (and a join whose branch or foreach body ends in a switch) takes, of its
 * graph parents, the one task that finished at its position and went on to it. Exactly one
 * candidate must have finished with _task_ok True and name this step in its _transition: none means this task was placed wrongly or too early, two
 * means the pipeline ran cases a switch cannot both take; either is refused (exit 64), as
 * letting Metaflow guess would join the wrong task.
 */
export async function resolveInputPaths(p: Placement, outcome: (step: string, taskId: string) => Promise<TaskOutcome>): Promise<string[]> {
  if (isFixedPlacement(p)) return inputPathsFor(p)
  const position = positionOf(p)
  const pathOf = (step: string, pos: readonly number[]) => {
    const taskId = taskIdFor(step, pos)
    return { step, taskId, path: `${p.runId}/${step}/${taskId}` }
  }
  const fixed: string[] = []
  const choices: Choice[] = []
  if (p.joinForeach) {
    const { steps, numSplits } = p.joinForeach
    for (let i = 0; i < numSplits; i++) choices.push({ flag: `--join-foreach ${steps.join(',')}`, split: i, candidates: steps.map((s) => pathOf(s, [...position, i])) })
  } else {
    const parentPosition = parentPositionOf(p)
    for (const step of p.parents) fixed.push(pathOf(step, parentPosition).path)
    for (const group of p.parentAny ?? []) choices.push({ flag: `--parent-any ${group.join(',')}`, candidates: group.map((s) => pathOf(s, parentPosition)) })
  }
  const chosen: string[] = new Array<string>(choices.length)
  const problems: { at: number; text: string; why: 'none' | 'several' }[] = []
  let next = 0
  const worker = async () => {
    while (next < choices.length) {
      const at = next++
      const choice = choices[at] as Choice
      const outcomes = await Promise.all(choice.candidates.map((c) => outcome(c.step, c.taskId)))
      const ok = choice.candidates.filter((_, k) => outcomes[k] === 'ok')
      if (ok.length === 1) {
        chosen[at] = (ok[0] as { path: string }).path
        continue
      }
      const where = choice.split === undefined ? '' : ` at split ${choice.split}`
      const text = ok.length === 0
        ? `of ${choice.flag}, none finished${where}: ${choice.candidates.map((c, k) => `${c.path} ${OUTCOME_TEXT[outcomes[k] as Exclude<TaskOutcome, 'ok'>]}`).join(', ')}`
        : `of ${choice.flag}, exactly one may have finished${where}, but ${ok.map((c) => c.path).join(' and ')} did`
      problems.push({ at, text, why: ok.length === 0 ? 'none' : 'several' })
    }
  }
  await Promise.all(Array.from({ length: Math.min(RESOLVE_CONCURRENCY, choices.length) }, worker))
  if (problems.length > 0) {
    problems.sort((a, b) => a.at - b.at)
    const first = problems[0] as (typeof problems)[number]
    const more = problems.length > 1 ? ` (and at ${problems.length - 1} more split${problems.length > 2 ? 's' : ''})` : ''
    throw new AgentError('usage', `failed to find the parents of ${p.runId}/${p.step}: ${first.text}${more}`, {
      hint: first.why === 'none'
        ? 'run this step after its parent finished, with the same --run-id, --datastore-root and split position, and name every step that can come right before it'
        : 'a switch takes one case: name in one group only the steps of which one runs, and do not rerun a case by hand',
    })
  }
  // A join's parents stay in split order, as Metaflow's own foreach joins list them.
  return [...fixed, ...chosen]
}

/** Filesystems refuse longer names (NAME_MAX); every id and step name is one path component. */
export const MAX_NAME_BYTES = 255

/**
 * Why an id cannot be a Metaflow run or task id, or undefined when it can. Each id is a folder
 * in the datastore and a part of a pathspec, so besides Metaflow's delimiters (`/ , : !`) it
 * must not walk the tree (`.`, `..`) or hide (a leading dot); letters, digits, `_ - .` are safe
 * on every filesystem and in S3 keys.
 */
export function badIdReason(id: string): string | undefined {
  if (id === '') return 'it is empty'
  // KFP up to 2.4 passes {{$.pipeline_job_uuid}} through unresolved: every run would share this one id.
  if (id.includes('{{')) return 'it holds an unresolved placeholder "{{", which KFP 2.4 and older pass through as is, so every run would share this id'
  if (FORBIDDEN_ID_CHARS.test(id)) return 'it contains one of / , : !'
  if (id.startsWith('.')) return id === '.' || id === '..' ? 'it names a folder of the datastore, not a new one' : 'it starts with a dot, which hides it in the datastore'
  if (!/^[\p{L}\p{N}_.-]+$/u.test(id)) return 'it holds characters other than letters, digits, _ - and .'
  if (Buffer.byteLength(id) > MAX_NAME_BYTES) return `it is longer than ${MAX_NAME_BYTES} bytes, the longest folder name filesystems allow`
  if (/^\d+$/.test(id)) return 'it is numeric, which Metaflow reserves for ids its metadata service issues'
  return undefined
}

/**
 * Why a name cannot be a step or flow name, or undefined when it can: Metaflow's steps are
 * methods and flows are classes, so both are Python identifiers (Unicode letters included).
 */
export function badIdentifierReason(name: string): string | undefined {
  if (name === '') return 'it is empty'
  if (name.includes('{{')) return 'it holds an unresolved placeholder "{{"'
  if (!/^[\p{ID_Start}_][\p{ID_Continue}]*$/u.test(name)) return 'it is not a Python identifier, as Metaflow step and flow names are'
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `it is longer than ${MAX_NAME_BYTES} bytes, the longest folder name filesystems allow`
  return undefined
}

/** Why a name cannot be a step of a flow the agent runs: an identifier, and not Metaflow's own `_parameters`. */
export function badStepNameReason(name: string): string | undefined {
  if (name === '_parameters') return "Metaflow reserves it for the run's parameters task"
  return badIdentifierReason(name)
}

/**
 * Why input paths given as text cannot be read safely: each must be `run/step/task` whose parts
 * stay inside the datastore. Numeric ids are fine here: the agent only reads these tasks.
 */
export function badInputPathsReason(paths: readonly string[]): string | undefined {
  if (paths.length === 0) return 'they name no task'
  const idWhy = (id: string) => (/^\d+$/.test(id) ? undefined : badIdReason(id))
  for (const path of paths) {
    const parts = path.split('/')
    if (parts.length !== 3) return `${JSON.stringify(path)} is not RUN/STEP/TASK`
    const [run, step, task] = parts as [string, string, string]
    const why = idWhy(run) ?? badIdentifierReason(step) ?? idWhy(task)
    if (why) return `${JSON.stringify(path)} is unsafe: ${why}`
  }
  return undefined
}
