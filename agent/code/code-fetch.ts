// Downloads the flow from --code-url into a fresh work dir: retries, deadline, size cap, sha256, safe unpacking.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, join, normalize } from 'node:path'
import { Transform } from 'node:stream'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import type { Dispatcher } from 'undici'
import { AgentError, describeError, redactUrl } from '../errors.js'
import { extractPackage, unsafeEntryReason } from './package-extract.js'
import { RetryableError, parseRetryAfter, withRetry } from '../net/retry.js'

/** One attempt at opening the code's bytes; throws RetryableError for what may pass. */
export type Opener = (url: URL, signal: AbortSignal) => Promise<{ body: Readable; length?: number | undefined }>

export interface FetchOptions {
  url: string
  sha256?: string | undefined
  /** plain http is refused without a sha256 unless this is set */
  allowHttp: boolean
  /** the flow's path inside a package */
  flowFile?: string | undefined
  /** a fresh folder the code goes into */
  workDir: string
  maxBytes: number
  /** overall time budget for all attempts */
  timeoutMs: number
  attempts: number
  minDelayMs: number
  maxDelayMs: number
  /** openers for schemes beyond file/http/https (s3) */
  openers?: Record<string, Opener>
  log: (line: string) => void
  now?: () => number
}

export interface FetchedCode {
  /** absolute path of the flow file */
  flowPath: string
  /** folder to run Python in: the package root, or the work dir for a single file */
  codeDir: string
  sha256: string
  bytes: number
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
])

export function isRetryableFetchError(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as Error).cause) {
    if (e instanceof RetryableError) return true
    if (e instanceof SizeLimitError || (e as Error).name === 'AbortError' || (e as Error).name === 'TimeoutError') return false
    const code = (e as NodeJS.ErrnoException).code
    if (code && RETRYABLE_CODES.has(code)) return true
    if (e instanceof AggregateError) return e.errors.some(isRetryableFetchError)
  }
  return false
}

class SizeLimitError extends Error {}

let dispatcher: Dispatcher | undefined
/**
 * Honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY and follows redirects; retries are ours. undici
 * is loaded here, not at start-up, because loading it costs ~50 ms that file:// and s3:// steps
 * need not pay.
 */
async function httpDispatcher(): Promise<Dispatcher> {
  if (!dispatcher) {
    const { EnvHttpProxyAgent, interceptors } = await import('undici')
    dispatcher = new EnvHttpProxyAgent({ connect: { timeout: 10_000 }, headersTimeout: 60_000, bodyTimeout: 60_000 })
      .compose(interceptors.redirect({ maxRedirections: 5 }))
  }
  return dispatcher
}

export const httpOpener: Opener = async (url, signal) => {
  const { request } = await import('undici')
  const res = await request(url, { method: 'GET', signal, dispatcher: await httpDispatcher() })
  if (res.statusCode === 200) {
    const len = Number(res.headers['content-length'])
    return { body: res.body, length: Number.isFinite(len) ? len : undefined }
  }
  res.body.resume()
  const msg = `HTTP ${res.statusCode}`
  if (res.statusCode === 429 || res.statusCode >= 500) {
    throw new RetryableError(msg, { retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()) })
  }
  throw new Error(msg)
}

export const fileOpener: Opener = async (url) => {
  const path = fileURLToPath(url)
  const info = await stat(path)
  return { body: createReadStream(path), length: info.size }
}

/** Passes bytes through while hashing them and enforcing the size cap. */
function meter(maxBytes: number) {
  const hash = createHash('sha256')
  let bytes = 0
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length
      if (bytes > maxBytes) return done(new SizeLimitError(`larger than the ${maxBytes}-byte limit`))
      hash.update(chunk)
      done(null, chunk)
    },
  })
  return { stream: t, result: () => ({ bytes, sha256: hash.digest('hex') }) }
}

/**
 * Downloads the code and leaves either the complete flow in `workDir` or nothing:
 * bytes land in a temp file that is renamed only after the size and sha256 checks.
 */
export async function fetchCode(opts: FetchOptions): Promise<FetchedCode> {
  const shown = redactUrl(opts.url)
  let url: URL
  try {
    url = new URL(opts.url)
  } catch (err) {
    throw new AgentError('usage', `failed to parse --code-url ${shown}`, { cause: err, hint: 'give an https://, s3:// or file:// URL' })
  }
  const scheme = url.protocol.replace(/:$/, '')
  const openers: Record<string, Opener> = { file: fileOpener, http: httpOpener, https: httpOpener, ...opts.openers }
  const opener = openers[scheme]
  if (!opener) {
    throw new AgentError('usage', `failed to fetch ${shown}: the ${scheme}:// scheme is not supported`, {
      hint: `use one of ${Object.keys(openers).map((s) => `${s}://`).join(', ')}`,
    })
  }
  if (scheme === 'http' && !opts.sha256 && !opts.allowHttp) {
    throw new AgentError('usage', `refusing to fetch ${shown} over plain http without --code-sha256`, {
      hint: 'use https://, pin the content with --code-sha256, or pass --allow-insecure-http',
    })
  }
  const expected = opts.sha256?.toLowerCase()
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected)) {
    throw new AgentError('usage', `failed to parse --code-sha256: not 64 hex digits`, { hint: 'pass the output of sha256sum' })
  }

  await mkdir(opts.workDir, { recursive: true })
  const tmp = join(opts.workDir, `.download-${process.pid}.part`)
  const now = opts.now ?? Date.now
  const deadline = now() + opts.timeoutMs
  let got: { bytes: number; sha256: string }
  try {
    got = await withRetry(
      async () => {
        const signal = AbortSignal.timeout(Math.max(1, deadline - now()))
        const { body, length } = await opener(url, signal)
        if (length !== undefined && length > opts.maxBytes) {
          body.destroy()
          throw new SizeLimitError(`${length} bytes is larger than the ${opts.maxBytes}-byte limit`)
        }
        const m = meter(opts.maxBytes)
        await pipeline(body, m.stream, createWriteStream(tmp), { signal })
        return m.result()
      },
      isRetryableFetchError,
      {
        attempts: opts.attempts,
        minDelayMs: opts.minDelayMs,
        maxDelayMs: opts.maxDelayMs,
        deadline,
        now,
        onRetry: (err, attempt, delay) =>
          opts.log(`fetching ${shown} failed (attempt ${attempt}/${opts.attempts}): ${describeError(err)}; retrying in ${delay} ms`),
      },
    )
  } catch (err) {
    await rm(tmp, { force: true })
    const refused = err instanceof SizeLimitError
    throw new AgentError(refused ? 'codeRejected' : 'codeUnavailable', `failed to fetch ${shown}`, {
      cause: err,
      hint: refused
        ? 'raise --code-max-bytes if the code really is this large'
        : 'check that the URL is right and reachable from the pod',
    })
  }

  if (expected !== undefined && got.sha256 !== expected) {
    await rm(tmp, { force: true })
    throw new AgentError('codeRejected', `refusing to run ${shown}: its sha256 is ${got.sha256}, not ${expected}`, {
      hint: 'update --code-sha256 if the code changed on purpose, or find out who changed it',
    })
  }

  if (await isGzip(tmp)) {
    const codeDir = join(opts.workDir, 'code')
    // A reused --work-dir must not mix an older package's files into this one.
    await rm(codeDir, { recursive: true, force: true })
    await mkdir(codeDir)
    try {
      await extractPackage(tmp, codeDir, { maxBytes: opts.maxBytes * 20, maxEntries: 100_000 })
    } catch (err) {
      throw new AgentError('codeRejected', `failed to unpack ${shown}`, { cause: err, hint: 'build the package with plain files and folders only' })
    } finally {
      await rm(tmp, { force: true })
    }
    const flowPath = await locateFlowFile(codeDir, opts.flowFile, shown)
    return { flowPath, codeDir, ...got }
  }
  const name = basename(url.pathname).endsWith('.py') ? basename(url.pathname) : 'flow.py'
  const flowPath = join(opts.workDir, name)
  await rename(tmp, flowPath)
  return { flowPath, codeDir: opts.workDir, ...got }
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r')
  try {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(2), 0, 2, 0)
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b
  } finally {
    await fh.close()
  }
}

async function locateFlowFile(codeDir: string, flowFile: string | undefined, shown: string): Promise<string> {
  if (flowFile !== undefined) {
    const reason = unsafeEntryReason(flowFile, 'File')
    if (reason) throw new AgentError('usage', `failed to use --flow-file: ${reason}`, { hint: 'give a path relative to the package root' })
    const path = join(codeDir, normalize(flowFile))
    const info = await stat(path).catch(() => undefined)
    if (!info?.isFile()) {
      throw new AgentError('usage', `failed to find --flow-file ${flowFile} in ${shown}`, { hint: 'give its path relative to the package root' })
    }
    return path
  }
  const top = (await readdir(codeDir, { withFileTypes: true })).filter((d) => d.isFile() && d.name.endsWith('.py'))
  if (top.length === 1) return join(codeDir, (top[0] as { name: string }).name)
  throw new AgentError('usage', `failed to choose the flow file in ${shown}: it has ${top.length} top-level .py files`, {
    hint: `name it with --flow-file${top.length ? ` (one of ${top.map((d) => d.name).join(', ')})` : ''}`,
  })
}
