// Serves the role's cached credentials to the step on loopback, in the AWS container-credentials format.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { RoleCredentials } from './credentials.js'

export interface CredentialServer {
  /** AWS_CONTAINER_CREDENTIALS_FULL_URI for the step */
  url: string
  /** AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE for the step */
  tokenFile: string
  /** requests answered with credentials, and requests refused */
  stats: { served: number; refused: number }
  close(): Promise<void>
}

export const CREDENTIALS_PATH = '/metaflow-kfp/v1/credentials'

const digest = (s: string) => createHash('sha256').update(s).digest()

/**
 * Listens on 127.0.0.1 on a free port. The token (32 random bytes, hex) goes into a 0600 file
 * with no newline, which botocore and the JS SDK both read on every fetch. Only GET of one
 * path with the exact token and a loopback Host header gets credentials; everything is
 * answered at once from `current`, because botocore gives the endpoint 2 s.
 */
export async function startCredentialServer(opts: { current: () => RoleCredentials | undefined; dir: string }): Promise<CredentialServer> {
  const token = randomBytes(32).toString('hex')
  const tokenFile = join(opts.dir, 'aws-container-token')
  await writeFile(tokenFile, token, { mode: 0o600, flag: 'wx' })
  const expected = digest(token)
  const stats = { served: 0, refused: 0 }
  let port = 0

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
    res.end(text)
  }
  const refuse = (res: ServerResponse, status: number, code: string, message: string) => {
    stats.refused++
    reply(res, status, { code, message })
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // A DNS-rebinding page would arrive with its own host name.
    const host = req.headers.host ?? ''
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return refuse(res, 403, 'Forbidden', 'unexpected Host header')
    if (req.method !== 'GET') return refuse(res, 405, 'MethodNotAllowed', 'only GET is served')
    if (req.url !== CREDENTIALS_PATH) return refuse(res, 404, 'NotFound', 'no such path')
    const auth = req.headers.authorization ?? ''
    // Comparing digests keeps the comparison constant-time whatever the length of the guess.
    if (!auth || !timingSafeEqual(digest(auth), expected)) return refuse(res, 401, 'Unauthorized', 'missing or wrong authorization token')
    const c = opts.current()
    if (!c) return reply(res, 503, { code: 'CredentialsUnavailable', message: 'no valid credentials for the role right now' })
    stats.served++
    reply(res, 200, {
      AccessKeyId: c.accessKeyId,
      SecretAccessKey: c.secretAccessKey,
      Token: c.sessionToken,
      Expiration: c.expiration.toISOString(),
    })
  }

  const server: Server = createServer(handle)
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}${CREDENTIALS_PATH}`,
    tokenFile,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
