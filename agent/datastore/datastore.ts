// Reads a finished task's record from Metaflow's datastore: DONE lock, data.json, _task_ok, _foreach_num_splits.
import { copyFile, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { makeDirs } from '../make-dirs.js'
import { decodeScalarPickle } from './pickle.js'

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
export class LocalStore implements ObjectStore {
  constructor(readonly root: string) {}

  async read(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.root, key))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async putFile(key: string, localPath: string): Promise<void> {
    const dest = join(this.root, key)
    await makeDirs(dirname(dest))
    const tmp = `${dest}.tmp-${process.pid}`
    try {
      await copyFile(localPath, tmp)
      await rename(tmp, dest)
    } finally {
      await rm(tmp, { force: true })
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
export async function readTaskRecord(store: ObjectStore, t: TaskRef): Promise<TaskRecord> {
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
  const taskOk = await readScalar(store, t.flow, objects, '_task_ok')
  // The _parameters task that init writes has no foreach bookkeeping at all.
  const numSplits = '_foreach_num_splits' in objects ? await readScalar(store, t.flow, objects, '_foreach_num_splits') : null
  if (typeof taskOk !== 'boolean') throw new Error(`_task_ok is ${String(taskOk)}, not a boolean`)
  if (numSplits !== null && (typeof numSplits !== 'number' || numSplits < 0)) {
    throw new Error(`_foreach_num_splits is ${String(numSplits)}, not a split count`)
  }
  return { taskOk, numSplits: numSplits as number | null }
}

async function readScalar(
  store: ObjectStore,
  flow: string,
  objects: Record<string, string>,
  name: string,
): Promise<number | boolean | null> {
  const sha = objects[name]
  if (!sha || !/^[0-9a-f]{40}$/.test(sha)) throw new Error(`data.json has no artifact ${name}`)
  const key = `${flow}/data/${sha.slice(0, 2)}/${sha}`
  const blob = await store.read(key)
  if (blob === undefined) throw new Error(`artifact ${name} is missing at ${store.root}/${key}`)
  // Metaflow gzips every artifact blob (cas_raw false); the check keeps raw blobs readable too.
  const pickled = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob
  try {
    return decodeScalarPickle(pickled)
  } catch (err) {
    throw new Error(`failed to decode artifact ${name}`, { cause: err })
  }
}
