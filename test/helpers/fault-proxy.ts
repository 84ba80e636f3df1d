// A loopback HTTP proxy in front of moto's S3 that injects faults per request: S3 error answers, resets mid-object, stalls.
import { randomBytes } from 'node:crypto'
import { createServer, request as httpRequest } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** Whose request it is: the agent's AWS SDK for JavaScript, or botocore inside the step (Metaflow's S3 client). */
export type Client = 'agent' | 'step' | 'other'

export type Fault =
  /** an S3 error answer with S3's XML body, e.g. 503 SlowDown or 500 InternalError */
  | { kind: 'status'; status: number; code: string }
  /** a GET: the headers and the first `afterBytes` bytes of moto's body, then the connection is destroyed;
   *  a PUT: `afterBytes` bytes of the upload are read, then the connection is destroyed */
  | { kind: 'reset'; afterBytes: number }
  /** never answers; the connection stays open until the client gives up or the proxy closes */
  | { kind: 'stall' }

export interface FaultRule {
  /** HTTP method, e.g. GET or PUT; any when absent */
  method?: string
  /** matched against the decoded path, e.g. /bucket/prefix/Flow/run/step/task/0.data.json */
  path: RegExp
  /** whose requests; any when absent */
  client?: Client
  fault: Fault
  /** how many matching requests get the fault: 1-2 is a transient fault, Infinity a permanent one */
  times: number
}

export interface Seen {
  method: string
  path: string
  client: Client
  /** the fault injected, or undefined when the request went through untouched */
  fault?: Fault['kind'] | undefined
}

export interface FaultProxy {
  /** the endpoint to give METAFLOW_S3_ENDPOINT_URL */
  url: string
  /** every request, in order, with the fault it got */
  seen: Seen[]
  /** adds a rule; rules are tried in the order added and each counts down its own `times` */
  add(rule: FaultRule): void
  /** drops every rule and forgets the requests seen */
  reset(): void
  /** the requests that got a fault */
  faulted(): Seen[]
  close(): Promise<void>
}

/** The User-Agent tells the two S3 clients apart: the agent's SDK says aws-sdk-js, botocore says Botocore. */
export function clientOf(req: IncomingMessage): Client {
  const ua = `${req.headers['user-agent'] ?? ''} ${req.headers['x-amz-user-agent'] ?? ''}`
  if (/aws-sdk-js/i.test(ua)) return 'agent'
  if (/botocore|boto3/i.test(ua)) return 'step'
  return 'other'
}

/** The XML body S3 sends with an error status, which both SDKs parse into the error's code. */
export function s3ErrorBody(code: string, resource: string): string {
  const messages: Record<string, string> = {
    SlowDown: 'Please reduce your request rate.',
    InternalError: 'We encountered an internal error. Please try again.',
    ServiceUnavailable: 'Service is unable to handle request.',
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${messages[code] ?? code}</Message>` +
    `<Resource>${resource.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Resource><RequestId>${randomBytes(8).toString('hex').toUpperCase()}</RequestId></Error>`
}

/** Starts the proxy on 127.0.0.1 in front of `upstream` (moto's endpoint). */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream)
  const rules: (FaultRule & { left: number })[] = []
  const seen: Seen[] = []
  const sockets = new Set<Socket>()

  const pick = (req: IncomingMessage, path: string, client: Client) => {
    for (const r of rules) {
      if (r.left <= 0) continue
      if (r.method && r.method !== req.method) continue
      if (r.client && r.client !== client) continue
      if (!r.path.test(path)) continue
      r.left -= 1
      return r.fault
    }
    return undefined
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let path: string
    try {
      path = decodeURIComponent((req.url ?? '/').split('?')[0] as string)
    } catch {
      path = req.url ?? '/'
    }
    const client = clientOf(req)
    const fault = pick(req, path, client)
    seen.push({ method: req.method ?? '?', path, client, fault: fault?.kind })

    if (fault?.kind === 'stall') {
      // Read the upload so the client is left waiting for an answer, not for a window.
      req.resume()
      return
    }
    if (fault?.kind === 'status') {
      req.resume()
      req.once('end', () => {
        const body = s3ErrorBody(fault.code, path)
        res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(fault.code === 'SlowDown' ? { 'retry-after': '1' } : {}) })
        res.end(body)
      })
      return
    }
    if (fault?.kind === 'reset' && req.method !== 'GET' && req.method !== 'HEAD') {
      let got = 0
      req.on('data', (chunk: Buffer) => {
        got += chunk.length
        if (got >= fault.afterBytes) req.socket.destroy()
      })
      req.once('end', () => req.socket.destroy())
      return
    }

    const headers = { ...req.headers, host: target.host }
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
      if (fault?.kind === 'reset') {
        // Promise the whole object, send part of it, then cut the connection: a reset mid-object.
        res.writeHead(upRes.statusCode ?? 502, upRes.headers)
        let sent = 0
        upRes.on('data', (chunk: Buffer) => {
          if (sent >= fault.afterBytes) return
          const part = chunk.subarray(0, fault.afterBytes - sent)
          sent += part.length
          res.write(part)
          if (sent >= fault.afterBytes) setTimeout(() => res.socket?.destroy(), 20)
        })
        upRes.once('end', () => res.socket?.destroy())
        return
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      upRes.pipe(res)
    })
    up.on('error', () => res.socket?.destroy())
    req.pipe(up)
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    add: (rule) => {
      rules.push({ ...rule, left: rule.times })
    },
    reset: () => {
      rules.splice(0)
      seen.splice(0)
    },
    faulted: () => seen.filter((s) => s.fault !== undefined),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
