// Assumes the step's IAM role through STS, caches the credentials and refreshes them in the background.
import { AgentError, describeError } from '../errors.js'

export interface RoleCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
  expiration: Date
}

/** One AssumeRole call; the real one is `stsAssumer`, tests may count calls around it. */
export type Assumer = () => Promise<RoleCredentials>

export interface RoleSessionOptions {
  roleArn: string
  assume: Assumer
  /** refresh when this little time is left; must stay above botocore's 15-minute advisory window */
  refreshBeforeMs: number
  now?: () => number
  log: (line: string) => void
  /** values that must never be printed (the source identity's keys), scrubbed from error text */
  secrets?: readonly (string | undefined)[]
}

export const CREDENTIAL_DEFAULTS = {
  /** STS DurationSeconds: one hour is the most a chained role session may last */
  durationSeconds: 3600,
  /** 25 minutes: botocore re-fetches on every call below 15 minutes left and blocks below 10 */
  refreshBeforeMs: 25 * 60_000,
  /** first retry delay after a failed background refresh */
  retryMinMs: 5_000,
  retryMaxMs: 60_000,
} as const

/**
 * Test-only knobs, read from the environment so an end-to-end test can watch a step outlive
 * its first credentials in seconds: METAFLOW_KFP_TEST_CREDENTIAL_TTL (STS DurationSeconds) and
 * METAFLOW_KFP_TEST_CREDENTIAL_REFRESH (seconds before expiry to refresh). Real STS refuses a
 * DurationSeconds under 900, so they are useless outside a test server.
 */
export function credentialTiming(env: NodeJS.ProcessEnv): { durationSeconds: number; refreshBeforeMs: number } {
  const ttl = Number(env.METAFLOW_KFP_TEST_CREDENTIAL_TTL)
  const refresh = Number(env.METAFLOW_KFP_TEST_CREDENTIAL_REFRESH)
  return {
    durationSeconds: ttl > 0 ? Math.round(ttl) : CREDENTIAL_DEFAULTS.durationSeconds,
    refreshBeforeMs: refresh > 0 ? refresh * 1000 : CREDENTIAL_DEFAULTS.refreshBeforeMs,
  }
}

/** STS wants 2-64 characters of [\w+=,.@-]; the name shows up in CloudTrail, so it names the task. */
export function roleSessionName(parts: readonly string[]): string {
  const name = parts.join('-').replace(/[^\w+=,.@-]/g, '_').slice(0, 64)
  return name.length >= 2 ? name : `metaflow-kfp-${name}`
}

/** Replaces every secret value and anything shaped like an AWS access key id with ****. */
export function scrub(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('****')
  return out.replace(/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/g, '****')
}

/**
 * The real AssumeRole: @aws-sdk/credential-providers' fromTemporaryCredentials, whose source
 * identity is the SDK's default chain (environment, web identity/IRSA, container, instance).
 * The SDK is loaded here, not at the top, so steps on a local datastore never pay for it.
 */
export async function stsAssumer(opts: {
  roleArn: string
  sessionName: string
  durationSeconds: number
  region: string
  env: NodeJS.ProcessEnv
  /** an SDK request handler, when a proxy is configured (aws-http.ts) */
  requestHandler?: unknown
}): Promise<Assumer> {
  const { fromTemporaryCredentials } = await import('@aws-sdk/credential-providers')
  const endpoint = opts.env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true' ? undefined : opts.env.AWS_ENDPOINT_URL_STS || opts.env.AWS_ENDPOINT_URL || undefined
  const e = opts.env
  // Keys in the given environment are the source, as the SDK's fromEnv would read them from
  // process.env; otherwise the SDK's default chain (web identity/IRSA, profile, container, instance).
  const fromEnvKeys = e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY && !e.AWS_PROFILE
    ? { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY, ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}) }
    : undefined
  const provider = fromTemporaryCredentials({
    params: { RoleArn: opts.roleArn, RoleSessionName: opts.sessionName, DurationSeconds: opts.durationSeconds },
    ...(fromEnvKeys ? { masterCredentials: fromEnvKeys } : {}),
    clientConfig: { region: opts.region, maxAttempts: 4, ...(endpoint ? { endpoint } : {}), ...(opts.requestHandler ? { requestHandler: opts.requestHandler as never } : {}) },
  })
  return async () => {
    const c = await provider()
    if (!c.sessionToken || !c.expiration) throw new Error('STS answered without a session token or expiration')
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiration: c.expiration }
  }
}

/**
 * The role's credentials, always answered from a cache. A timer refreshes them when
 * `refreshBeforeMs` is left; a failed refresh is retried with backoff while the old ones
 * are still valid, so a passing STS hiccup never reaches the step.
 */
export class RoleSession {
  private cached: RoleCredentials | undefined
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private failures = 0
  /** how many times STS handed out credentials; tests read it */
  refreshes = 0

  private constructor(private readonly opts: RoleSessionOptions) {}

  /** Assumes the role once and fails fast (exit code 77) when STS refuses. */
  static async start(opts: RoleSessionOptions): Promise<RoleSession> {
    const s = new RoleSession(opts)
    try {
      await s.refresh()
    } catch (err) {
      throw new AgentError('credentials', `failed to assume role ${opts.roleArn}`, {
        cause: scrub(describeError(err), opts.secrets),
        hint: "check that the pod's identity may call sts:AssumeRole on this role and that the role trusts it",
      })
    }
    return s
  }

  private now(): number {
    return (this.opts.now ?? Date.now)()
  }

  private async refresh(): Promise<void> {
    const c = await this.opts.assume()
    this.cached = c
    this.refreshes++
    this.failures = 0
    const left = c.expiration.getTime() - this.now()
    this.opts.log(`assumed role ${this.opts.roleArn}; credentials expire at ${c.expiration.toISOString()} (${Math.round(left / 1000)} s)`)
    this.schedule(Math.max(1000, left - this.opts.refreshBeforeMs))
  }

  private schedule(delayMs: number): void {
    if (this.closed) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.refresh().catch((err) => {
        this.failures++
        const delay = Math.min(CREDENTIAL_DEFAULTS.retryMaxMs, CREDENTIAL_DEFAULTS.retryMinMs * 2 ** (this.failures - 1))
        this.opts.log(`warning: failed to refresh credentials for role ${this.opts.roleArn} (attempt ${this.failures}): ${scrub(describeError(err), this.opts.secrets)}; retrying in ${delay} ms`)
        this.schedule(delay)
      })
    }, delayMs)
    // The timer must not keep the agent alive after the step is done.
    this.timer.unref()
  }

  /** The cached credentials while they are valid, else undefined. */
  current(): RoleCredentials | undefined {
    const c = this.cached
    return c && c.expiration.getTime() > this.now() ? c : undefined
  }

  /** An SDK credential provider over the cache, for the agent's own S3 clients. */
  provider(): () => Promise<RoleCredentials> {
    return async () => {
      const c = this.current()
      if (!c) throw new Error(`no valid credentials for role ${this.opts.roleArn}`)
      return c
    }
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
  }
}
