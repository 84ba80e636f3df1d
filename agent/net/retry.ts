// Retry an async action with exponential backoff, full jitter, Retry-After and an overall deadline.

export interface RetryOptions {
  /** total attempts, the first included */
  attempts: number
  /** base delay before the second attempt */
  minDelayMs: number
  /** cap on any one delay */
  maxDelayMs: number
  /** the wall-clock time (ms since epoch) after which no new attempt starts */
  deadline: number
  /** clock and sleep, so tests run without waiting */
  now?: () => number
  sleep?: (ms: number) => Promise<void>
  random?: () => number
  /** called before each wait, for a log line */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void
  /** stops the waiting and any further attempt; its reason is thrown */
  signal?: AbortSignal | undefined
}

/** An error that may be retried; `retryAfterMs` is the server's wish when it said so. */
export class RetryableError extends Error {
  readonly retryAfterMs: number | undefined
  constructor(message: string, opts: { cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RetryableError'
    this.retryAfterMs = opts.retryAfterMs
  }
}

/** A wait that an abort ends at once, rejecting with the abort's reason. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Runs `action` until it succeeds, throws a non-retryable error, runs out of attempts,
 * or the next wait would pass the deadline. The last error propagates unchanged; after an
 * abort, the abort's reason does.
 */
export async function withRetry<T>(
  action: (attempt: number) => Promise<T>,
  isRetryable: (err: unknown) => boolean,
  opts: RetryOptions,
): Promise<T> {
  const now = opts.now ?? Date.now
  const sleep = opts.sleep ?? ((ms: number) => abortableSleep(ms, opts.signal))
  const random = opts.random ?? Math.random
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted()
    try {
      return await action(attempt)
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason
      if (attempt >= opts.attempts || !isRetryable(err)) throw err
      const backoff = Math.min(opts.maxDelayMs, opts.minDelayMs * 2 ** (attempt - 1))
      let delay = Math.round(backoff * random())
      const wanted = err instanceof RetryableError ? err.retryAfterMs : undefined
      if (wanted !== undefined) delay = Math.max(delay, Math.min(wanted, opts.maxDelayMs))
      if (now() + delay >= opts.deadline) throw err
      opts.onRetry?.(err, attempt, delay)
      await sleep(delay)
    }
  }
}

/** Parses an HTTP Retry-After header (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (!v) return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
