// One KFP REST request: credentials on every call, KFP's error shape read into one line, and retries only where they are safe.
import { AgentError, describeError } from '../errors.js'
import { RetryableError, withRetry } from '../net/retry.js'
import type { Credential } from './auth.js'

/** A non-2xx answer from KFP: the HTTP status and KFP's google.rpc.Status message. */
export class KfpHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly grpcCode: number | undefined,
  ) {
    super(message)
    this.name = 'KfpHttpError'
  }
}

export interface HttpOptions {
  /** the API's base URL, e.g. https://kubeflow.example.com/pipeline */
  host: string
  credential: Credential
  signal?: AbortSignal | undefined
  /** retries of a request that is safe to repeat */
  attempts?: number
  minDelayMs?: number
  maxDelayMs?: number
  /** one request's limit */
  timeoutMs?: number
  onRetry?: (line: string) => void
}

export type Query = Record<string, string | undefined>

/** Answers that a later try may not get: the server's 5xx (but 501), 429, a reset or refused connection, a timeout. */
export function isTransient(err: unknown): boolean {
  // KFP answers some permanent faults (an invalid spec) with 500 and InvalidArgument (3): trying again cannot help.
  if (err instanceof KfpHttpError) return err.grpcCode !== 3 && ((err.status >= 500 && err.status !== 501) || err.status === 429)
  return err instanceof RetryableError
}

export class KfpHttp {
  constructor(private readonly o: HttpOptions) {}

  get host(): string {
    return this.o.host
  }

  /** A request that is safe to repeat (GET, terminate): retried with backoff on transient failures. */
  async idempotent<T>(method: string, path: string, query: Query = {}, body?: unknown, what = `${method} ${path}`): Promise<T> {
    return withRetry(() => this.once<T>(method, path, query, body), isTransient, {
      attempts: this.o.attempts ?? 5,
      minDelayMs: this.o.minDelayMs ?? 500,
      maxDelayMs: this.o.maxDelayMs ?? 8000,
      deadline: Date.now() + 120_000,
      signal: this.o.signal,
      onRetry: (err, attempt, delay) => this.o.onRetry?.(`retrying ${what} in ${(delay / 1000).toFixed(1)} s after attempt ${attempt}: ${this.clean(describe(err))}`),
    })
  }

  /** A multipart upload of one file in the field KFP reads (uploadfile); one try, like once(). */
  async upload<T>(path: string, query: Query, filename: string, text: string): Promise<T> {
    const form = new FormData()
    form.append('uploadfile', new Blob([text], { type: 'application/x-yaml' }), filename)
    return this.once<T>('POST', path, query, form)
  }

  /** One try, no retry: for a POST that creates something (see submit's safe re-try of run creation). */
  async once<T>(method: string, path: string, query: Query = {}, body?: unknown): Promise<T> {
    const qs = Object.entries(query)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&')
    const href = this.o.host.replace(/\/+$/, '') + path + (qs ? `?${qs}` : '')
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.o.credential.headers()) }
    const form = body instanceof FormData
    if (body !== undefined && !form) headers['content-type'] = 'application/json'
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 30_000)
    let res: Response
    try {
      res = await fetch(href, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        signal: this.o.signal ? AbortSignal.any([this.o.signal, timeout]) : timeout,
        redirect: 'manual',
      })
    } catch (err) {
      if (this.o.signal?.aborted) throw this.o.signal.reason
      throw new RetryableError(timeout.aborted ? `no answer in ${(this.o.timeoutMs ?? 30_000) / 1000} s` : 'no connection', { cause: err })
    }
    const text = await res.text().catch(() => '')
    if (res.status >= 300 && res.status < 400) {
      // A login proxy (oauth2-proxy, Dex) answers an unauthenticated API call with a redirect to its login page.
      throw new KfpHttpError(401, `redirected to ${redactLocation(res.headers.get('location'))}, a login page`, undefined)
    }
    if (!res.ok) {
      let message = text.trim().slice(0, 500) || res.statusText
      let code: number | undefined
      try {
        const j = JSON.parse(text) as { message?: unknown; error?: unknown; code?: unknown }
        if (typeof j.message === 'string' && j.message) message = j.message
        else if (typeof j.error === 'string' && j.error) message = j.error
        if (typeof j.code === 'number') code = j.code
      } catch {
        // not KFP's JSON shape (a proxy's HTML page, say): keep its first line
        message = message.split('\n')[0] ?? message
      }
      throw new KfpHttpError(res.status, this.clean(`${res.status} ${message}`), code)
    }
    try {
      return (text ? JSON.parse(text) : {}) as T
    } catch (err) {
      throw new AgentError('codeUnavailable', `failed to read KFP's answer to ${method} ${path}: not JSON`, { cause: err, hint: 'check that the host is the KFP API (for a Kubeflow install, https://<host>/pipeline)' })
    }
  }

  /** A message with any credential the server echoed masked. */
  clean(text: string): string {
    let out = text
    for (const s of this.o.credential.secrets()) out = out.split(s).join('****')
    return out.replace(/\s*\n\s*/g, ' ')
  }
}

/**
 * The filter's query value. KFP decodes it twice (the gateway, then its own url.QueryUnescape), so it
 * is encoded here once and again by the query string: a '+' or '%' in a name survives both decodings.
 */
export function filterParam(json: string): string {
  return encodeURIComponent(json)
}

function describe(err: unknown): string {
  if (err instanceof KfpHttpError) return err.message
  return describeError(err)
}

export { describe as describeHttpError }

function redactLocation(loc: string | null): string {
  if (!loc) return 'another page'
  try {
    const u = new URL(loc)
    return `${u.origin}${u.pathname}`
  } catch {
    return 'another page'
  }
}
