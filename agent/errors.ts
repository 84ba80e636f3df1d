// The agent's own failures: one error type with a reserved exit code, a cause and a hint.

/**
 * Exit codes the agent reserves for its own failures. The step's exit code passes
 * through unchanged and a signal death becomes 128+N, so these sit in the sysexits
 * range, away from Python's 1 (exception) and 2 (usage) and from 126-255.
 */
export const ExitCode = {
  /** bad flags, configuration or profile */
  usage: 64,
  /** the code was fetched but refused: sha256 mismatch, unsafe or malformed package */
  codeRejected: 65,
  /** the code could not be downloaded */
  codeUnavailable: 69,
  /** a bug in the agent */
  internal: 70,
  /** the pinned Metaflow is missing and could not be installed */
  runtime: 71,
  /** the task record could not be read or the outputs could not be written */
  outputs: 74,
  /** the AWS role could not be assumed or its credentials served */
  credentials: 77,
} as const

export type ExitCodeName = keyof typeof ExitCode

export class AgentError extends Error {
  readonly kind: ExitCodeName
  /** what the user should do about it, one sentence */
  readonly hint: string | undefined

  constructor(kind: ExitCodeName, message: string, opts: { cause?: unknown; hint?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'AgentError'
    this.kind = kind
    this.hint = opts.hint
  }

  get exitCode(): number {
    return ExitCode[this.kind]
  }
}

/** The message of an error and of every cause under it, joined with ": ". */
export function describeError(err: unknown): string {
  const parts: string[] = []
  let cur: unknown = err
  for (let depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    if (cur instanceof Error) {
      const code = (cur as NodeJS.ErrnoException).code
      const msg = cur.message || cur.name
      parts.push(code && !msg.includes(code) ? `${msg} (${code})` : msg)
      cur = cur.cause
    } else {
      parts.push(String(cur))
      break
    }
  }
  // AggregateError from a failed connect lists each address; its own message is empty.
  if (err instanceof AggregateError && parts.length <= 1) {
    parts.push(...err.errors.map((e) => describeError(e)))
  }
  return parts.filter((p, i) => p && parts.indexOf(p) === i).join(': ')
}

/** A URL safe to print: no user info, no query string (pre-signed URLs carry secrets there). */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw)
    if (u.username || u.password) {
      u.username = '***'
      u.password = ''
    }
    // Appended, not assigned: URL would percent-encode the ellipsis to %E2%80%A6.
    const query = u.search ? '?…' : ''
    u.search = ''
    u.hash = ''
    return u.toString() + query
  } catch {
    return raw.replace(/\?.*$/, '?…')
  }
}

/**
 * The reason a task's AbortSignal carries when the agent got SIGTERM, SIGINT or SIGHUP before
 * its step process existed: whatever the agent started stops and cleans up, and main() exits 128+N.
 */
export class Interrupted extends Error {
  readonly signal: NodeJS.Signals
  constructor(signal: NodeJS.Signals) {
    super(`stopped by ${signal}`)
    this.name = 'Interrupted'
    this.signal = signal
  }
}
