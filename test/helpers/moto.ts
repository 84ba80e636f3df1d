// Runs moto's real S3+STS server on 127.0.0.1 for a test file, and stops it afterwards.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { VENV_BIN } from './paths'

// The tests' own SDK clients run on Node 20 too; the agent silences the same warning in main.ts.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

export interface Moto {
  endpoint: string
  /** what the server printed, for failure messages */
  output(): string
  stop(): Promise<void>
}

/** Dummy source credentials; moto accepts any unless INITIAL_NO_AUTH_ACTION_COUNT is set. */
export const MOTO_KEYS = {
  AWS_ACCESS_KEY_ID: 'AKIDSOURCEKEY0000000',
  AWS_SECRET_ACCESS_KEY: 'source-secret-that-must-never-be-printed',
} as const

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => res(port))
    })
  })
}

/** Starts `.venv/bin/moto_server -H 127.0.0.1 -p <free port>` and waits until it answers. */
export async function startMoto(env: Record<string, string> = {}): Promise<Moto> {
  const port = await freePort()
  const child: ChildProcess = spawn(resolve(VENV_BIN, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${out}`)
    try {
      const r = await fetch(`${endpoint}/moto-api/data.json`)
      if (r.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`moto_server did not answer within 30 s: ${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    endpoint,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

/** A test's own S3 client (the SDK from node_modules), with the dummy source keys. */
export function testS3(endpoint: string): S3Client {
  return new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: MOTO_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_KEYS.AWS_SECRET_ACCESS_KEY } })
}

export async function makeBucket(endpoint: string, bucket: string): Promise<void> {
  await testS3(endpoint).send(new CreateBucketCommand({ Bucket: bucket }))
}

export async function putObject(endpoint: string, bucket: string, key: string, body: Buffer | string): Promise<void> {
  await testS3(endpoint).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
}
