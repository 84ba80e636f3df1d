// Runs a flow the plain Metaflow way (`python flow.py run`) and reads every task's artifacts with Metaflow's client, for comparing runs.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { PYTHON } from './paths'

const run = promisify(execFile)

/** `python flow.py run ARGS` on a local datastore under `sysroot`; returns the run's pathspec. */
export async function runFlowPlainly(flowFile: string, flowName: string, args: readonly string[], sysroot: string): Promise<string> {
  const idFile = join(sysroot, 'run-id')
  await run(PYTHON, [flowFile, '--quiet', '--datastore', 'local', '--metadata', 'local', 'run', '--run-id-file', idFile, ...args], {
    cwd: sysroot,
    env: { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_USER: 'test' },
  })
  return `${flowName}/${readFileSync(idFile, 'utf8').trim()}`
}

const SCRIPT = `
import json, sys
from metaflow import Run, namespace
namespace(None)
out = {}
for step in Run(sys.argv[1]):
    tasks = []
    for task in step:
        arts = {}
        for a in task.artifacts:
            if a.id.startswith('_') or a.id == 'name':
                continue
            try:
                arts[a.id] = json.loads(json.dumps(a.data))
            except TypeError:
                arts[a.id] = repr(a.data)
        tasks.append(json.dumps(arts, sort_keys=True))
    out[step.id] = sorted(tasks)
print(json.dumps(out))
`

/** step -> the sorted JSON of each task's public artifacts: equal for two runs that computed the same things, whatever their task ids. */
export async function runArtifacts(pathspec: string, sysroot: string): Promise<Record<string, string[]>> {
  const { stdout } = await run(PYTHON, ['-c', SCRIPT, pathspec], {
    env: { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_DEFAULT_DATASTORE: 'local', METAFLOW_DEFAULT_METADATA: 'local', METAFLOW_USER: 'test' },
    maxBuffer: 64 << 20,
  })
  return JSON.parse(stdout) as Record<string, string[]>
}
