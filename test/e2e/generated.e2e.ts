// Pipelines that `metaflow-kfp generate --format argo` writes for the generate corpus run on the real cluster, judged by Metaflow's client.
import { chmodSync, cpSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { runArtifacts, runFlowPlainly } from '../helpers/flow-artifacts'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { CASES, CORPUS, RUN_OPTIONS } from '../helpers/generate-corpus'
import { generateFile } from '../pipelines/generate-checks'
import { describeWorkflow, submit, waitWorkflow, withSharedDatastore } from './cluster'
import { useSharedDirs } from './shared-dirs'

const IMAGE = 'localhost/metaflow-kfp:0.1.0'

/**
 * A traceback (@catch's artifact) names the flow's folder (the agent's fresh code folder or the corpus)
 * and where Metaflow is installed (the image's /opt/metaflow or this machine's .venv).
 */
function sameFolder(artifacts: Record<string, string[]>): Record<string, string[]> {
  const strip = (t: string) =>
    t
      .split(CORPUS)
      .join('<flow folder>')
      .replace(/[^\s"'\\]*metaflow-kfp-\w+\/code-\w+/g, '<flow folder>')
      .replace(/[^\s"'\\]*\/site-packages\//g, '<site-packages>/')
  return Object.fromEntries(Object.entries(artifacts).map(([step, tasks]) => [step, tasks.map(strip)]))
}

describe('generated Argo pipelines on a real Kubernetes with Argo Workflows', () => {
  const shared = useSharedDirs()

  it.concurrent.each(CASES)("runs generate's Argo pipeline for $flow to Succeeded, with the tasks and artifacts of python flow.py run", async ({ flow, name, tasks }) => {
    const dir = shared()
    // The corpus folder goes to the pods whole: some flows read files beside them.
    cpSync(CORPUS, join(dir.path, 'flows'), { recursive: true })
    const flowFile = join(dir.path, 'flows', `${flow}.py`)
    const out = join(dir.path, `${flow}.argo.yaml`)
    // An IncludeFile's file is stored in the shared datastore the pods mount. generate runs as root
    // here and the pods as uid 1000, who must still make the flow's folders in it: 0777, as the shared folder.
    mkdirSync(join(dir.path, '.metaflow'))
    chmodSync(join(dir.path, '.metaflow'), 0o777)
    const generateArgs = ['--format', 'argo', '--code-url', `file://${flowFile}`, '--datastore-root', join(dir.path, '.metaflow'), '--image', IMAGE, ...(RUN_OPTIONS[flow]?.generate ?? [])]
    // The plain run's user: @project puts a run without --branch on user.<name>.
    const doc = parse(await generateFile(flowFile, out, generateArgs)) as Record<string, any>
    const { name: wfName, uid } = await submit(withSharedDatastore(doc, dir.path, { METAFLOW_USER: 'test' }))
    const wf = await waitWorkflow(wfName, 600_000)
    expect(wf.status.phase, describeWorkflow(wf)).toBe('Succeeded')

    const pathspec = `${name}/kfp-${uid}`
    const report = await metaflowRun(pathspec, localClientEnv(dir.path))
    expect(report.successful).toBe(true)
    expect(Object.fromEntries(Object.entries(report.tasks).map(([s, ids]) => [s, ids.length]))).toEqual(tasks)
    const plainRoot = shared()
    const plain = await runFlowPlainly(join(CORPUS, `${flow}.py`), name, [], plainRoot.path, RUN_OPTIONS[flow]?.topLevel)
    expect(sameFolder(await runArtifacts(pathspec, dir.path))).toEqual(sameFolder(await runArtifacts(plain, plainRoot.path)))
  })
})
