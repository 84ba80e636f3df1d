import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { syncLocalMetadata } from '../../agent/datastore/metadata-sync'
import { S3Store } from '../../agent/aws/s3-store'
import { restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
let moto: Moto
let store: S3Store
const ROOT = 's3://mdsync/metaflow'
const creds = async () => ({ accessKeyId: MOTO_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_KEYS.AWS_SECRET_ACCESS_KEY, sessionToken: 't', expiration: new Date(Date.now() + 3_600_000) })

beforeAll(async () => {
  moto = await startMoto()
  await makeBucket(moto.endpoint, 'mdsync')
  store = await S3Store.open(ROOT, { region: 'us-east-1', endpoint: moto.endpoint, credentials: creds, maxAttempts: 3 })
})
afterAll(async () => {
  store?.close()
  await moto?.stop()
})

describe('syncLocalMetadata', () => {
  it("saves the local .metaflow so Metaflow's own sync_local_metadata_from_datastore restores it", async () => {
    const pod = tempDir()
    const meta = join(pod, '.metaflow', 'F', 'r1', 'start', 'start', '_meta')
    mkdirSync(meta, { recursive: true })
    writeFileSync(join(meta, 'sysmeta_attempt-done_0.json'), '{"field_name": "attempt-done"}')
    // The task as Metaflow leaves it: its attempt marker and DONE lock in the datastore.
    await store.putBytes('F/r1/start/start/0.attempt.json', Buffer.from('{"time": 1}'))
    await store.putBytes('F/r1/start/start/0.DONE.lock', Buffer.alloc(0))

    const task = { flow: 'F', runId: 'r1', step: 'start', taskId: 'start', attempt: 0 }
    const sha = await syncLocalMetadata(store, task, pod, tempDir())
    expect(sha).toMatch(/^[0-9a-f]{40}$/)
    expect((await store.read('F/r1/start/start/0.local_metadata'))?.toString()).toBe(JSON.stringify(sha))

    const laptop = tempDir()
    await restoreLocalMetadata(s3ClientEnv(moto.endpoint, ROOT, laptop), 'F', 'r1', [['start', 'start']])
    expect(readFileSync(join(laptop, '.metaflow', 'F', 'r1', 'start', 'start', '_meta', 'sysmeta_attempt-done_0.json'), 'utf8')).toContain('attempt-done')
  })

  it('does nothing when the step left no local metadata', async () => {
    const task = { flow: 'F', runId: 'r2', step: 'start', taskId: 'start', attempt: 0 }
    expect(await syncLocalMetadata(store, task, tempDir(), tempDir())).toBeUndefined()
    expect(await store.read('F/r2/start/start/0.local_metadata')).toBeUndefined()
  })
})
