// Every Argo pipeline template runs as a real workflow on Kubernetes with Argo's own controller; Metaflow's client judges each run.
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runArtifacts, runFlowPlainly } from '../helpers/flow-artifacts'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FLOWS } from '../helpers/paths'
import { describeWorkflow, flowName, loadTemplate, podNodes, sharedDir, submit, waitWorkflow, withSharedDatastore } from './cluster'
import type { SharedDir } from './cluster'

const CASES = [
  { flow: 'hello_flow', steps: ['end', 'hello', 'start'], params: {} },
  { flow: 'branch_flow', steps: ['end', 'join', 'left', 'right', 'start'], params: {} },
  { flow: 'foreach_flow', steps: ['end', 'explore', 'join', 'start'], params: {} },
  { flow: 'nested_foreach_flow', steps: ['end', 'inner', 'inner_join', 'outer', 'outer_join', 'start'], params: {} },
  { flow: 'params_flow', steps: ['end', 'start'], params: { alpha: '0.25', who: 'kfp on argo', count: '3', config: '{"depth": 4}' } },
] as const

describe('the Argo pipeline templates on a real Kubernetes with Argo Workflows', () => {
  const dirs: SharedDir[] = []
  afterAll(() => dirs.forEach((d) => d.remove()))

  it.concurrent.each(CASES)(
    "runs the Argo template of $flow to Succeeded, into a run Metaflow's client calls successful, with the artifacts of python flow.py run",
    async ({ flow, steps, params }) => {
      const shared = sharedDir()
      dirs.push(shared)
      const flowFile = join(FLOWS, `${flow}.py`)
      const workflow = withSharedDatastore(loadTemplate(`${flow}.argo.yaml`), shared.path)
      const { name, uid } = await submit(workflow, { 'code-url': shared.flowUrl(flowFile), ...params })
      const wf = await waitWorkflow(name, 480_000)
      expect(wf.status.phase, describeWorkflow(wf)).toBe('Succeeded')
      // One pod per task, none retried: what Argo ran is the flow's graph, once.
      expect(podNodes(wf).every((n) => n.phase === 'Succeeded'), describeWorkflow(wf)).toBe(true)

      const pathspec = `${flowName(flowFile)}/kfp-${uid}`
      const report = await metaflowRun(pathspec, localClientEnv(shared.path))
      expect(report.successful).toBe(true)
      expect(Object.keys(report.tasks).sort()).toEqual([...steps])
      expect(podNodes(wf)).toHaveLength(Object.values(report.tasks).flat().length)

      const plainRoot = sharedDir()
      dirs.push(plainRoot)
      const plain = await runFlowPlainly(flowFile, flowName(flowFile), Object.entries(params).flatMap(([k, v]) => [`--${k}`, v]), plainRoot.path)
      expect(await runArtifacts(pathspec, shared.path)).toEqual(await runArtifacts(plain, plainRoot.path))
    },
  )
})
