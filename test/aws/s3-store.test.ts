import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { S3Store, isRetryableS3Error, parseS3Url, s3Endpoint } from '../../agent/aws/s3-store'
import { MOTO_KEYS, makeBucket, putObject, startMoto, testS3 } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
let moto: Moto
let store: S3Store
const creds = async () => ({ accessKeyId: MOTO_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_KEYS.AWS_SECRET_ACCESS_KEY, sessionToken: 't', expiration: new Date(Date.now() + 3_600_000) })

beforeAll(async () => {
  moto = await startMoto()
  await makeBucket(moto.endpoint, 'store')
  store = await S3Store.open('s3://store/metaflow/', { region: 'us-east-1', endpoint: moto.endpoint, credentials: creds, maxAttempts: 3 })
})
afterAll(async () => {
  store?.close()
  await moto?.stop()
})

describe('S3Store', () => {
  it('reads an object under the root and says undefined for a missing one', async () => {
    await putObject(moto.endpoint, 'store', 'metaflow/F/r/s/t/0.DONE.lock', '')
    await putObject(moto.endpoint, 'store', 'metaflow/F/r/s/t/0.data.json', '{"objects":{}}')
    expect((await store.read('F/r/s/t/0.data.json'))?.toString()).toBe('{"objects":{}}')
    expect(await store.read('F/r/s/t/0.DONE.lock')).toEqual(Buffer.alloc(0))
    expect(await store.read('F/r/s/t/1.DONE.lock')).toBeUndefined()
    expect(await store.exists('F/r/s/t/0.DONE.lock')).toBe(true)
    expect(await store.exists('nope')).toBe(false)
  })

  it('streams a local file to a key', async () => {
    const f = join(tempDir(), 'log')
    writeFileSync(f, 'x'.repeat(300_000))
    await store.putFile('F/r/s/t/0.task_stdout.log', f)
    const res = await testS3(moto.endpoint).send(new GetObjectCommand({ Bucket: 'store', Key: 'metaflow/F/r/s/t/0.task_stdout.log' }))
    expect((await res.Body!.transformToString()).length).toBe(300_000)
  })

  it("writes Metaflow's object attributes as S3 user metadata", async () => {
    await store.putBytes('F/data/ab/abc', Buffer.from('blob'), { cas_raw: true, cas_version: 1 })
    const head = await testS3(moto.endpoint).send(new HeadObjectCommand({ Bucket: 'store', Key: 'metaflow/F/data/ab/abc' }))
    expect(JSON.parse(head.Metadata?.['metaflow-user-attributes'] ?? '')).toEqual({ cas_raw: true, cas_version: 1 })
  })

  it('does not retry a missing bucket, which will not appear by waiting', async () => {
    const other = await S3Store.open('s3://no-such-bucket/x', { region: 'us-east-1', endpoint: moto.endpoint, credentials: creds, maxAttempts: 1 })
    const started = Date.now()
    await expect(other.read('k')).rejects.toMatchObject({ name: 'NoSuchBucket' })
    expect(Date.now() - started).toBeLessThan(2000)
    other.close()
  })

  it('retries a store that is not listening, then gives up with the network error', async () => {
    const dead = new S3Store('s3://b/p', (await S3Store.open('s3://b/p', { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: creds, maxAttempts: 1 }))['client'], { attempts: 3, minDelayMs: 10, maxDelayMs: 20 })
    await expect(dead.read('k')).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})

describe('helpers', () => {
  it('parses s3 roots with and without a prefix', () => {
    expect(parseS3Url('s3://b')).toEqual({ bucket: 'b', prefix: '' })
    expect(parseS3Url('s3://b/a/b/')).toEqual({ bucket: 'b', prefix: 'a/b' })
    expect(() => parseS3Url('https://b/x')).toThrow(/not an s3/)
  })

  it('prefers METAFLOW_S3_ENDPOINT_URL, then AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL', () => {
    expect(s3Endpoint('http://m', { AWS_ENDPOINT_URL_S3: 'http://s', AWS_ENDPOINT_URL: 'http://a' })).toBe('http://m')
    expect(s3Endpoint(undefined, { AWS_ENDPOINT_URL_S3: 'http://s', AWS_ENDPOINT_URL: 'http://a' })).toBe('http://s')
    expect(s3Endpoint(undefined, { AWS_ENDPOINT_URL: 'http://a' })).toBe('http://a')
    expect(s3Endpoint(undefined, { AWS_ENDPOINT_URL: 'http://a', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' })).toBeUndefined()
  })

  it('treats throttling and 5xx as retryable and access denied as final', () => {
    expect(isRetryableS3Error({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } })).toBe(true)
    expect(isRetryableS3Error({ name: 'X', $metadata: { httpStatusCode: 500 } })).toBe(true)
    expect(isRetryableS3Error({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })).toBe(false)
  })
})
