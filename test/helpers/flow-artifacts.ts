// Runs a flow the plain Metaflow way (`python flow.py run`) and reads every task's artifacts with Metaflow's client, for comparing runs.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { PYTHON } from './paths'

const run = promisify(execFile)

/** `python flow.py TOPLEVEL run ARGS` on a local datastore under `sysroot` (TOPLEVEL: e.g. @project's --branch); returns the run's pathspec. */
export async function runFlowPlainly(flowFile: string, flowName: string, args: readonly string[], sysroot: string, topLevel: readonly string[] = []): Promise<string> {
  const idFile = join(sysroot, 'run-id')
  await run(PYTHON, [flowFile, '--quiet', '--datastore', 'local', '--metadata', 'local', ...topLevel, 'run', '--run-id-file', idFile, ...args], {
    cwd: sysroot,
    env: { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_USER: 'test' },
  })
  return `${flowName}/${readFileSync(idFile, 'utf8').trim()}`
}

// A task's cards as Metaflow's client lists them (type and id), under the key @cards; the run's
// @project tags under @project-tags (the user: tag differs between a plain run and a pipeline's).
const SCRIPT = `
import json, sys
from metaflow import Run, namespace
from metaflow.cards import get_cards
from metaflow.plugins.cards.exception import CardNotPresentException
namespace(None)
out = {}
r = Run(sys.argv[1])
out["@project-tags"] = sorted(t for t in r.system_tags if t.startswith(("project:", "project_branch:")))
for step in r:
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
        try:
            arts["@cards"] = sorted("%s:%s" % (c.type, c.id) for c in get_cards(task))
        except CardNotPresentException:
            arts["@cards"] = []
        tasks.append(json.dumps(arts, sort_keys=True))
    out[step.id] = sorted(tasks)
print(json.dumps(out))
`

/**
 * step -> the sorted JSON of each task's public artifacts and cards: equal for two runs that
 * computed the same things, whatever their task ids; plus the run's @project tags.
 */
export async function runArtifacts(pathspec: string, sysroot: string): Promise<Record<string, string[]>> {
  const { stdout } = await run(PYTHON, ['-c', SCRIPT, pathspec], {
    env: { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_DEFAULT_DATASTORE: 'local', METAFLOW_DEFAULT_METADATA: 'local', METAFLOW_USER: 'test' },
    maxBuffer: 64 << 20,
  })
  return JSON.parse(stdout) as Record<string, string[]>
}
