// Decides where the Metaflow datastore lives and opens it, so the agent and the step agree.
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Datastore, TaskConfig } from '../config.js'
import type { ObjectStore } from './datastore.js'
import { LocalStore } from './datastore.js'
import { AgentError } from '../errors.js'

/**
 * The local root follows Metaflow's own rule so its client finds the run from the same
 * place: --datastore-root as given, else $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow, else
 * the nearest .metaflow folder above the agent's working directory, else ./.metaflow.
 */
export function resolveDatastoreRoot(cfg: Pick<TaskConfig, 'datastore' | 'datastoreRoot' | 'settings'>, io: { env: NodeJS.ProcessEnv; cwd: string }): string {
  if (cfg.datastore === 's3') {
    // settings.ts already put --datastore-root above the environment and the profile.
    const root = cfg.settings.values.METAFLOW_DATASTORE_SYSROOT_S3.value
    if (!root || !/^s3:\/\/[^/]+/.test(root)) {
      throw new AgentError('usage', root ? `failed to use the S3 datastore root ${root}: not an s3:// URL` : 'failed to find the S3 datastore root', {
        hint: 'set --datastore-root s3://bucket/prefix, METAFLOW_DATASTORE_SYSROOT_S3, or the key in the Metaflow profile',
      })
    }
    return root
  }
  if (cfg.datastoreRoot) return resolve(io.cwd, cfg.datastoreRoot)
  const sysroot = io.env.METAFLOW_DATASTORE_SYSROOT_LOCAL
  if (sysroot) return join(resolve(io.cwd, sysroot), '.metaflow')
  for (let dir = resolve(io.cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.metaflow'))) return join(dir, '.metaflow')
    if (dirname(dir) === dir) break
  }
  return join(resolve(io.cwd), '.metaflow')
}

/** The local store, or the S3 store that aws-task.ts opened with the role's credentials. */
export function openStore(datastore: Datastore, root: string, s3?: ObjectStore): ObjectStore {
  if (datastore === 'local') return new LocalStore(root)
  if (!s3) throw new AgentError('internal', `failed to open the s3 datastore at ${root}: no S3 client was set up`)
  return s3
}
