import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../agent/errors'
import { describeSettings, resolveSettings } from '../agent/settings'
import { agentEnv, runAgent } from './helpers/agent-process'
import { useTempDir } from './helpers/temp-dir'

const tempDir = useTempDir()

// The seed's config_sree.json, byte for byte apart from the values.
const SEED_PROFILE = `{
    "METAFLOW_DATASTORE_SYSROOT_S3": "s3://workspace-zillow-analytics-stage/aip/metaflow",
    "METAFLOW_DEFAULT_DATASTORE": "s3",

    "METAFLOW_AWS_ARN" : "arn:aws:iam::170606514770:role/dev-zestimate-role",
    "METAFLOW_AWS_S3_REGION" : "us-west-2",

    "KFP_RUN_URL_PREFIX" : "https://kubeflow.corp.zillow-analytics-dev.zg-int.net/pipeline/#/runs/details"
}
`

function homeWithProfile(name: string, text: string): string {
  const home = tempDir()
  mkdirSync(join(home, '.metaflowconfig'))
  writeFileSync(join(home, '.metaflowconfig', `config_${name}.json`), text)
  return home
}

function usageError(fn: () => unknown): AgentError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError)
    return err as AgentError
  }
  throw new Error('expected an error')
}

describe('resolveSettings', () => {
  it("reads a profile in the seed's form from ~/.metaflowconfig", () => {
    const home = homeWithProfile('sree', SEED_PROFILE)
    const s = resolveSettings({}, { METAFLOW_PROFILE: 'sree' }, home)
    expect(s.values.METAFLOW_DEFAULT_DATASTORE).toEqual({ value: 's3', source: 'profile' })
    expect(s.values.METAFLOW_AWS_ARN).toEqual({ value: 'arn:aws:iam::170606514770:role/dev-zestimate-role', source: 'profile' })
    expect(s.values.METAFLOW_AWS_S3_REGION.value).toBe('us-west-2')
    expect(s.values.KFP_RUN_URL_PREFIX.source).toBe('profile')
    expect(s.profile).toMatchObject({ name: 'sree', found: true })
  })

  it('lets the environment win over the profile and a flag win over both', () => {
    const home = homeWithProfile('p', SEED_PROFILE)
    const env = { METAFLOW_PROFILE: 'p', METAFLOW_AWS_S3_REGION: 'eu-west-1', METAFLOW_DATASTORE_SYSROOT_S3: 's3://env/root' }
    const s = resolveSettings({ METAFLOW_AWS_S3_REGION: 'ap-south-1' }, env, home)
    expect(s.values.METAFLOW_AWS_S3_REGION).toEqual({ value: 'ap-south-1', source: 'flag' })
    expect(s.values.METAFLOW_DATASTORE_SYSROOT_S3).toEqual({ value: 's3://env/root', source: 'env' })
    expect(s.values.METAFLOW_DEFAULT_DATASTORE.source).toBe('profile')
  })

  it('works from the environment alone, with no profile anywhere', () => {
    const s = resolveSettings({}, {
      METAFLOW_AWS_ARN: 'arn:aws:iam::123456789012:role/r',
      METAFLOW_DATASTORE_SYSROOT_S3: 's3://b/p',
      METAFLOW_DEFAULT_DATASTORE: 's3',
    }, tempDir())
    expect(s.profile.found).toBe(false)
    expect(s.values.METAFLOW_DEFAULT_DATASTORE).toEqual({ value: 's3', source: 'env' })
    expect(s.values.METAFLOW_USER).toEqual({ value: 'kfp-user', source: 'default' })
  })

  it('honours METAFLOW_HOME and reads config.json when no profile is named, like Metaflow', () => {
    const home = tempDir()
    writeFileSync(join(home, 'config.json'), '{"METAFLOW_DEFAULT_DATASTORE": "s3", "METAFLOW_DATASTORE_SYSROOT_S3": "s3://x/y"}')
    const s = resolveSettings({}, { METAFLOW_HOME: home }, tempDir())
    expect(s.values.METAFLOW_DEFAULT_DATASTORE.source).toBe('profile')
  })

  it('uses --datastore-root as the S3 root only when the datastore is s3', () => {
    expect(resolveSettings({ METAFLOW_DEFAULT_DATASTORE: 's3', datastoreRoot: 's3://f/r' }, {}, tempDir()).values.METAFLOW_DATASTORE_SYSROOT_S3)
      .toEqual({ value: 's3://f/r', source: 'flag' })
    expect(resolveSettings({ datastoreRoot: '/tmp/x/.metaflow' }, {}, tempDir()).values.METAFLOW_DATASTORE_SYSROOT_S3.value).toBeUndefined()
  })

  it('skips METAFLOW_USER=root, which Metaflow would refuse', () => {
    expect(resolveSettings({}, { METAFLOW_USER: 'root' }, tempDir()).values.METAFLOW_USER.value).toBe('kfp-user')
  })

  it('names the file when the profile is missing', () => {
    const home = tempDir()
    const err = usageError(() => resolveSettings({}, { METAFLOW_PROFILE: 'nope' }, home))
    expect(err.exitCode).toBe(64)
    expect(err.message).toContain(join(home, '.metaflowconfig', 'config_nope.json'))
  })

  it('names the file when the profile is not valid JSON', () => {
    const home = homeWithProfile('bad', '{"METAFLOW_AWS_ARN": "x", # a comment\n}')
    const err = usageError(() => resolveSettings({}, { METAFLOW_PROFILE: 'bad' }, home))
    expect(err.message).toBe(`failed to parse the Metaflow profile ${join(home, '.metaflowconfig', 'config_bad.json')}`)
  })

  it('refuses an unsupported datastore and says where it came from', () => {
    const err = usageError(() => resolveSettings({}, { METAFLOW_DEFAULT_DATASTORE: 'gs' }, tempDir()))
    expect(err.message).toContain('environment METAFLOW_DEFAULT_DATASTORE')
  })

  it('refuses something that is not a role ARN', () => {
    const err = usageError(() => resolveSettings({ METAFLOW_AWS_ARN: 'dev-zestimate-role' }, {}, tempDir()))
    expect(err.message).toContain('flag --role-arn')
  })
})

describe('describeSettings', () => {
  it('prints each setting with its source and masks credentials', () => {
    const env = { METAFLOW_DEFAULT_DATASTORE: 's3', AWS_SECRET_ACCESS_KEY: 'very-secret-value', AWS_SESSION_TOKEN: 'tok-secret', METAFLOW_SERVICE_URL: 'https://u:pw@md.example/api?sig=abc' }
    const text = describeSettings(resolveSettings({ METAFLOW_AWS_ARN: 'arn:aws:iam::123456789012:role/r' }, env, tempDir()), env).join('\n')
    expect(text).toContain('METAFLOW_AWS_ARN=arn:aws:iam::123456789012:role/r  # flag --role-arn')
    expect(text).toContain('METAFLOW_DEFAULT_DATASTORE=s3  # environment METAFLOW_DEFAULT_DATASTORE')
    expect(text).toContain('AWS_SECRET_ACCESS_KEY=****')
    expect(text).not.toContain('very-secret-value')
    expect(text).not.toContain('tok-secret')
    expect(text).not.toContain('pw@')
    expect(text).not.toContain('sig=abc')
  })
})

describe('profile values', () => {
  it('refuses a profile value that is not a string, which was read as [object Object] or s3, naming the file and key', () => {
    for (const [key, value, kind] of [['METAFLOW_USER', { a: 1 }, 'an object'], ['METAFLOW_DEFAULT_DATASTORE', ['s3'], 'a list'], ['METAFLOW_AWS_S3_REGION', true, 'a boolean']] as const) {
      const home = homeWithProfile('bad', JSON.stringify({ [key]: value }))
      const err = usageError(() => resolveSettings({}, { METAFLOW_PROFILE: 'bad' }, home))
      expect(err.exitCode).toBe(64)
      expect(err.message).toBe(`failed to read ${key} from the Metaflow profile ${join(home, '.metaflowconfig', 'config_bad.json')}: it is ${kind}, not a string`)
    }
  })

  it('refuses an unknown metadata provider, a region that is no region name and an endpoint that is no http URL', () => {
    const home = homeWithProfile('odd', JSON.stringify({ METAFLOW_DEFAULT_METADATA: 'bogus' }))
    expect(usageError(() => resolveSettings({}, { METAFLOW_PROFILE: 'odd' }, home)).message).toMatch(/METAFLOW_DEFAULT_METADATA=bogus \(profile .*config_odd.json\): only local and service/)
    expect(usageError(() => resolveSettings({ METAFLOW_AWS_S3_REGION: 'us-east-1/../x' }, {}, tempDir())).message).toMatch(/not a region name/)
    expect(usageError(() => resolveSettings({ METAFLOW_S3_ENDPOINT_URL: 'ftp://127.0.0.1/' }, {}, tempDir())).message).toMatch(/not an http/)
    expect(usageError(() => resolveSettings({ METAFLOW_DEFAULT_DATASTORE: 's3', datastoreRoot: '/tmp/datastore' }, {}, tempDir())).message).toMatch(/S3 datastore root "\/tmp\/datastore" \(flag --datastore-root\): not an s3:\/\/bucket URL/)
    expect(resolveSettings({ METAFLOW_S3_ENDPOINT_URL: 'http://127.0.0.1:9000', METAFLOW_AWS_S3_REGION: 'us-gov-west-1' }, {}, tempDir()).values.METAFLOW_S3_ENDPOINT_URL.value).toBe('http://127.0.0.1:9000')
  })

  it('lets a flag or the environment stand in for a profile key of the wrong type', () => {
    const home = homeWithProfile('bad', JSON.stringify({ METAFLOW_USER: { a: 1 } }))
    expect(resolveSettings({ METAFLOW_USER: 'alice' }, { METAFLOW_PROFILE: 'bad' }, home).values.METAFLOW_USER.value).toBe('alice')
  })
})

describe('config: the KFP keys submit resolves', () => {
  const NOWHERE = () => false
  /** The indented lines under the KFP heading, by key (or by the word before the colon). */
  function kfpLines(lines: string[]): Record<string, string> {
    const at = lines.findIndex((l) => l.startsWith('KFP ('))
    expect(at).toBeGreaterThan(0)
    return Object.fromEntries(lines.slice(at + 1).map((l) => {
      expect(l).toMatch(/^  \S/)
      return [l.trim().split(/[=:]/)[0] as string, l.trim()]
    }))
  }

  it('lists host, UI, run URL prefix, namespace and experiment with where each came from, after the step settings', () => {
    const home = homeWithProfile('team', JSON.stringify({ KFP_NAMESPACE: 'team-a', KF_PIPELINES_DEFAULT_EXPERIMENT_NAME: 'nightly', KFP_RUN_URL_PREFIX: 'https://kfp.example/pipeline/#/runs/details' }))
    const env = { METAFLOW_PROFILE: 'team', KF_PIPELINES_ENDPOINT: 'https://kfp.example/pipeline' }
    const lines = describeSettings(resolveSettings({}, env, home), env, home, NOWHERE)
    const profile = join(home, '.metaflowconfig', 'config_team.json')
    const kfp = kfpLines(lines)
    expect(kfp.KF_PIPELINES_ENDPOINT).toBe('KF_PIPELINES_ENDPOINT=https://kfp.example/pipeline  # environment KF_PIPELINES_ENDPOINT')
    expect(kfp.KFP_NAMESPACE).toBe(`KFP_NAMESPACE=team-a  # profile ${profile}`)
    expect(kfp.KF_PIPELINES_DEFAULT_EXPERIMENT_NAME).toBe(`KF_PIPELINES_DEFAULT_EXPERIMENT_NAME=nightly  # profile ${profile}`)
    expect(kfp.KFP_RUN_URL_PREFIX).toBe(`KFP_RUN_URL_PREFIX=https://kfp.example/pipeline/#/runs/details  # profile ${profile}`)
    expect(kfp.KF_PIPELINES_UI_ENDPOINT).toBe('KF_PIPELINES_UI_ENDPOINT=(not set)  # run links use the host; flag --ui-host')
    expect(kfp['credential sent']).toMatch(/: none \(give --token/)
    // The step's keys stay first and unindented: a step never reads the KFP ones.
    expect(lines.indexOf(lines.find((l) => l.startsWith('KFP (')) as string)).toBeGreaterThan(lines.findIndex((l) => l.startsWith('METAFLOW_USER=')))
  })

  it('shows the KFP token as **** with only the name of its source, from the environment or the profile', () => {
    for (const where of ['env', 'profile'] as const) {
      const secret = 'eyJhbGciOiJSUzI1NiJ9.very-secret-token'
      const home = homeWithProfile('t', JSON.stringify(where === 'profile' ? { KFP_API_TOKEN: secret } : {}))
      const env = { METAFLOW_PROFILE: 't', KF_PIPELINES_ENDPOINT: 'https://user:hunter2@kfp.example/pipeline?token=abc', ...(where === 'env' ? { KFP_API_TOKEN: secret } : {}) }
      const lines = describeSettings(resolveSettings({}, env, home), env, home, NOWHERE)
      const text = lines.join('\n')
      expect(text).not.toContain('very-secret-token')
      expect(text).not.toContain('hunter2')
      expect(text).not.toContain('token=abc')
      const source = where === 'env' ? 'environment KFP_API_TOKEN' : `profile ${join(home, '.metaflowconfig', 'config_t.json')}`
      expect(kfpLines(lines).KFP_API_TOKEN).toBe(`KFP_API_TOKEN=****  # ${source} (masked)`)
      expect(kfpLines(lines)['credential sent']).toBe(`credential sent: the bearer token from ${source}`)
    }
  })

  it('names the token file submit would send when it exists, and says when a named one does not', () => {
    const dir = tempDir()
    const file = join(dir, 'token')
    writeFileSync(file, 'file-secret-token')
    const env = { KF_PIPELINES_SA_TOKEN_PATH: file }
    const lines = describeSettings(resolveSettings({}, env, dir), env, dir)
    expect(kfpLines(lines).KF_PIPELINES_SA_TOKEN_PATH).toBe(`KF_PIPELINES_SA_TOKEN_PATH=${file}  # environment KF_PIPELINES_SA_TOKEN_PATH, exists`)
    expect(kfpLines(lines)['credential sent']).toBe(`credential sent: the token file ${file}`)
    expect(lines.join('\n')).not.toContain('file-secret-token')
    const missing = { KF_PIPELINES_SA_TOKEN_PATH: join(dir, 'gone') }
    expect(kfpLines(describeSettings(resolveSettings({}, missing, dir), missing, dir))['credential sent']).toBe(`credential sent: the token file ${join(dir, 'gone')}, which does not exist`)
    // Unset, the in-cluster default counts only when it is there, as submit decides.
    expect(kfpLines(describeSettings(resolveSettings({}, {}, dir), {}, dir, (p) => p === '/var/run/secrets/kubeflow/pipelines/token'))['credential sent'])
      .toBe('credential sent: the token file /var/run/secrets/kubeflow/pipelines/token')
  })

  it("shows the seed's KFP_RUN_URL_PREFIX whole, which lost its #/runs/details and showed only …/pipeline/", () => {
    const env = { KFP_RUN_URL_PREFIX: 'https://kubeflow.example.com/pipeline/#/runs/details' }
    const lines = describeSettings(resolveSettings({}, env, tempDir()), env, tempDir(), NOWHERE)
    expect(lines).toContain('KFP_RUN_URL_PREFIX=https://kubeflow.example.com/pipeline/#/runs/details  # environment KFP_RUN_URL_PREFIX')
    expect(kfpLines(lines).KFP_RUN_URL_PREFIX).toBe('KFP_RUN_URL_PREFIX=https://kubeflow.example.com/pipeline/#/runs/details  # environment KFP_RUN_URL_PREFIX')
    // Still no user info or query string before the fragment.
    const odd = { KFP_RUN_URL_PREFIX: 'https://me:pw@kfp.example/p?sig=abc#/runs/details' }
    const text = describeSettings(resolveSettings({}, odd, tempDir()), odd, tempDir(), NOWHERE).join('\n')
    expect(text).not.toMatch(/pw@|sig=abc/)
    expect(text).toContain('/p?…#/runs/details')
  })

  it('refuses a KFP key of the wrong type in the profile, naming the key and the file', () => {
    const home = homeWithProfile('bad', JSON.stringify({ KF_PIPELINES_ENDPOINT: { host: 'x' } }))
    const env = { METAFLOW_PROFILE: 'bad' }
    const err = usageError(() => describeSettings(resolveSettings({}, env, home), env, home, NOWHERE))
    expect(err.message).toBe(`failed to read KF_PIPELINES_ENDPOINT from the Metaflow profile ${join(home, '.metaflowconfig', 'config_bad.json')}: it is an object, not a string`)
  })

  it('prints them from the built agent with no secret in any line', async () => {
    const home = homeWithProfile('seedlike', JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: 's3', METAFLOW_DATASTORE_SYSROOT_S3: 's3://bucket/aip/metaflow', KFP_API_TOKEN: 'profile-secret-token' }))
    const r = await runAgent(['config'], { env: agentEnv({ HOME: home, METAFLOW_PROFILE: 'seedlike', KF_PIPELINES_ENDPOINT: 'https://kfp.example/pipeline', KFP_NAMESPACE: 'team-a', KF_PIPELINES_SA_TOKEN_PATH: join(home, 'none'), KFP_API_TOKEN: '' }) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('METAFLOW_DEFAULT_DATASTORE=s3  # profile')
    expect(r.stdout).toContain('  KF_PIPELINES_ENDPOINT=https://kfp.example/pipeline  # environment KF_PIPELINES_ENDPOINT')
    expect(r.stdout).toContain('  KFP_NAMESPACE=team-a  # environment KFP_NAMESPACE')
    expect(r.stdout).toMatch(/^  KFP_API_TOKEN=\*\*\*\*  # profile .*config_seedlike\.json \(masked\)$/m)
    expect(r.stdout + r.stderr).not.toContain('profile-secret-token')
    expect(readFileSync(join(home, '.metaflowconfig', 'config_seedlike.json'), 'utf8')).toContain('profile-secret-token')
  })
})
