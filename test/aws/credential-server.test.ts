import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'node:http'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCredentialServer } from '../../agent/aws/credential-server'
import type { CredentialServer } from '../../agent/aws/credential-server'
import { RoleSession, stsAssumer } from '../../agent/aws/credentials'
import { MOTO_KEYS, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const run = promisify(execFile)
const tempDir = useTempDir()
const ROLE = 'arn:aws:iam::123456789012:role/step-role'
let moto: Moto
let session: RoleSession

beforeAll(async () => {
  moto = await startMoto()
  const assume = await stsAssumer({ roleArn: ROLE, sessionName: 'cred-server-test', durationSeconds: 3600, region: 'us-east-1', env: { ...MOTO_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint } })
  session = await RoleSession.start({ roleArn: ROLE, assume, refreshBeforeMs: 25 * 60_000, log: () => {} })
})
afterAll(async () => {
  session?.close()
  await moto?.stop()
})

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

// botocore is the real consumer: it must pick the endpoint and reach STS and S3 as the role.
const BOTO = `
import boto3, json
s = boto3.session.Session(region_name='us-east-1')
creds = s.get_credentials()
ident = s.client('sts').get_caller_identity()
s3 = s.client('s3')
s3.create_bucket(Bucket='cred-server-test')
s3.put_object(Bucket='cred-server-test', Key='k', Body=b'v')
print(json.dumps({'method': creds.method, 'arn': ident['Arn']}))
`

describe('the credential server', () => {
  let server: CredentialServer
  let dir: string
  beforeAll(async () => {
    // useTempDir cleans up after each test; this server lives for the whole describe.
    dir = mkdtempSync(join(tmpdir(), 'mfkfp-cred-'))
    server = await startCredentialServer({ current: () => session.current(), dir })
  })
  afterAll(async () => {
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('writes a 0600 token file without a newline and listens on loopback only', () => {
    const token = readFileSync(server.tokenFile, 'utf8')
    expect(token).toMatch(/^[0-9a-f]{64}$/)
    expect(statSync(server.tokenFile).mode & 0o777).toBe(0o600)
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//)
  })

  it("gives botocore the role's credentials through the container provider", async () => {
    const { stdout } = await run(PYTHON, ['-c', BOTO], {
      env: {
        PATH: process.env.PATH,
        AWS_CONTAINER_CREDENTIALS_FULL_URI: server.url,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: server.tokenFile,
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
    })
    const out = JSON.parse(stdout) as { method: string; arn: string }
    expect(out.method).toBe('container-role')
    expect(out.arn).toMatch(/:assumed-role\/step-role\/cred-server-test$/)
    expect(server.stats.served).toBeGreaterThan(0)
  })

  it('refuses a request without the token', async () => {
    const r = await get(server.url)
    expect(r.status).toBe(401)
    expect(r.body).not.toContain(session.current()!.secretAccessKey)
  })

  it('refuses a wrong token, another path, another method and a foreign Host header', async () => {
    const token = readFileSync(server.tokenFile, 'utf8')
    expect((await get(server.url, { authorization: `${token}x` })).status).toBe(401)
    expect((await get(server.url.replace(/credentials$/, 'other'), { authorization: token })).status).toBe(404)
    expect((await get(server.url, { authorization: token }, 'POST')).status).toBe(405)
    expect((await get(server.url, { authorization: token, host: 'evil.example' })).status).toBe(403)
    const ok = await get(server.url, { authorization: token })
    expect(ok.status).toBe(200)
    expect(Object.keys(JSON.parse(ok.body) as object).sort()).toEqual(['AccessKeyId', 'Expiration', 'SecretAccessKey', 'Token'])
  })

  it('answers 503 with a JSON error when no valid credentials are left', async () => {
    const empty = await startCredentialServer({ current: () => undefined, dir: tempDir() })
    try {
      const r = await get(empty.url, { authorization: readFileSync(empty.tokenFile, 'utf8') })
      expect(r.status).toBe(503)
      expect(JSON.parse(r.body)).toMatchObject({ code: 'CredentialsUnavailable' })
    } finally {
      await empty.close()
    }
  })
})
