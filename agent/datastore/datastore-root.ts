// Decides where the Metaflow datastore lives and opens it, so the agent and the step agree.
import { existsSync } from 'node:fs'
import { symlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { Datastore, TaskConfig } from '../config.js'
import type { ObjectStore } from './datastore.js'
import { LocalStore } from './datastore.js'
import { AgentError } from '../errors.js'
import { makeDirs } from '../make-dirs.js'

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
  return resolveLocalDatastoreRoot(cfg.datastoreRoot, io)
}

/** The local half of resolveDatastoreRoot, shared with run-local so both put a run where Metaflow's client looks. */
export function resolveLocalDatastoreRoot(datastoreRoot: string | undefined, io: { env: NodeJS.ProcessEnv; cwd: string }): string {
  if (datastoreRoot) return resolve(io.cwd, datastoreRoot)
  const sysroot = io.env.METAFLOW_DATASTORE_SYSROOT_LOCAL
  if (sysroot) return join(resolve(io.cwd, sysroot), '.metaflow')
  for (let dir = resolve(io.cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.metaflow'))) return join(dir, '.metaflow')
    if (dirname(dir) === dir) break
  }
  return join(resolve(io.cwd), '.metaflow')
}

/** The folder under the datastore root where Metaflow keeps cards (metaflow_config.CARD_SUFFIX). */
export const CARD_SUFFIX = 'mf.cards'

/**
 * Makes @card write where Metaflow's readers look; returns variables for the step's environment.
 * Metaflow's client (`get_cards`) reads `<ds-root>/mf.cards`, ds-root being the root the task
 * wrote to. The writer, `flow.py card create` (which @card starts in the step's folder), takes
 * on S3 CARD_S3ROOT, by default `$METAFLOW_DATASTORE_SYSROOT_S3/mf.cards`, so it is set from the
 * root the agent resolved, which may have come from a flag. Locally it takes the `.metaflow`
 * found upwards from its working directory, the code folder in the temporary work dir, where
 * cards were deleted with it. Why a `.metaflow` link in the code folder rather than
 * METAFLOW_CARD_LOCALROOT: Metaflow 2.19's CardDatastore.get_storage_root returns None when
 * CARD_LOCALROOT is set, and the cards then go to `<root>/<Flow>/runs/…`, where no reader looks.
 * The link also gives `card create` the local metadata root it needs, and METAFLOW_DATASTORE_SYSROOT_LOCAL,
 * which it prefers, is made to agree with the root. A card root the user set,
 * or a `.metaflow` the code package ships, is left alone, as Metaflow would.
 */
export async function cardSetup(datastore: Datastore, root: string, codeDir: string, env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  if (datastore === 's3') return env.METAFLOW_CARD_S3ROOT ? {} : { METAFLOW_CARD_S3ROOT: `${root.replace(/\/+$/, '')}/${CARD_SUFFIX}` }
  // `card create` reads the task back through Metaflow's local metadata, rooted at this variable when it is set.
  const sysroot: Record<string, string> = basename(root) === '.metaflow' ? { METAFLOW_DATASTORE_SYSROOT_LOCAL: dirname(root) } : {}
  const link = join(codeDir, '.metaflow')
  if (env.METAFLOW_CARD_LOCALROOT || existsSync(link)) return sysroot
  try {
    await makeDirs(root)
    await symlink(root, link, 'dir')
  } catch {
    // A root that cannot be made fails the step itself, with Metaflow's own message; cards are not worth a second one.
  }
  return sysroot
}

/** The local store, or the S3 store that aws-task.ts opened with the role's credentials. */
export function openStore(datastore: Datastore, root: string, s3?: ObjectStore): ObjectStore {
  if (datastore === 'local') return new LocalStore(root)
  if (!s3) throw new AgentError('internal', `failed to open the s3 datastore at ${root}: no S3 client was set up`)
  return s3
}
