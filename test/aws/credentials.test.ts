import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentError } from '../../agent/errors'
import { RoleSession, credentialTiming, roleSessionName, scrub, stsAssumer } from '../../agent/aws/credentials'
import { MOTO_KEYS, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'

const ROLE = 'arn:aws:iam::123456789012:role/step-role'
let moto: Moto
let strict: Moto

beforeAll(async () => {
  ;[moto, strict] = await Promise.all([startMoto(), startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: '0' })])
})
afterAll(async () => {
  await Promise.all([moto?.stop(), strict?.stop()])
})

const env = (endpoint: string) => ({ ...MOTO_KEYS, AWS_ENDPOINT_URL_STS: endpoint })
const assumer = (endpoint: string, durationSeconds = 3600) =>
  stsAssumer({ roleArn: ROLE, sessionName: 'test-session', durationSeconds, region: 'us-east-1', env: env(endpoint) })

describe('RoleSession', () => {
  it('assumes the role through STS with the source identity from the environment', async () => {
    const s = await RoleSession.start({ roleArn: ROLE, assume: await assumer(moto.endpoint), refreshBeforeMs: 25 * 60_000, log: () => {} })
    try {
      const c = s.current()
      expect(c?.accessKeyId).toMatch(/^ASIA/)
      expect(c?.sessionToken).toBeTruthy()
      expect(c!.expiration.getTime() - Date.now()).toBeGreaterThan(50 * 60_000)
    } finally {
      s.close()
    }
  })

  it('refreshes in the background before the credentials expire', async () => {
    const lines: string[] = []
    const s = await RoleSession.start({ roleArn: ROLE, assume: await assumer(moto.endpoint, 3), refreshBeforeMs: 1500, log: (l) => lines.push(l) })
    try {
      const first = s.current()!.accessKeyId
      await new Promise((r) => setTimeout(r, 4000))
      expect(s.refreshes).toBeGreaterThanOrEqual(2)
      expect(s.current()?.accessKeyId).not.toBe(first)
      expect(lines.join('\n')).not.toContain(first)
    } finally {
      s.close()
    }
  })

  it('keeps serving the cached credentials while a refresh fails', async () => {
    let calls = 0
    const real = await assumer(moto.endpoint, 3)
    const lines: string[] = []
    const s = await RoleSession.start({
      roleArn: ROLE,
      assume: async () => {
        if (++calls > 1) throw new Error('STS is down')
        return real()
      },
      refreshBeforeMs: 2000,
      log: (l) => lines.push(l),
    })
    try {
      await new Promise((r) => setTimeout(r, 1500))
      expect(s.current()).toBeDefined()
      expect(lines.some((l) => l.startsWith('warning: failed to refresh credentials for role ' + ROLE))).toBe(true)
    } finally {
      s.close()
    }
  })

  it('fails fast with exit code 77 naming the role when STS refuses, and prints no secret', async () => {
    // moto in strict mode: the source keys are unknown to its IAM, as with a revoked identity.
    const err = await RoleSession.start({ roleArn: ROLE, assume: await assumer(strict.endpoint), refreshBeforeMs: 1000, log: () => {}, secrets: Object.values(MOTO_KEYS) })
      .then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(AgentError)
    const e = err as AgentError
    expect(e.exitCode).toBe(77)
    expect(e.message).toBe(`failed to assume role ${ROLE}`)
    const all = `${e.message} ${String(e.cause)} ${e.hint}`
    expect(all).toMatch(/InvalidClientTokenId|security token/)
    for (const secret of Object.values(MOTO_KEYS)) expect(all).not.toContain(secret)
  })
})

describe('helpers', () => {
  it('makes a session name STS accepts from any task id', () => {
    expect(roleSessionName(['metaflow-kfp', 'kfp/r1', 'explore-2'])).toBe('metaflow-kfp-kfp_r1-explore-2')
    expect(roleSessionName(['x'.repeat(100)])).toHaveLength(64)
  })

  it('scrubs given secrets and anything shaped like an access key id', () => {
    expect(scrub('key AKIAABCDEFGHIJKLMNOP and s3cr3t!', ['s3cr3t!'])).toBe('key **** and ****')
  })

  it('reads the test-only lifetime knobs and defaults to one hour and 25 minutes', () => {
    expect(credentialTiming({})).toEqual({ durationSeconds: 3600, refreshBeforeMs: 25 * 60_000 })
    expect(credentialTiming({ METAFLOW_KFP_TEST_CREDENTIAL_TTL: '6', METAFLOW_KFP_TEST_CREDENTIAL_REFRESH: '3' })).toEqual({ durationSeconds: 6, refreshBeforeMs: 3000 })
  })
})
