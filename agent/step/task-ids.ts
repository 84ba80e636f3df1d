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

/** Why an id cannot be a Metaflow run or task id, or undefined when it can. */
export function badIdReason(id: string): string | undefined {
  if (id === '') return 'it is empty'
  if (FORBIDDEN_ID_CHARS.test(id)) return 'it contains one of / , : !'
  if (/^\d+$/.test(id)) return 'it is numeric, which Metaflow reserves for ids its metadata service issues'
  return undefined
}
