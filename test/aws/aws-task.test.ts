import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SHADOWING_AWS_VARS, openAws } from '../../agent/aws/aws-task'
import type { TaskConfig } from '../../agent/config'
import { AgentError } from '../../agent/errors'
import { applySettings, resolveSettings } from '../../agent/settings'
import type { SettingFlags } from '../../agent/settings'
import { MOTO_KEYS, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const ROLE = 'arn:aws:iam::123456789012:role/step-role'
let moto: Moto

beforeAll(async () => {
  moto = await startMoto()
})
afterAll(async () => {
  await moto?.stop()
})

function config(flags: SettingFlags, env: NodeJS.ProcessEnv, codeUrl = 'file:///x/flow.py'): TaskConfig {
  const base = {
    command: 'init' as const,
    code: { url: codeUrl, allowHttp: false, maxBytes: 1, timeoutMs: 1, attempts: 1 },
    python: 'python3', runtime: 'metaflow==2.19.38', runId: 'r1', tags: [], params: {}, outputs: [], keepWorkDir: false, graceMs: 1,
  }
  return applySettings(base, resolveSettings(flags, env, tempDir()), env)
}

describe('openAws', () => {
  it('leaves a local task without AWS alone: no opener, no store, only the settings added', async () => {
    const aws = await openAws(config({}, {}), { env: {}, log: () => {} }, { runId: 'r1', name: 'start' })
    expect(aws.openers).toEqual({})
    expect(aws.store).toBeUndefined()
    const env = await aws.stepEnv({ AWS_ACCESS_KEY_ID: 'kept', PATH: '/bin' }, tempDir())
    expect(env).toEqual({ AWS_ACCESS_KEY_ID: 'kept', PATH: '/bin', METAFLOW_DEFAULT_DATASTORE: 'local' })
    await aws.close()
  })

  it('gives the step the endpoint instead of anything that would shadow it', async () => {
    const agentEnv = {
      ...MOTO_KEYS,
      AWS_SESSION_TOKEN: 'source-token',
      AWS_PROFILE: 'dev',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/token',
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/pod-role',
      AWS_ENDPOINT_URL_STS: moto.endpoint,
      AWS_ENDPOINT_URL: moto.endpoint,
      HTTPS_PROXY: 'http://proxy.internal:3128',
      NO_PROXY: '.internal',
    }
    // AWS_PROFILE makes the SDK skip environment keys, as it does in the JS SDK; the test keys are named explicitly here.
    const { AWS_PROFILE: _p, ...stsEnv } = agentEnv
    const lines: string[] = []
    const cfg = config({ METAFLOW_AWS_ARN: ROLE, METAFLOW_AWS_S3_REGION: 'eu-west-1' }, {})
    const aws = await openAws(cfg, { env: stsEnv, log: (l) => lines.push(l) }, { runId: 'r1', name: 'start' })
    try {
      const env = await aws.stepEnv(agentEnv, tempDir())
      for (const k of SHADOWING_AWS_VARS.filter((k) => !k.startsWith('AWS_CONTAINER'))) expect(env[k], k).toBeUndefined()
      expect(env.AWS_CONTAINER_CREDENTIALS_FULL_URI).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//)
      expect(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).toBeTruthy()
      expect(env.AWS_CONFIG_FILE).toBe('/dev/null')
      expect(env.AWS_SHARED_CREDENTIALS_FILE).toBe('/dev/null')
      expect(env.AWS_DEFAULT_REGION).toBe('eu-west-1')
      expect(env.METAFLOW_AWS_ARN).toBe(ROLE)
      expect(env.HTTPS_PROXY).toBe('http://proxy.internal:3128')
      expect(env.AWS_ENDPOINT_URL).toBe(moto.endpoint)
      expect(env.NO_PROXY).toBe('.internal,127.0.0.1,localhost')
      expect(lines.join('\n')).toContain(`assumed role ${ROLE}`)
    } finally {
      await aws.close()
    }
  })

  it('refuses an S3 datastore without a root before calling STS', async () => {
    const err = await openAws(config({ METAFLOW_DEFAULT_DATASTORE: 's3', METAFLOW_AWS_ARN: ROLE }, {}), { env: {}, log: () => {} }, { runId: 'r1', name: 'start' })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentError)
    expect((err as AgentError).exitCode).toBe(64)
    expect((err as AgentError).message).toBe('failed to find the S3 datastore root')
  })
})
