import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fetchCode } from '../../agent/code/code-fetch'
import type { FetchOptions } from '../../agent/code/code-fetch'
import { AgentError } from '../../agent/errors'
import { s3Opener } from '../../agent/aws/s3-code'
import { MOTO_KEYS, makeBucket, putObject, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
let moto: Moto
const FLOW = 'from metaflow import FlowSpec, step\nclass F(FlowSpec):\n    pass\n'
const creds = async () => ({ accessKeyId: MOTO_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_KEYS.AWS_SECRET_ACCESS_KEY, sessionToken: 't', expiration: new Date(Date.now() + 3_600_000) })

beforeAll(async () => {
  moto = await startMoto()
  await makeBucket(moto.endpoint, 'code')
  await putObject(moto.endpoint, 'code', 'flows/my flow.py', FLOW)
})
afterAll(async () => {
  await moto?.stop()
})

function opts(url: string, endpoint: string, extra: Partial<FetchOptions> = {}) {
  const s3 = s3Opener({ region: 'us-east-1', endpoint, credentials: creds })
  return {
    s3,
    opts: { url, allowHttp: false, workDir: tempDir(), maxBytes: 1 << 20, timeoutMs: 10_000, attempts: 3, minDelayMs: 10, maxDelayMs: 50, openers: { s3: s3.open }, log: () => {}, ...extra } satisfies FetchOptions,
  }
}

describe('s3:// code URLs', () => {
  it('downloads the flow and checks its sha256', async () => {
    const sha = createHash('sha256').update(FLOW).digest('hex')
    const { s3, opts: o } = opts('s3://code/flows/my%20flow.py', moto.endpoint, { sha256: sha })
    try {
      const got = await fetchCode(o)
      expect(readFileSync(got.flowPath, 'utf8')).toBe(FLOW)
      expect(got.sha256).toBe(sha)
    } finally {
      s3.close()
    }
  })

  it('refuses bytes whose sha256 differs, like https', async () => {
    const { s3, opts: o } = opts('s3://code/flows/my%20flow.py', moto.endpoint, { sha256: '0'.repeat(64) })
    await expect(fetchCode(o)).rejects.toMatchObject({ kind: 'codeRejected' })
    s3.close()
  })

  it('refuses an object over the size cap', async () => {
    const { s3, opts: o } = opts('s3://code/flows/my%20flow.py', moto.endpoint, { maxBytes: 10 })
    await expect(fetchCode(o)).rejects.toMatchObject({ kind: 'codeRejected' })
    s3.close()
  })

  it('fails at once on a missing key, naming it', async () => {
    const { s3, opts: o } = opts('s3://code/flows/missing.py', moto.endpoint)
    const lines: string[] = []
    const err = (await fetchCode({ ...o, log: (l) => lines.push(l) }).catch((e: unknown) => e)) as AgentError
    expect(err).toBeInstanceOf(AgentError)
    expect(err.exitCode).toBe(69)
    expect(String((err.cause as Error).message)).toContain('GetObject s3://code/flows/missing.py: NoSuchKey')
    expect(lines).toEqual([])
    s3.close()
  })

  it('retries an unreachable endpoint until the attempts run out', async () => {
    const { s3, opts: o } = opts('s3://code/flows/my%20flow.py', 'http://127.0.0.1:9')
    const lines: string[] = []
    await expect(fetchCode({ ...o, log: (l) => lines.push(l) })).rejects.toMatchObject({ kind: 'codeUnavailable' })
    expect(lines.length).toBe(2)
    s3.close()
  })
})
