// Metaflow's own tooling for an S3 datastore with local metadata: brings each task's saved metadata back.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { MOTO_KEYS } from './moto'
import { PYTHON } from './paths'

const run = promisify(execFile)

// Calls Metaflow's sync_local_metadata_from_datastore, the function its own Kubernetes and
// Batch CLIs use to pull a remote task's local metadata into $METAFLOW_DATASTORE_SYSROOT_LOCAL.
const RESTORE = `
import json, sys
from metaflow.datastore import FlowDataStore
from metaflow.plugins.datastores.s3_storage import S3Storage
from metaflow.metadata_provider.util import sync_local_metadata_from_datastore
flow, root, run_id, tasks = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
fds = FlowDataStore(flow, storage_impl=S3Storage, ds_root=root)
for step, task in tasks:
    tds = fds.get_task_datastore(run_id, step, task, allow_not_done=True)
    sync_local_metadata_from_datastore('.metaflow', tds)
print('ok')
`

/** The environment in which Metaflow (client or tooling) reads an S3 datastore on moto with local metadata in `sysroot`. */
export function s3ClientEnv(endpoint: string, s3root: string, sysroot: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...MOTO_KEYS,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    METAFLOW_S3_ENDPOINT_URL: endpoint,
    METAFLOW_DEFAULT_DATASTORE: 's3',
    METAFLOW_DATASTORE_SYSROOT_S3: s3root,
    METAFLOW_DEFAULT_METADATA: 'local',
    METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot,
    METAFLOW_USER: 'test',
  }
}

/** The (step, task id) of every task of the seed's foreach flow run with derived ids: 4 splits. */
export const FOREACH_FLOW_TASKS: [string, string][] = [
  ['_parameters', 'params'], ['start', 'start'], ['explore', 'explore-0'], ['explore', 'explore-1'],
  ['explore', 'explore-2'], ['explore', 'explore-3'], ['join', 'join'], ['end', 'end'],
]

export async function restoreLocalMetadata(env: NodeJS.ProcessEnv, flow: string, runId: string, tasks: [string, string][]): Promise<void> {
  const root = env.METAFLOW_DATASTORE_SYSROOT_S3 as string
  await run(PYTHON, ['-c', RESTORE, flow, root, runId, JSON.stringify(tasks)], { env, cwd: env.METAFLOW_DATASTORE_SYSROOT_LOCAL })
}
