// Downloads the flow from --code-url into a fresh folder: retries, deadline, size cap, sha256, no downgrade, bounded unpacking.
import { createHash } from 'node:crypto'
import { constants as fsConstants, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, join, normalize } from 'node:path'
import { Transform } from 'node:stream'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import type { Dispatcher } from 'undici'
import { AgentError, describeError, redactUrl } from '../errors.js'
import { PackageRefusedError, extractPackage, unsafeEntryReason } from './package-extract.js'
import { RetryableError, parseRetryAfter, withRetry } from '../net/retry.js'

/**
 * One attempt at opening the code's bytes; throws RetryableError for what may pass. An opener
 * that follows redirects calls `checkRedirect` for every hop before it follows it.
 */
export type Opener = (
  url: URL,
  signal: AbortSignal,
  checkRedirect?: (from: URL, to: URL) => void,
) => Promise<{ body: Readable; length?: number | undefined }>

/**
 * Entries a package may hold. Its bytes are capped by --code-max-bytes twice: the download,
 * and the inflated tar stream, so a small .tar.gz of zeros is refused as soon as it passes the
 * cap instead of filling the disk.
 */
export const MAX_PACKAGE_ENTRIES = 100_000

export interface FetchOptions {
  url: string
  sha256?: string | undefined
  /** plain http is refused without a sha256 unless this is set */
  allowHttp: boolean
  /** the flow's path inside a package */
  flowFile?: string | undefined
  /** the folder the code goes into; the code gets a fresh folder of its own inside it */
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
  /** stops the download or the unpacking; the signal's reason is thrown */
  signal?: AbortSignal | undefined
  maxEntries?: number
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
 * Honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY; retries and redirects are ours. undici is
 * loaded here, not at start-up, because loading it costs ~50 ms that file:// and s3:// steps
 * need not pay.
 */
async function httpDispatcher(): Promise<Dispatcher> {
  if (!dispatcher) {
    const { EnvHttpProxyAgent } = await import('undici')
    dispatcher = new EnvHttpProxyAgent({ connect: { timeout: 10_000 }, headersTimeout: 60_000, bodyTimeout: 60_000 })
  }
  return dispatcher
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 5

/**
 * GETs the URL, following up to 5 redirects itself: undici's redirect interceptor would follow
 * an https:// URL to plain http:// without asking, so every hop goes through `checkRedirect`.
 */
export const httpOpener: Opener = async (url, signal, checkRedirect) => {
  const { request } = await import('undici')
  const d = await httpDispatcher()
  let current = url
  for (let hops = 0; ; hops++) {
    const res = await request(current, { method: 'GET', signal, dispatcher: d })
    const location = res.headers.location
    if (REDIRECT_STATUSES.has(res.statusCode) && typeof location === 'string') {
      discard(res.body)
      if (hops >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`)
      const next = new URL(location, current)
      checkRedirect?.(current, next)
      current = next
      continue
    }
    if (res.statusCode === 200) {
      const len = Number(res.headers['content-length'])
      return { body: res.body, length: Number.isFinite(len) ? len : undefined }
    }
    discard(res.body)
    const msg = `HTTP ${res.statusCode}`
    if (res.statusCode === 429 || res.statusCode >= 500) {
      throw new RetryableError(msg, { retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()) })
    }
    throw new Error(msg)
  }
}

/** Drops a response body we do not read; undici reports its destroy as an error nobody needs. */
function discard(body: Readable): void {
  body.on('error', () => undefined)
  body.destroy()
}

/**
 * Opens a regular file only. O_NONBLOCK because opening a FIFO without a writer blocks a
 * libuv thread for good: the deadline fired, but the agent could never exit.
 */
export const fileOpener: Opener = async (url) => {
  const path = fileURLToPath(url)
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
  const info = await fh.stat().catch(async (err: unknown) => {
    await fh.close()
    throw err
  })
  if (!info.isFile()) {
    await fh.close()
    throw new AgentError('usage', `failed to read ${redactUrl(url.href)}: it is ${kindOf(info)}, not a regular file`, {
      hint: 'point --code-url at the flow file or the .tar.gz package itself',
    })
  }
  return { body: fh.createReadStream(), length: info.size }
}

function kindOf(info: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (info.isDirectory()) return 'a folder'
  if (info.isFIFO()) return 'a FIFO'
  if (info.isSocket()) return 'a socket'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device'
  return 'not a file'
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
 * Downloads the code and leaves either the complete flow in a fresh folder inside `workDir`
 * or nothing: bytes land in a temp file that is renamed only after the size and sha256
 * checks. Nothing that was in `workDir` before is touched. The deadline covers every attempt
 * and the unpacking; an abort through `signal` removes what was made and throws its reason.
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
  // A redirect obeys the rule the URL given obeys: no plain http without a pin or the opt-in.
  const checkRedirect = (from: URL, to: URL) => {
    const hop = `the redirect from ${redactUrl(from.href)} to ${redactUrl(to.href)}`
    if (to.protocol !== 'https:' && to.protocol !== 'http:') {
      throw new AgentError('codeRejected', `refusing to follow ${hop}: only http(s) redirects are followed`, {
        hint: 'give the final URL as --code-url',
      })
    }
    if (to.protocol === 'http:' && expected === undefined && !opts.allowHttp) {
      throw new AgentError('codeRejected', `refusing to follow ${hop}: plain http without --code-sha256`, {
        hint: 'serve the code over https all the way, pin it with --code-sha256, or pass --allow-insecure-http',
      })
    }
  }

  const timeout = AbortSignal.timeout(Math.max(1, opts.timeoutMs))
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout
  // One level only: a recursive mkdir spins forever on Node 20 under e.g. /proc.
  await mkdir(opts.workDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err
  })
  // The code's own folder: made here, so removing it on failure can only remove our files.
  const dir = await mkdtemp(join(opts.workDir, 'code-'))
  const tmp = join(dir, 'download.part')
  const fail = async (err: unknown): Promise<never> => {
    await rm(dir, { recursive: true, force: true })
    if (opts.signal?.aborted) throw opts.signal.reason
    throw err
  }
  const now = opts.now ?? Date.now
  const deadline = now() + opts.timeoutMs
  let got: { bytes: number; sha256: string }
  try {
    got = await withRetry(
      async () => {
        const { body, length } = await opener(url, signal, checkRedirect)
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
        signal,
        onRetry: (err, attempt, delay) =>
          opts.log(`fetching ${shown} failed (attempt ${attempt}/${opts.attempts}): ${describeError(err)}; retrying in ${delay} ms`),
      },
    )
  } catch (err) {
    if (err instanceof AgentError) return fail(err)
    const refused = err instanceof SizeLimitError
    return fail(new AgentError(refused ? 'codeRejected' : 'codeUnavailable', `failed to fetch ${shown}`, {
      cause: err,
      hint: refused
        ? 'raise --code-max-bytes if the code really is this large'
        : 'check that the URL is right and reachable from the pod',
    }))
  }

  if (expected !== undefined && got.sha256 !== expected) {
    return fail(new AgentError('codeRejected', `refusing to run ${shown}: its sha256 is ${got.sha256}, not ${expected}`, {
      hint: 'update --code-sha256 if the code changed on purpose, or find out who changed it',
    }))
  }

  if (await isGzip(tmp)) {
    const codeDir = join(dir, 'package')
    try {
      await mkdir(codeDir)
      await extractPackage(tmp, codeDir, {
        maxBytes: opts.maxBytes,
        maxEntries: opts.maxEntries ?? MAX_PACKAGE_ENTRIES,
        signal,
      })
      await rm(tmp, { force: true })
    } catch (err) {
      if (timeout.aborted && !opts.signal?.aborted) {
        return fail(new AgentError('codeUnavailable', `failed to unpack ${shown}: --code-timeout passed while unpacking`, {
          hint: 'raise --code-timeout, or make the package smaller',
        }))
      }
      return fail(new AgentError('codeRejected', `failed to unpack ${shown}`, {
        cause: err,
        hint: err instanceof PackageRefusedError && /more than/.test(err.message)
          ? 'keep data out of the code package, or raise --code-max-bytes, which caps the unpacked size too'
          : 'build the package with plain files and folders only',
      }))
    }
    try {
      const flowPath = await locateFlowFile(codeDir, opts.flowFile, shown)
      return { flowPath, codeDir, ...got }
    } catch (err) {
      return fail(err)
    }
  }
  const name = basename(url.pathname).endsWith('.py') ? basename(url.pathname) : 'flow.py'
  const flowPath = join(dir, name)
  await rename(tmp, flowPath)
  return { flowPath, codeDir: dir, ...got }
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
