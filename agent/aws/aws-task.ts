// What one task needs from AWS: the assumed role, the s3:// opener, the S3 datastore, the step's credential endpoint and environment.
import { devNull } from 'node:os'
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { ProxyRequestHandler, proxyConfigured } from './aws-http.js'
import type { Opener } from '../code/code-fetch.js'
import type { TaskConfig } from '../config.js'
import { RoleSession, credentialTiming, roleSessionName, stsAssumer } from './credentials.js'
import { startCredentialServer } from './credential-server.js'
import type { CredentialServer } from './credential-server.js'
import type { TaskRef } from '../datastore/datastore.js'
import { resolveDatastoreRoot } from '../datastore/datastore-root.js'
import { AgentError } from '../errors.js'
import { syncLocalMetadata } from '../datastore/metadata-sync.js'
import { s3Opener } from './s3-code.js'
import { S3Store, s3Endpoint } from './s3-store.js'
import type { S3Access } from './s3-store.js'
import { SETTING_KEYS } from '../settings.js'

/**
 * Variables that botocore's chain consults before the container provider (env keys, profiles,
 * web identity, other container settings): any of them would shadow the agent's endpoint.
 */
export const SHADOWING_AWS_VARS = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
  'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
] as const

export interface AwsTask {
  /** openers for code-fetch: s3 */
  openers: Record<string, Opener>
  /** the S3 datastore, when --datastore s3 */
  store: S3Store | undefined
  /** the credentials stage: serve the role to the step and build its environment */
  stepEnv(base: NodeJS.ProcessEnv, workDir: string): Promise<NodeJS.ProcessEnv>
  /** saves the task's local metadata into the S3 datastore (local metadata on S3 only); once per task */
  syncMetadata(task: TaskRef): Promise<void>
  close(): Promise<void>
}

function needsAws(cfg: TaskConfig): boolean {
  return cfg.datastore === 's3' || cfg.code.url.startsWith('s3://') || cfg.settings.values.METAFLOW_AWS_ARN.value !== undefined
}

/** The S3 region the agent uses and hands the step: the setting, else the standard variables. */
export function awsRegion(cfg: TaskConfig, env: NodeJS.ProcessEnv): string {
  return cfg.settings.values.METAFLOW_AWS_S3_REGION.value ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1')
}

/**
 * Assumes the role first, before anything is downloaded, so a refused role fails in
 * seconds with exit code 77. Loads the AWS SDK only when the task touches AWS at all.
 */
export async function openAws(cfg: TaskConfig, io: { env: NodeJS.ProcessEnv; log: (line: string) => void }, task: { runId: string; name: string }): Promise<AwsTask> {
  const v = cfg.settings.values
  const roleArn = v.METAFLOW_AWS_ARN.value
  const region = awsRegion(cfg, io.env)
  // A wrong root is a usage error; find it before spending an STS call.
  const root = cfg.datastore === 's3' ? resolveDatastoreRoot(cfg, { env: io.env, cwd: '.' }) : undefined
  // Only with a proxy does the agent swap the SDK's own HTTP handler for one that honours it.
  const requestHandler = proxyConfigured(io.env) ? () => new ProxyRequestHandler(io.env) : undefined
  let session: RoleSession | undefined
  if (roleArn) {
    const timing = credentialTiming(io.env)
    session = await RoleSession.start({
      roleArn,
      assume: await stsAssumer({ roleArn, sessionName: roleSessionName(['mfkfp', task.runId, task.name]), durationSeconds: timing.durationSeconds, region, env: io.env, requestHandler: requestHandler?.() }),
      refreshBeforeMs: timing.refreshBeforeMs,
      log: io.log,
      secrets: [io.env.AWS_SECRET_ACCESS_KEY, io.env.AWS_SESSION_TOKEN, io.env.AWS_ACCESS_KEY_ID],
    })
  }
  const access: S3Access = {
    region,
    endpoint: s3Endpoint(v.METAFLOW_S3_ENDPOINT_URL.value, io.env),
    credentials: session?.provider(),
    maxAttempts: 5,
    requestHandler,
  }
  const code = needsAws(cfg) ? s3Opener(access) : undefined
  let store: S3Store | undefined
  if (root) store = await S3Store.open(root, access)
  let server: CredentialServer | undefined
  let metadataRoot: string | undefined
  const synced = new Set<string>()
  const localMetadataOnS3 = cfg.datastore === 's3' && v.METAFLOW_DEFAULT_METADATA.value === 'local'

  return {
    openers: code ? { s3: code.open } : {},
    store,
    async stepEnv(base, workDir) {
      const env: NodeJS.ProcessEnv = { ...base }
      // The step reads the same settings the agent resolved, whatever their source.
      for (const key of SETTING_KEYS) {
        const s = v[key]
        if (s.value !== undefined && s.source !== 'default') env[key] = s.value
      }
      env.METAFLOW_DEFAULT_DATASTORE = cfg.datastore
      if (v.METAFLOW_AWS_S3_REGION.value) {
        env.AWS_DEFAULT_REGION = v.METAFLOW_AWS_S3_REGION.value
        env.AWS_REGION ??= v.METAFLOW_AWS_S3_REGION.value
      } else if (needsAws(cfg)) {
        // botocore has no default region; the step uses the one the agent fell back to.
        env.AWS_DEFAULT_REGION ??= region
      }
      if (localMetadataOnS3) {
        // Metaflow writes local metadata under $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow; a
        // private folder keeps it from landing in some .metaflow above the work dir.
        metadataRoot = await mkdtemp(join(workDir, 'metadata-'))
        env.METAFLOW_DATASTORE_SYSROOT_LOCAL = metadataRoot
      }
      if (!session) return env
      const s = session
      server = await startCredentialServer({ current: () => s.current(), dir: await mkdtemp(join(workDir, '.credentials-')) })
      for (const k of SHADOWING_AWS_VARS) delete env[k]
      // Config files may hold keys or a role_arn for the default profile, which botocore prefers.
      env.AWS_CONFIG_FILE = devNull
      env.AWS_SHARED_CREDENTIALS_FILE = devNull
      env.AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url
      env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = server.tokenFile
      const noProxy = [env.NO_PROXY ?? env.no_proxy, '127.0.0.1', 'localhost'].filter(Boolean).join(',')
      env.NO_PROXY = noProxy
      env.no_proxy = noProxy
      io.log(`serving role ${roleArn} to the step on ${server.url}`)
      return env
    },
    async syncMetadata(t) {
      const id = `${t.step}/${t.taskId}/${t.attempt}`
      if (!localMetadataOnS3 || !store || !metadataRoot || synced.has(id)) return
      synced.add(id)
      try {
        const key = await syncLocalMetadata(store, t, metadataRoot, metadataRoot)
        if (key) io.log(`saved local metadata of ${t.runId}/${id} to ${store.root}`)
      } catch (err) {
        throw new AgentError('outputs', `failed to save the local metadata of ${t.runId}/${t.step}/${t.taskId} to ${store.root}`, {
          cause: err,
          hint: 'check write access to the datastore, or use a metadata service',
        })
      }
    },
    async close() {
      await server?.close()
      if (server) io.log(`credential endpoint served ${server.stats.served} request(s), refused ${server.stats.refused}`)
      session?.close()
      code?.close()
      store?.close()
    },
  }
}
