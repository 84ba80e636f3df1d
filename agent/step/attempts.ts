// Which attempt a task runs as, so that a re-run never rewrites a finished attempt nor leaves a gap Metaflow's readers stop at.
import { METAFLOW_MAX_ATTEMPTS } from '../config.js'
import { isTaskDone, readTaskRecord, taskPrefix } from '../datastore/datastore.js'
import type { ObjectStore, TaskRef } from '../datastore/datastore.js'

export type AttemptPlan =
  /** run the step as this attempt */
  | { kind: 'run'; attempt: number }
  /** this attempt already finished with _task_ok True: publish its outputs, run nothing */
  | { kind: 'done'; attempt: number }
  /** every attempt Metaflow allows has run and the last one failed */
  | { kind: 'exhausted'; latest: number }

/**
 * The task's latest attempt the way Metaflow's TaskDataStore finds it: the highest of the
 * `<n>.attempt.json` markers that follow each other from the first one (a gap ends the search).
 */
export async function latestAttempt(store: ObjectStore, task: Omit<TaskRef, 'attempt'>): Promise<number | undefined> {
  const prefix = taskPrefix(task)
  const present = await Promise.all(
    Array.from({ length: METAFLOW_MAX_ATTEMPTS }, async (_, i) => (await store.read(`${prefix}/${i}.attempt.json`)) !== undefined),
  )
  let latest: number | undefined
  for (let i = 0; i < present.length; i++) {
    if (present[i]) latest = i
    else if (latest !== undefined) break
  }
  return latest
}

/**
 * Decides the attempt. Metaflow itself never runs an attempt twice: its runtime retries with
 * the next number, and its readers (the client and every downstream task) trust only the
 * latest attempt. So, whatever --retry-count or KFP_RETRY_INDEX says:
 * - no attempt yet: run the one asked for;
 * - the latest attempt finished with _task_ok True: the task is done (e.g. the pod died after
 *   the step but before its outputs were written); running the user's code again would write
 *   a second record that contradicts what downstream tasks may already have read;
 * - the latest attempt failed or never finished (a killed pod): run the next one, as a retry
 *   would. This also makes retries real where the attempt number does not advance (KFP
 *   before 2.16.1 sets no KFP_RETRY_INDEX), and never leaves a gap: attempt 2 after 0 would
 *   be invisible, as Metaflow's readers stop at the missing 1.
 */
export async function planAttempt(store: ObjectStore, task: Omit<TaskRef, 'attempt'>, requested: number): Promise<AttemptPlan> {
  const latest = await latestAttempt(store, task)
  if (latest === undefined) return { kind: 'run', attempt: requested }
  const ref = { ...task, attempt: latest }
  if (await isTaskDone(store, ref)) {
    if ((await readTaskRecord(store, ref)).taskOk) return { kind: 'done', attempt: latest }
  }
  if (latest + 1 >= METAFLOW_MAX_ATTEMPTS) return { kind: 'exhausted', latest }
  return { kind: 'run', attempt: latest + 1 }
}
