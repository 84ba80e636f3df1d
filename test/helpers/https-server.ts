// A loopback HTTPS server with a throwaway self-signed certificate, which the agent under test trusts through NODE_EXTRA_CA_CERTS.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Handler } from './http-server'

export interface HttpsServer {
  url: string
  /** the certificate's file: pass it as NODE_EXTRA_CA_CERTS */
  caFile: string
  hits: () => number
  close: () => Promise<void>
}

/** Makes a key and a one-day certificate for 127.0.0.1 in `dir` with openssl, and serves `handler` with them. */
export async function startHttpsServer(dir: string, handler: Handler): Promise<HttpsServer> {
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore', timeout: 30_000 })
  let hits = 0
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => handler(req, res, ++hits))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: cert,
    hits: () => hits,
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
