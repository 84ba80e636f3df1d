// Reads a finished task's record from Metaflow's datastore: DONE lock, data.json, _task_ok, _foreach_num_splits, the switch taken.
import { copyFileSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { copyFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { makeDirs } from '../make-dirs.js'
import { PickledObject, decodePickle, decodeScalarPickle } from './pickle.js'
import type { PickleValue } from './pickle.js'

/** The datastore as the agent sees it: keys relative to the Metaflow datastore root. */
export interface ObjectStore {
  /** where the root is, for messages */
  readonly root: string
  /** the object's bytes, or undefined when it does not exist */
  read(key: string): Promise<Buffer | undefined>
  /** stores a local file under the key, replacing any object there */
  putFile(key: string, localPath: string): Promise<void>
}

/** Metaflow's local datastore: a folder, written with temp-file-and-rename like Metaflow does. */
const SMALL_FILE = 1 << 20

export class LocalStore implements ObjectStore {
  constructor(readonly root: string) {}

  // Why synchronous: the agent reads only small records here (locks, data.json, a few artifacts),
  // and each async read is four round trips through libuv's thread pool.
  async read(key: string): Promise<Buffer | undefined> {
    try {
      return readFileSync(join(this.root, key))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async putFile(key: string, localPath: string): Promise<void> {
    const dest = join(this.root, key)
    await makeDirs(dirname(dest))
    const tmp = `${dest}.tmp-${process.pid}`
    // A small file (a task's log, mostly) is copied synchronously, as the reads above are; a big one
    // goes through the thread pool, so other tasks of run-local keep streaming meanwhile.
    const small = statSync(localPath).size <= SMALL_FILE
    try {
      if (small) copyFileSync(localPath, tmp)
      else await copyFile(localPath, tmp)
      renameSync(tmp, dest)
    } finally {
      rmSync(tmp, { force: true })
    }
  }
}

export interface TaskRef {
  flow: string
  runId: string
  step: string
  taskId: string
  attempt: number
}

export interface TaskRecord {
  taskOk: boolean
  /** the foreach split count, or null for a step that is not a foreach */
  numSplits: number | null
  /** for a switch step (graph node type split-switch), the step it took; null for any other step or when not asked */
  switchStep: string | null
  /** the steps the task went on to (`_transition`), when asked; null when it recorded none */
  next: string[] | null
}

export function taskPrefix(t: Omit<TaskRef, 'attempt'>): string {
  return `${t.flow}/${t.runId}/${t.step}/${t.taskId}`
}

/** True when the task's attempt has its DONE lock, i.e. Metaflow finished writing it. */
export async function isTaskDone(store: ObjectStore, t: TaskRef): Promise<boolean> {
  return (await store.read(`${taskPrefix(t)}/${t.attempt}.DONE.lock`)) !== undefined
}

/**
 * Reads the attempt's record the way Metaflow's own readers do: the DONE lock must exist,
 * then data.json names each artifact's content-addressed blob, which is gzip'd pickle.
 */
export async function readTaskRecord(store: ObjectStore, t: TaskRef, opts: { switchStep?: boolean; next?: boolean } = {}): Promise<TaskRecord> {
  const prefix = taskPrefix(t)
  if (!(await isTaskDone(store, t))) {
    throw new Error(`${store.root}/${prefix}/${t.attempt}.DONE.lock does not exist`)
  }
  const dataKey = `${prefix}/${t.attempt}.data.json`
  const raw = await store.read(dataKey)
  if (raw === undefined) throw new Error(`${store.root}/${dataKey} does not exist`)
  let objects: Record<string, string>
  try {
    objects = (JSON.parse(raw.toString('utf8')) as { objects: Record<string, string> }).objects
  } catch (err) {
    throw new Error(`${store.root}/${dataKey} is not valid JSON`, { cause: err })
  }
  // The reads are independent: on S3 each is a round trip, so they go out together.
  const [taskOk, numSplits, switchStep, next] = await Promise.all([
    readScalar(store, t.flow, objects, '_task_ok'),
    // The _parameters task that init writes has no foreach bookkeeping at all.
    '_foreach_num_splits' in objects ? readScalar(store, t.flow, objects, '_foreach_num_splits') : null,
    opts.switchStep ? readSwitchStep(store, t, objects) : null,
    opts.next && '_transition' in objects ? readArtifact(store, t.flow, objects, '_transition', decodePickle).then(nextSteps) : null,
  ])
  if (typeof taskOk !== 'boolean') throw new Error(`_task_ok is ${String(taskOk)}, not a boolean`)
  if (numSplits !== null && (typeof numSplits !== 'number' || numSplits < 0)) {
    throw new Error(`_foreach_num_splits is ${String(numSplits)}, not a split count`)
  }
  return { taskOk, numSplits: numSplits as number | null, switchStep, next }
}

/** The step names of `_transition = ([steps], foreach var)`, or null when it holds something else (None at the end step). */
function nextSteps(transition: PickleValue): string[] | null {
  const steps = Array.isArray(transition) ? transition[0] : undefined
  return Array.isArray(steps) && steps.every((s) => typeof s === 'string') ? (steps as string[]) : null
}

/**
 * The step a switch took, or null when the task's step is not a switch. Metaflow records the
 * graph in every task (`_graph_info`, passed down from the parameters task), whose `steps`
 * give each step's type; a `split-switch` step's `self.next(..., condition=...)` leaves
 * `_transition = ([chosen step], None)`, which Metaflow's runtime and its Argo plugin read too.
 * A record without `_graph_info` comes from a Metaflow that predates switches.
 */
async function readSwitchStep(store: ObjectStore, t: TaskRef, objects: Record<string, string>): Promise<string | null> {
  if (!('_graph_info' in objects)) return null
  const [graph, transition] = await Promise.all([
    readArtifact(store, t.flow, objects, '_graph_info', decodePickle),
    // Fetched alongside, so a switch costs no second round trip; a step without it is not a switch.
    '_transition' in objects ? readArtifact(store, t.flow, objects, '_transition', decodePickle) : null,
  ])
  const node = field(field(graph, 'steps'), t.step)
  if (field(node, 'type') !== 'split-switch') return null
  const next = Array.isArray(transition) ? transition[0] : undefined
  const chosen = Array.isArray(next) && next.length === 1 ? next[0] : undefined
  if (typeof chosen !== 'string') throw new Error(`switch step ${t.step} recorded no single next step in _transition`)
  const cases = field(node, 'next')
  if (Array.isArray(cases) && !cases.includes(chosen)) {
    throw new Error(`switch step ${t.step} took ${chosen}, which is none of its cases ${cases.join(', ')}`)
  }
  return chosen
}

function field(v: PickleValue | undefined, key: string): PickleValue | undefined {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v) || v instanceof PickledObject) return undefined
  return Object.prototype.hasOwnProperty.call(v, key) ? (v as Record<string, PickleValue>)[key] : undefined
}

/** The most an inflated bookkeeping artifact may take: `_graph_info` of a large flow is tens of KiB. */
const MAX_BOOKKEEPING_BYTES = 64 << 20

function readScalar(store: ObjectStore, flow: string, objects: Record<string, string>, name: string): Promise<number | boolean | null> {
  return readArtifact(store, flow, objects, name, decodeScalarPickle)
}

async function readArtifact<T>(
  store: ObjectStore,
  flow: string,
  objects: Record<string, string>,
  name: string,
  decode: (pickled: Buffer) => T,
): Promise<T> {
  const sha = objects[name]
  if (!sha || !/^[0-9a-f]{40}$/.test(sha)) throw new Error(`data.json has no artifact ${name}`)
  const key = `${flow}/data/${sha.slice(0, 2)}/${sha}`
  const blob = await store.read(key)
  if (blob === undefined) throw new Error(`artifact ${name} is missing at ${store.root}/${key}`)
  // Metaflow gzips every artifact blob (cas_raw false); the check keeps raw blobs readable too.
  const pickled = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob, { maxOutputLength: MAX_BOOKKEEPING_BYTES }) : blob
  try {
    return decode(pickled)
  } catch (err) {
    throw new Error(`failed to decode artifact ${name}`, { cause: err })
  }
}
