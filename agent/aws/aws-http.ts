// An AWS SDK request handler over undici, so the agent's S3 and STS calls honour HTTP(S)_PROXY and NO_PROXY.
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'

/** The request the SDK hands a handler (a structural subset of @smithy's HttpRequest). */
interface SdkRequest {
  method: string
  protocol: string
  hostname: string
  port?: number | undefined
  path: string
  query?: Record<string, string | string[] | null> | undefined
  headers: Record<string, string>
  body?: unknown
}

const PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'] as const

/** True when the environment names a proxy; only then does the agent swap the SDK's own handler. */
export function proxyConfigured(env: NodeJS.ProcessEnv): boolean {
  return PROXY_VARS.some((k) => !!env[k])
}

// RFC 3986 escaping as the SDK's own query builder does it, so signatures match.
const escape = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

function queryString(query: SdkRequest['query']): string {
  if (!query) return ''
  const parts: string[] = []
  for (const key of Object.keys(query).sort()) {
    const v = query[key]
    if (Array.isArray(v)) for (const item of v) parts.push(`${escape(key)}=${escape(item)}`)
    else parts.push(v || typeof v === 'string' ? `${escape(key)}=${escape(v)}` : escape(key))
  }
  return parts.length ? `?${parts.join('&')}` : ''
}

/**
 * The SDK's Node handler ignores proxy variables; undici's EnvHttpProxyAgent reads them (lower
 * case first) from the environment given here. Retries stay with the SDK.
 */
export class ProxyRequestHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' }
  private dispatcher: Dispatcher | undefined

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  // undici is loaded on the first request, not at start-up: loading it costs ~50 ms.
  private async proxyAgent(): Promise<Dispatcher> {
    if (!this.dispatcher) {
      const { EnvHttpProxyAgent } = await import('undici')
      const env = this.env
      this.dispatcher = new EnvHttpProxyAgent({
        httpProxy: env.http_proxy || env.HTTP_PROXY || undefined,
        httpsProxy: env.https_proxy || env.HTTPS_PROXY || env.http_proxy || env.HTTP_PROXY || undefined,
        noProxy: env.no_proxy ?? env.NO_PROXY ?? '',
        connect: { timeout: 10_000 },
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      })
    }
    return this.dispatcher
  }

  async handle(req: SdkRequest, opts: { abortSignal?: AbortSignal | undefined } = {}): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Readable } }> {
    const port = req.port ? `:${req.port}` : ''
    const url = `${req.protocol}//${req.hostname}${port}${req.path}${queryString(req.query)}`
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(req.headers)) {
      // undici refuses these; it frames the body itself and does not wait for 100-continue.
      if (/^(expect|connection|transfer-encoding|keep-alive|upgrade)$/i.test(k)) continue
      headers[k] = v
    }
    const { request } = await import('undici')
    const res = await request(url, {
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: (req.body ?? undefined) as Dispatcher.DispatchOptions['body'],
      signal: opts.abortSignal,
      dispatcher: await this.proxyAgent(),
    })
    const out: Record<string, string> = {}
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v
    return { response: { statusCode: res.statusCode, headers: out, body: res.body } }
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {}
  }

  destroy(): void {
    void this.dispatcher?.close()
  }
}
