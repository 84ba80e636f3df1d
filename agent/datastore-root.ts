// Decides where the Metaflow datastore lives and opens it, so the agent and the step agree.
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Datastore, TaskConfig } from './config.js'
import type { ObjectStore } from './datastore.js'
import { LocalStore } from './datastore.js'
import { AgentError } from './errors.js'

/**
 * The local root follows Metaflow's own rule so its client finds the run from the same
 * place: --datastore-root as given, else $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow, else
 * the nearest .metaflow folder above the agent's working directory, else ./.metaflow.
 */
export function resolveDatastoreRoot(cfg: Pick<TaskConfig, 'datastore' | 'datastoreRoot'>, io: { env: NodeJS.ProcessEnv; cwd: string }): string {
  if (cfg.datastoreRoot) return cfg.datastore === 'local' ? resolve(io.cwd, cfg.datastoreRoot) : cfg.datastoreRoot
  if (cfg.datastore === 's3') {
    const root = io.env.METAFLOW_DATASTORE_SYSROOT_S3
    if (!root) {
      throw new AgentError('usage', 'failed to find the S3 datastore root', {
        hint: 'set --datastore-root s3://bucket/prefix or METAFLOW_DATASTORE_SYSROOT_S3',
      })
    }
    return root
  }
  const sysroot = io.env.METAFLOW_DATASTORE_SYSROOT_LOCAL
  if (sysroot) return join(resolve(io.cwd, sysroot), '.metaflow')
  for (let dir = resolve(io.cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.metaflow'))) return join(dir, '.metaflow')
    if (dirname(dir) === dir) break
  }
  return join(resolve(io.cwd), '.metaflow')
}

export function openStore(datastore: Datastore, root: string): ObjectStore {
  if (datastore === 'local') return new LocalStore(root)
  throw new AgentError('usage', 'failed to open the s3 datastore: not supported in this build yet', {
    hint: 'use --datastore local',
  })
}
