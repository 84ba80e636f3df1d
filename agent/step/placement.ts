// Resolves placements that name candidate parents (--parent-any, a --join-foreach of several steps) by asking the datastore which ran.
import { isTaskDone, readTaskRecord } from '../datastore/datastore.js'
import type { ObjectStore } from '../datastore/datastore.js'
import { AgentError } from '../errors.js'
import { latestAttempt } from './attempts.js'
import { inputPathsFor, isFixedPlacement, resolveInputPaths } from './task-ids.js'
import type { Placement, TaskOutcome } from './task-ids.js'

/**
 * What became of a candidate parent of `child`, judged as Metaflow's readers judge a task, by
 * its latest attempt: 'ok' when that attempt has its DONE lock and _task_ok True and went on
 * to `child`; 'elsewhere' when it finished but went on to another step (a switch that skipped
 * past the other candidates' steps, e.g. `{"work": self.work, "skip": self.end}`, is itself a
 * parent of `end` but not of this run of it); 'failed' when it ran but did not succeed (or
 * has not finished); 'absent' when no attempt ever started.
 */
export async function taskOutcome(store: ObjectStore, task: { flow: string; runId: string; step: string; taskId: string }, child: string): Promise<TaskOutcome> {
  const latest = await latestAttempt(store, task)
  if (latest === undefined) return 'absent'
  const ref = { ...task, attempt: latest }
  if (!(await isTaskDone(store, ref))) return 'failed'
  const record = await readTaskRecord(store, ref, { next: true })
  if (!record.taskOk) return 'failed'
  // Metaflow's runtime starts a step from the parent whose _transition names it; a record without one is taken as it is.
  return record.next === null || record.next.includes(child) ? 'ok' : 'elsewhere'
}

/** The step's input paths; the datastore is read only when the placement names candidates. */
export async function placementInputPaths(p: Placement, store: ObjectStore, flow: string): Promise<string[]> {
  if (isFixedPlacement(p)) return inputPathsFor(p)
  return resolveInputPaths(p, async (step, taskId) => {
    try {
      return await taskOutcome(store, { flow, runId: p.runId, step, taskId }, p.step)
    } catch (err) {
      throw new AgentError('outputs', `failed to read task ${p.runId}/${step}/${taskId} from ${store.root}`, {
        cause: err,
        hint: 'check the datastore root and access to it',
      })
    }
  })
}
