// Opens s3:// code URLs for code-fetch, which applies the same retries, deadline, size cap and sha256 as for https.
import type { Readable } from 'node:stream'
import type { Opener } from '../code/code-fetch.js'
import type { S3Access } from './s3-store.js'
import { classifyS3Error, makeS3Client } from './s3-store.js'

/**
 * An opener for `s3://bucket/key`. The SDK tries each request once: code-fetch owns the
 * retries and the deadline, so s3:// and https:// fail and recover the same way.
 */
export function s3Opener(access: Omit<S3Access, 'maxAttempts'>): { open: Opener; close(): void } {
  let client: Awaited<ReturnType<typeof makeS3Client>> | undefined
  const open: Opener = async (url, signal) => {
    const bucket = url.hostname
    const key = decodeURIComponent(url.pathname.replace(/^\//, ''))
    if (!bucket || !key) throw new Error(`${url.href} names no object; expected s3://bucket/key`)
    client ??= await makeS3Client({ ...access, maxAttempts: 1 })
    const { GetObjectCommand } = await import('@aws-sdk/client-s3')
    let res
    try {
      res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })
    } catch (err) {
      throw classifyS3Error(err, `GetObject s3://${bucket}/${key}`)
    }
    if (!res.Body) throw new Error(`GetObject s3://${bucket}/${key} returned no body`)
    return { body: res.Body as Readable, length: res.ContentLength }
  }
  return { open, close: () => client?.destroy() }
}
