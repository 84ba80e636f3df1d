// Deterministic task ids and input paths from a step's name and its position in the enclosing foreaches.
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
  /** a foreach join: all `numSplits` tasks of `step` one level deeper */
  joinForeach?: { step: string; numSplits: number } | undefined
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
  return p.parents.length === 0 && p.joinForeach === undefined
}

/** The parents' pathspecs (`run/step/task`) that the step reads. */
export function inputPathsFor(p: Placement): string[] {
  const position = positionOf(p)
  if (p.joinForeach) {
    const { step, numSplits } = p.joinForeach
    return Array.from({ length: numSplits }, (_, i) => `${p.runId}/${step}/${taskIdFor(step, [...position, i])}`)
  }
  if (p.parents.length === 0) return [`${p.runId}/_parameters/${PARAMS_TASK_ID}`]
  // The first step inside a foreach sits one level below its parent, the foreach step.
  const parentPosition = p.splitIndex === undefined ? position : [...p.splitPath]
  return p.parents.map((step) => `${p.runId}/${step}/${taskIdFor(step, parentPosition)}`)
}

/** Input paths in Metaflow's compressed text form. */
export function inputPathsText(p: Placement): string {
  return compressInputPaths(inputPathsFor(p))
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
