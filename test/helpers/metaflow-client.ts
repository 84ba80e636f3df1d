// Asks Metaflow's own client about a run: the independent judge of whether the agent did its job.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { PYTHON } from './paths'

const run = promisify(execFile)

export interface RunReport {
  successful: boolean
  finished: boolean
  /** step name -> task ids */
  tasks: Record<string, string[]>
  /** the end step's artifacts that are JSON-serialisable, by name */
  end: Record<string, unknown>
}

const SCRIPT = `
import json, sys
from metaflow import Run, namespace
namespace(None)
r = Run(sys.argv[1])
end = {}
# end_task: the run's own end step, which Metaflow >= 2.19.22 lets a flow name (@step(end=True)).
for a in r.end_task.artifacts:
    if a.id.startswith('_'):
        continue
    try:
        json.dumps(a.data); end[a.id] = a.data
    except TypeError:
        pass
print(json.dumps({
    'successful': r.successful,
    'finished': r.finished,
    'tasks': {s.id: sorted(t.id for t in s) for s in r},
    'end': end,
}))
`

/** Reads `Flow/run` with Metaflow's client; `env` says where the datastore and metadata are. */
export async function metaflowRun(pathspec: string, env: NodeJS.ProcessEnv): Promise<RunReport> {
  const { stdout } = await run(PYTHON, ['-c', SCRIPT, pathspec], { env: { ...env, METAFLOW_USER: 'test' } })
  return JSON.parse(stdout) as RunReport
}

/** The env that points Metaflow's client at a local datastore whose root is `<sysroot>/.metaflow`. */
export function localClientEnv(sysroot: string): NodeJS.ProcessEnv {
  return { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_DEFAULT_DATASTORE: 'local', METAFLOW_DEFAULT_METADATA: 'local' }
}
