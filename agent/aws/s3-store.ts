// Metaflow's S3 datastore as the agent sees it: read a task's record, write its logs and metadata, with retries.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { S3Client } from '@aws-sdk/client-s3'
import type { ProxyRequestHandler } from './aws-http.js'
import type { RoleCredentials } from './credentials.js'
import type { ObjectStore } from '../datastore/datastore.js'
import { isRetryableFetchError } from '../code/code-fetch.js'
import { RetryableError, withRetry } from '../net/retry.js'

/** How the agent reaches S3: the region, an endpoint for S3-compatible stores and tests, whose credentials. */
export interface S3Access {
  region: string
  /** METAFLOW_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (see s3Endpoint) */
  endpoint?: string | undefined
  /** the role session's cache; the SDK's default chain when absent */
  credentials?: (() => Promise<RoleCredentials>) | undefined
  /** the SDK's own attempts per request */
  maxAttempts: number
  /** a request handler per client, when a proxy is configured (aws-http.ts) */
  requestHandler?: (() => ProxyRequestHandler) | undefined
}

/** The endpoint the agent and Metaflow's S3 client both use, by the same precedence. */
export function s3Endpoint(metaflowEndpoint: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (metaflowEndpoint) return metaflowEndpoint
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true') return undefined
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined
}

/** How long the agent's own S3 calls wait to connect, and for a stalled connection to move again. */
export const S3_CONNECT_TIMEOUT_MS = 10_000
export const S3_IDLE_TIMEOUT_MS = 30_000

/** Loads the SDK only when S3 is really used, so local steps start without it. */
export async function makeS3Client(a: S3Access): Promise<S3Client> {
  const { S3Client } = await import('@aws-sdk/client-s3')
  return new S3Client({
    region: a.region,
    maxAttempts: a.maxAttempts,
    ...(a.endpoint ? { endpoint: a.endpoint, forcePathStyle: true } : {}),
    ...(a.credentials ? { credentials: a.credentials } : {}),
    // Why an idle timeout and not a total one: a stalled connection must end (the SDK sets none, so one
    // stalled GET hung the task for good), while a large log upload that keeps moving must not.
    requestHandler: a.requestHandler ? (a.requestHandler() as never) : { connectionTimeout: S3_CONNECT_TIMEOUT_MS, socketTimeout: S3_IDLE_TIMEOUT_MS },
    // S3-compatible stores (older MinIO, Ceph) reject the SDK's default trailing checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url)
  if (!m || !m[1]) throw new Error(`${url} is not an s3://bucket/prefix URL`)
  return { bucket: m[1], prefix: (m[2] ?? '').replace(/\/+$/, '') }
}

const RETRYABLE_NAMES = new Set(['SlowDown', 'InternalError', 'ServiceUnavailable', 'RequestTimeout', 'RequestTimeTooSkewed', 'ThrottlingException', 'TimeoutError'])

/** Throttling, 5xx and network failures may pass; access denied or a missing bucket will not. */
export function isRetryableS3Error(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown }
  const status = e?.$metadata?.httpStatusCode
  if (e?.$retryable || (e?.name && RETRYABLE_NAMES.has(e.name))) return true
  if (status !== undefined && (status === 429 || status >= 500)) return true
  return isRetryableFetchError(err)
}

export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } }
  // A missing bucket is also a 404, but a configuration error, not an absent object.
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound'
}

export interface S3StoreOptions {
  /** attempts of a whole operation, body included (the SDK does not retry a failed body stream) */
  attempts?: number
  minDelayMs?: number
  maxDelayMs?: number
  /** the time budget for one operation's attempts */
  budgetMs?: number
}

export class S3Store implements ObjectStore {
  private readonly bucket: string
  private readonly prefix: string

  constructor(readonly root: string, private readonly client: S3Client, private readonly opts: S3StoreOptions = {}) {
    ;({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(root))
  }

  static async open(root: string, access: S3Access, opts?: S3StoreOptions): Promise<S3Store> {
    return new S3Store(root, await makeS3Client(access), opts)
  }

  private key(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key
  }

  private retry<T>(action: () => Promise<T>): Promise<T> {
    return withRetry(action, isRetryableS3Error, {
      attempts: this.opts.attempts ?? 4,
      minDelayMs: this.opts.minDelayMs ?? 500,
      maxDelayMs: this.opts.maxDelayMs ?? 10_000,
      deadline: Date.now() + (this.opts.budgetMs ?? 5 * 60_000),
    })
  }

  async read(key: string): Promise<Buffer | undefined> {
    const { GetObjectCommand } = await import('@aws-sdk/client-s3')
    return this.retry(async () => {
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }))
        if (!res.Body) return Buffer.alloc(0)
        return Buffer.from(await res.Body.transformToByteArray())
      } catch (err) {
        if (isNotFound(err)) return undefined
        throw err
      }
    })
  }

  async exists(key: string): Promise<boolean> {
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3')
    return this.retry(async () => {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }))
        return true
      } catch (err) {
        if (isNotFound(err)) return false
        throw err
      }
    })
  }

  /** Streams the file; each attempt opens it afresh, so a retry never sends half a body. */
  async putFile(key: string, localPath: string): Promise<void> {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3')
    await this.retry(async () => {
      const { size } = await stat(localPath)
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: createReadStream(localPath), ContentLength: size }))
    })
  }

  /**
   * Stores bytes; `attributes` become the `metaflow-user-attributes` object metadata that
   * Metaflow's own S3 client writes and reads (e.g. {"cas_raw": true, "cas_version": 1}).
   */
  async putBytes(key: string, body: Buffer, attributes?: Record<string, unknown>): Promise<void> {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3')
    await this.retry(async () => {
      await this.client.send(new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(key),
        Body: body,
        ...(attributes ? { Metadata: { 'metaflow-user-attributes': JSON.stringify(attributes) } } : {}),
      }))
    })
  }

  close(): void {
    this.client.destroy()
  }
}

/** Wraps an S3 error for code-fetch's retry loop: retryable ones become RetryableError. */
export function classifyS3Error(err: unknown, what: string): Error {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const status = e?.$metadata?.httpStatusCode
  const msg = `${what}: ${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== e.name ? `: ${e.message}` : ''}`
  return isRetryableS3Error(err) ? new RetryableError(msg, { cause: err }) : new Error(msg)
}
