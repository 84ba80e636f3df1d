import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../agent/errors'
import { describeSettings, resolveSettings } from '../agent/settings'
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
