// Resolves the seed's settings: a flag wins over the environment, the environment over the Metaflow profile.
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { DEFAULTS as AGENT_DEFAULTS } from './config.js'
import type { AgentConfig, Datastore, UnresolvedConfig } from './config.js'
import { AgentError, redactUrl } from './errors.js'
import { DEFAULT_TOKEN_PATH } from './kfp-api/auth.js'

/** The keys the agent resolves, as named in the seed's profile and in Metaflow's environment. */
export const SETTING_KEYS = [
  'METAFLOW_USER',
  'METAFLOW_DEFAULT_DATASTORE',
  'METAFLOW_DATASTORE_SYSROOT_S3',
  'METAFLOW_DEFAULT_METADATA',
  'METAFLOW_SERVICE_URL',
  'METAFLOW_AWS_ARN',
  'METAFLOW_AWS_S3_REGION',
  'METAFLOW_S3_ENDPOINT_URL',
  'KFP_RUN_URL_PREFIX',
] as const
export type SettingKey = (typeof SETTING_KEYS)[number]

/** The flag that sets each key, for `config` output and messages. */
export const SETTING_FLAGS: Partial<Record<SettingKey, string>> = {
  METAFLOW_USER: '--user',
  METAFLOW_DEFAULT_DATASTORE: '--datastore',
  METAFLOW_DATASTORE_SYSROOT_S3: '--datastore-root',
  METAFLOW_DEFAULT_METADATA: '--metadata',
  METAFLOW_AWS_ARN: '--role-arn',
  METAFLOW_AWS_S3_REGION: '--aws-region',
  METAFLOW_S3_ENDPOINT_URL: '--s3-endpoint-url',
}

export type SettingSource = 'flag' | 'env' | 'profile' | 'default'

export interface Setting {
  value: string | undefined
  source: SettingSource
}

export interface ResolvedSettings {
  /** the profile file read, when there was one */
  profile: { name: string | undefined; path: string; found: boolean }
  values: Record<SettingKey, Setting>
}

/** Flags by the key they set; `datastoreRoot` sets METAFLOW_DATASTORE_SYSROOT_S3 only when the datastore is s3. */
export type SettingFlags = Partial<Record<SettingKey, string>> & { datastoreRoot?: string | undefined }

const DEFAULTS: Partial<Record<SettingKey, string>> = {
  METAFLOW_USER: AGENT_DEFAULTS.user,
  METAFLOW_DEFAULT_DATASTORE: 'local',
  METAFLOW_DEFAULT_METADATA: 'local',
}

/**
 * Reads the profile the way Metaflow's init_config does: $METAFLOW_HOME (default
 * ~/.metaflowconfig)/config_$METAFLOW_PROFILE.json, or config.json without a profile.
 * A named profile that is missing is an error; a missing config.json is not.
 */
export function readProfile(env: NodeJS.ProcessEnv, home = homedir()): { name: string | undefined; path: string; found: boolean; values: Record<string, unknown> } {
  const dir = expandHome(env.METAFLOW_HOME || join(home, '.metaflowconfig'), home)
  const name = env.METAFLOW_PROFILE || undefined
  const path = join(dir, name ? `config_${name}.json` : 'config.json')
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !name) return { name, path, found: false, values: {} }
    throw new AgentError('usage', `failed to read the Metaflow profile ${path}`, {
      cause: err,
      hint: name ? `create it, or unset METAFLOW_PROFILE=${name}` : 'make it readable, or set METAFLOW_HOME',
    })
  }
  let values: unknown
  try {
    values = JSON.parse(text)
  } catch (err) {
    throw new AgentError('usage', `failed to parse the Metaflow profile ${path}`, {
      cause: err,
      hint: 'make it one JSON object, without comments, like the example in the README',
    })
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new AgentError('usage', `failed to parse the Metaflow profile ${path}: not a JSON object`, {
      hint: 'make it one JSON object of "KEY": "value" pairs',
    })
  }
  return { name, path, found: true, values: values as Record<string, unknown> }
}

function expandHome(p: string, home: string): string {
  return p === '~' || p.startsWith('~/') ? join(home, p.slice(1)) : p
}

/** Every key from its flag, else the environment, else the profile, else the agent's default. */
export function resolveSettings(flags: SettingFlags, env: NodeJS.ProcessEnv, home = homedir()): ResolvedSettings {
  const profile = readProfile(env, home)
  const values = {} as Record<SettingKey, Setting>
  for (const key of SETTING_KEYS) {
    const flag = flags[key]
    const fromEnv = key === 'METAFLOW_USER' ? nonRoot(env[key]) : env[key]
    const fromProfile = profile.values[key]
    if (flag !== undefined && flag !== '') values[key] = { value: flag, source: 'flag' }
    else if (fromEnv !== undefined && fromEnv !== '') values[key] = { value: fromEnv, source: 'env' }
    else if (fromProfile !== undefined && fromProfile !== null && fromProfile !== '') values[key] = { value: profileString(key, fromProfile, profile.path), source: 'profile' }
    else values[key] = { value: DEFAULTS[key], source: 'default' }
  }
  const ds = values.METAFLOW_DEFAULT_DATASTORE
  if (ds.value !== 'local' && ds.value !== 's3') {
    const where = describeSource('METAFLOW_DEFAULT_DATASTORE', ds, profile.path)
    throw new AgentError('usage', `failed to use METAFLOW_DEFAULT_DATASTORE=${ds.value} (${where}): only local and s3 are supported`, {
      hint: 'set it to local or s3, or pass --datastore',
    })
  }
  const md = values.METAFLOW_DEFAULT_METADATA
  if (md.value !== 'local' && md.value !== 'service') {
    throw new AgentError('usage', `failed to use METAFLOW_DEFAULT_METADATA=${md.value} (${describeSource('METAFLOW_DEFAULT_METADATA', md, profile.path)}): only local and service are supported`, {
      hint: 'set it to local or service, or pass --metadata',
    })
  }
  const region = values.METAFLOW_AWS_S3_REGION
  if (region.value !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(region.value)) {
    throw new AgentError('usage', `failed to use METAFLOW_AWS_S3_REGION=${JSON.stringify(region.value)} (${describeSource('METAFLOW_AWS_S3_REGION', region, profile.path)}): not a region name`, {
      hint: 'give a region like us-west-2',
    })
  }
  const endpoint = values.METAFLOW_S3_ENDPOINT_URL
  if (endpoint.value !== undefined && !/^https?:$/.test(urlScheme(endpoint.value))) {
    throw new AgentError('usage', `failed to use METAFLOW_S3_ENDPOINT_URL=${JSON.stringify(redactUrl(endpoint.value))} (${describeSource('METAFLOW_S3_ENDPOINT_URL', endpoint, profile.path)}): not an http:// or https:// URL`, {
      hint: 'give the endpoint as a URL, e.g. https://minio.example:9000',
    })
  }
  if (ds.value === 's3' && flags.datastoreRoot) values.METAFLOW_DATASTORE_SYSROOT_S3 = { value: flags.datastoreRoot, source: 'flag' }
  const s3root = values.METAFLOW_DATASTORE_SYSROOT_S3
  // Checked here too, so `config` refuses what `step` would, not only the step after its download.
  if (ds.value === 's3' && s3root.value !== undefined && !/^s3:\/\/[^/]+/.test(s3root.value)) {
    throw new AgentError('usage', `failed to use the S3 datastore root ${JSON.stringify(redactUrl(s3root.value))} (${describeSource('METAFLOW_DATASTORE_SYSROOT_S3', s3root, profile.path)}): not an s3://bucket URL`, {
      hint: 'set --datastore-root s3://bucket/prefix, METAFLOW_DATASTORE_SYSROOT_S3, or the key in the Metaflow profile',
    })
  }
  const arn = values.METAFLOW_AWS_ARN.value
  if (arn !== undefined && !/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+$/.test(arn)) {
    throw new AgentError('usage', `failed to accept the role ARN ${JSON.stringify(arn)} (${describeSource('METAFLOW_AWS_ARN', values.METAFLOW_AWS_ARN, profile.path)})`, {
      hint: 'give a role ARN like arn:aws:iam::123456789012:role/name',
    })
  }
  return { profile: { name: profile.name, path: profile.path, found: profile.found }, values }
}

/**
 * Keys `submit`, `status` and `terminate` read (the kfp SDK's KF_PIPELINES_* variables and the seed's
 * KFP_RUN_URL_PREFIX), resolved like the others. Kept out of SETTING_KEYS: those travel into every task.
 */
export const KFP_KEYS = [
  'KF_PIPELINES_ENDPOINT',
  'KF_PIPELINES_UI_ENDPOINT',
  'KFP_RUN_URL_PREFIX',
  'KF_PIPELINES_SA_TOKEN_PATH',
  'KF_PIPELINES_DEFAULT_EXPERIMENT_NAME',
  'KFP_API_TOKEN',
  'KFP_NAMESPACE',
] as const
export type KfpKey = (typeof KFP_KEYS)[number]

/** KFP_KEYS from a flag, else the environment, else the Metaflow profile; unset ones are absent. */
export function resolveKfpKeys(flags: Partial<Record<KfpKey, string>>, env: NodeJS.ProcessEnv, home = homedir()): { profilePath: string; values: Partial<Record<KfpKey, Setting>> } {
  const profile = readProfile(env, home)
  const values: Partial<Record<KfpKey, Setting>> = {}
  for (const key of KFP_KEYS) {
    const flag = flags[key]
    const fromProfile = profile.values[key]
    if (flag !== undefined && flag !== '') values[key] = { value: flag, source: 'flag' }
    else if (env[key]) values[key] = { value: env[key], source: 'env' }
    else if (fromProfile !== undefined && fromProfile !== null && fromProfile !== '') values[key] = { value: profileString(key as SettingKey, fromProfile, profile.path), source: 'profile' }
  }
  return { profilePath: profile.path, values }
}

/** Every key the agent reads is text: an object would become "[object Object]" and ["s3"] would become "s3". */
function profileString(key: SettingKey, v: unknown, path: string): string {
  if (typeof v === 'string') return v
  const kind = Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`
  throw new AgentError('usage', `failed to read ${key} from the Metaflow profile ${path}: it is ${kind}, not a string`, {
    hint: `write it as "${key}": "value"`,
  })
}

function urlScheme(text: string): string {
  try {
    return new URL(text).protocol
  } catch {
    return ''
  }
}

// Metaflow refuses to run as root, so a root METAFLOW_USER falls through to the next source.
function nonRoot(user: string | undefined): string | undefined {
  return user && user !== 'root' ? user : undefined
}

export function describeSource(key: SettingKey, s: Setting, profilePath: string): string {
  switch (s.source) {
    case 'flag':
      return `flag ${SETTING_FLAGS[key] ?? key}`
    case 'env':
      return `environment ${key}`
    case 'profile':
      return `profile ${profilePath}`
    default:
      return 'default'
  }
}

/** A value safe to print: URLs lose user info and query strings. */
export function shownValue(key: SettingKey, value: string | undefined): string {
  if (value === undefined) return '(not set)'
  if (key === 'KFP_RUN_URL_PREFIX') return shownPrefix(value)
  if (key.endsWith('_URL') || key.endsWith('_PREFIX') || key === 'METAFLOW_DATASTORE_SYSROOT_S3') return redactUrl(value)
  return value
}

/**
 * The run link's prefix keeps its fragment: KFP's UI routes by it (the seed's `…/pipeline/#/runs/details`),
 * and redactUrl, which drops it, showed the prefix as `…/pipeline/`.
 */
function shownPrefix(value: string): string {
  const hash = value.indexOf('#')
  return hash < 0 ? redactUrl(value) : redactUrl(value.slice(0, hash)) + value.slice(hash)
}

/** Standard AWS variables `config` reports; the credential ones only say whether they are set. */
const AWS_SHOWN = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_STS', 'AWS_PROFILE', 'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY']
const AWS_SECRET = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN']

/**
 * The lines `metaflow-kfp config` prints: each setting, its value and where it came from, then the KFP
 * keys submit would use; no secrets. `home` and `fileExists` locate the profile and the token file.
 */
export function describeSettings(s: ResolvedSettings, env: NodeJS.ProcessEnv, home = homedir(), fileExists: (path: string) => boolean = existsSync): string[] {
  const profile = s.profile.found
    ? `profile: ${s.profile.name ?? '(none)'} (${s.profile.path})`
    : `profile: none (${s.profile.path} does not exist)`
  const lines = [profile]
  for (const key of SETTING_KEYS) {
    const v = s.values[key]
    lines.push(`${key}=${shownValue(key, v.value)}  # ${describeSource(key, v, s.profile.path)}`)
  }
  for (const key of AWS_SHOWN) {
    const v = env[key] ?? env[key.toLowerCase()]
    if (v) lines.push(`${key}=${key.includes('PROXY') || key.includes('URL') ? redactUrl(v) : v}  # environment`)
  }
  for (const key of AWS_SECRET) if (env[key]) lines.push(`${key}=****  # environment (masked)`)
  return [...lines, ...describeKfpKeys(env, home, fileExists)]
}

const KFP_FLAGS: Partial<Record<KfpKey, string>> = {
  KF_PIPELINES_ENDPOINT: '--host',
  KF_PIPELINES_UI_ENDPOINT: '--ui-host',
  KFP_API_TOKEN: '--token',
  KFP_NAMESPACE: '--namespace',
  KF_PIPELINES_DEFAULT_EXPERIMENT_NAME: '--experiment-name',
}

/**
 * What `submit`, `status` and `terminate` resolve without their flags, indented under a heading of its own
 * (steps never read these). The token is only ever `****` with its source; the cookie is a flag only.
 */
function describeKfpKeys(env: NodeJS.ProcessEnv, home: string, fileExists: (path: string) => boolean): string[] {
  const k = resolveKfpKeys({}, env, home)
  const where = (key: KfpKey) => {
    const v = k.values[key]
    return v?.source === 'env' ? `environment ${key}` : `profile ${k.profilePath}`
  }
  const unset = (key: KfpKey, what: string) => `  ${key}=(not set)  # ${what}${KFP_FLAGS[key] ? `; flag ${KFP_FLAGS[key]}` : ''}`
  const url = (key: KfpKey, what: string) => {
    const v = k.values[key]?.value
    if (v === undefined) return unset(key, what)
    return `  ${key}=${key === 'KFP_RUN_URL_PREFIX' ? shownPrefix(v) : redactUrl(v)}  # ${where(key)}`
  }
  const plain = (key: KfpKey, what: string) => {
    const v = k.values[key]
    return v ? `  ${key}=${v.value}  # ${where(key)}` : unset(key, what)
  }
  const lines = ['KFP (submit, status, terminate; their flags win over these):']
  lines.push(url('KF_PIPELINES_ENDPOINT', env.KUBERNETES_SERVICE_HOST ? "unset in a pod: KFP's in-cluster service" : 'required by submit'))
  lines.push(url('KF_PIPELINES_UI_ENDPOINT', 'run links use the host'))
  lines.push(url('KFP_RUN_URL_PREFIX', 'run links are <UI>/#/runs/details/<run id>'))
  lines.push(plain('KFP_NAMESPACE', 'required on a multi-user cluster'))
  lines.push(plain('KF_PIPELINES_DEFAULT_EXPERIMENT_NAME', 'the experiment is Default'))
  const token = k.values.KFP_API_TOKEN
  lines.push(token ? `  KFP_API_TOKEN=****  # ${where('KFP_API_TOKEN')} (masked)` : unset('KFP_API_TOKEN', 'no bearer token'))
  const tokenPath = k.values.KF_PIPELINES_SA_TOKEN_PATH
  const path = tokenPath?.value ?? DEFAULT_TOKEN_PATH
  const present = fileExists(path)
  lines.push(`  KF_PIPELINES_SA_TOKEN_PATH=${path}  # ${tokenPath ? where('KF_PIPELINES_SA_TOKEN_PATH') : 'default'}, ${present ? 'exists' : 'does not exist'}`)
  // The same choice as kfp-api/auth.ts: a token wins over the token file, which is used when named or present.
  const credential = token
    ? `the bearer token from ${where('KFP_API_TOKEN')}`
    : tokenPath || present
      ? `the token file ${path}${present ? '' : ', which does not exist'}`
      : 'none (give --token, KFP_API_TOKEN, KF_PIPELINES_SA_TOKEN_PATH or --cookie NAME=VALUE)'
  lines.push(`  credential sent: ${credential}`)
  lines.push('  cookie: only from --cookie NAME=VALUE, which sends it beside the token; its value is never printed')
  return lines
}

/** Completes a parsed config with its resolved settings: the user, the datastore, and the rest for the step. */
export function applySettings(cfg: UnresolvedConfig, s: ResolvedSettings, env: NodeJS.ProcessEnv): AgentConfig {
  const resolved = {
    ...cfg,
    user: s.values.METAFLOW_USER.value as string,
    datastore: s.values.METAFLOW_DEFAULT_DATASTORE.value as Datastore,
    settings: s,
  }
  if (resolved.command === 'step') resolved.retryCount ??= retryIndexFromEnv(env)
  return resolved as AgentConfig
}

/**
 * The attempt number KFP v2 gives the executor in KFP_RETRY_INDEX (releases that set it when a
 * retry policy exists); the IR has no placeholder for it, so templates leave --retry-count out.
 */
function retryIndexFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.KFP_RETRY_INDEX
  if (v === undefined || v === '') return 0
  if (!/^\d+$/.test(v)) throw new AgentError('usage', `failed to read KFP_RETRY_INDEX=${JSON.stringify(v)}: not a whole number`, { hint: 'pass --retry-count instead' })
  return Number(v)
}
