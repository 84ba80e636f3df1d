// Saves the task's local Metaflow metadata into the S3 datastore after the step, as Metaflow's Kubernetes integration does.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { TaskRef } from './datastore.js'
import { taskPrefix } from './datastore.js'

/** Where the sync writes: S3Store, or anything else that stores bytes with Metaflow's object attributes. */
export interface MetadataSink {
  exists(key: string): Promise<boolean>
  putBytes(key: string, body: Buffer, attributes?: Record<string, unknown>): Promise<void>
}

/**
 * Mirrors metaflow/metadata_provider/util.py sync_local_metadata_to_datastore: the folder
 * `<sysroot>/.metaflow` goes into a gzip'd tar whose entries start with `.metaflow/`, stored
 * raw in the flow's content-addressed store (`<Flow>/data/<sha1[:2]>/<sha1>`, attributes
 * cas_raw/cas_version), and the task gets `<attempt>.local_metadata` holding the JSON string
 * of that sha1. Metaflow's sync_local_metadata_from_datastore reads it back.
 * Returns the key, or undefined when the step left no local metadata.
 */
export async function syncLocalMetadata(sink: MetadataSink, task: TaskRef, sysroot: string, scratchDir: string): Promise<string | undefined> {
  if (!existsSync(join(sysroot, '.metaflow'))) return undefined
  const tarPath = join(scratchDir, `local-metadata-${process.pid}.tgz`)
  try {
    const tar = await import('tar')
    await tar.c({ gzip: true, cwd: sysroot, file: tarPath, portable: true }, ['.metaflow'])
    const blob = await readFile(tarPath)
    const sha = createHash('sha1').update(blob).digest('hex')
    const blobKey = `${task.flow}/data/${sha.slice(0, 2)}/${sha}`
    // Content-addressed: an existing blob is the same bytes.
    if (!(await sink.exists(blobKey))) await sink.putBytes(blobKey, blob, { cas_raw: true, cas_version: 1 })
    await sink.putBytes(`${taskPrefix(task)}/${task.attempt}.local_metadata`, Buffer.from(JSON.stringify(sha)))
    return sha
  } finally {
    await rm(tarPath, { force: true })
  }
}
