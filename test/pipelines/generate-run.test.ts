// Generated pipelines run with run-local; Metaflow's client judges them against `python flow.py run` of the same flow.
import { copyFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { runArtifacts, runFlowPlainly } from '../helpers/flow-artifacts'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { parse } from 'yaml'
import { CASES, CORPUS, RUN_OPTIONS } from '../helpers/generate-corpus'
import { FIXTURE_FLOWS, FLOWS, PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { generateFile } from './generate-checks'

/** A traceback (@catch's artifact) names the flow's folder: the agent's fresh code folder or the corpus. */
function sameFolder(artifacts: Record<string, string[]>, corpus: string): Record<string, string[]> {
  const strip = (t: string) => t.split(corpus).join('<flow folder>').replace(/[^\s"'\\]*metaflow-kfp-\w+\/code-\w+/g, '<flow folder>')
  return Object.fromEntries(Object.entries(artifacts).map(([step, tasks]) => [step, tasks.map(strip)]))
}

function pathspecOf(stdout: string): string {
  const m = /^Metaflow run: (\S+)$/m.exec(stdout)
  if (!m) throw new Error(`no Metaflow run line in: ${stdout}`)
  return m[1] as string
}

describe('a generated pipeline run with run-local', () => {
  const tempDir = useTempDir()

  it('runs the code package generate stored without --code-url, and refuses other bytes at that URL', async () => {
    const cwd = tempDir()
    mkdirSync(join(cwd, 'flows'))
    copyFileSync(join(FLOWS, 'foreach_flow.py'), join(cwd, 'flows', 'foreach_flow.py'))
    const root = join(cwd, '.metaflow')
    const pipeline = join(cwd, 'p.yaml')
    const doc = parse(await generateFile(join(cwd, 'flows', 'foreach_flow.py'), pipeline, ['--datastore-root', root]))
    const url = doc.root.inputDefinitions.parameters.code_url.defaultValue as string
    const run = () => runAgent(['run-local', pipeline, '--code-url', url, '--python', PYTHON], { cwd, env: agentEnv() })
    const r = await run()
    expect(r.stderr).not.toMatch(/error:/)
    expect(r.code).toBe(0)
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toHaveLength(4)
    // Someone replaces the package: the pinned sha256 stops every task before the step runs.
    copyFileSync(join(FIXTURE_FLOWS, 'failing_flow.py'), url.slice('file://'.length))
    const tampered = await run()
    expect(tampered.code).toBe(65)
    expect(tampered.stderr).toMatch(/its sha256 is [0-9a-f]{64}, not [0-9a-f]{64}/)
  }, 600_000)

  describe.each(CASES)('for $flow', ({ flow, name, tasks }) => {
    const file = join(CORPUS, `${flow}.py`)
    let plain: Promise<{ root: string; artifacts: Record<string, string[]> }> | undefined
    // One plain run per flow, shared by both forms.
    const plainRun = () => {
      plain ??= (async () => {
        const root = tempDir()
        const pathspec = await runFlowPlainly(file, name, [], root, RUN_OPTIONS[flow]?.topLevel)
        return { root, artifacts: await runArtifacts(pathspec, root) }
      })()
      return plain
    }

    it.each(['kfp', 'argo'])("in the %s form succeeds with the tasks and artifacts of python flow.py run, as Metaflow's client sees them", async (form) => {
      const cwd = tempDir()
      const pipeline = join(cwd, `p.${form}.yaml`)
      // An IncludeFile's file is stored in the datastore run-local uses here.
      await generateFile(file, pipeline, ['--format', form, '--code-url', `file://${file}`, '--datastore-root', join(cwd, '.metaflow'), ...(RUN_OPTIONS[flow]?.generate ?? [])])
      // The datastore named: a .metaflow in a folder above (the temp dir's) would be taken otherwise.
      // The plain run's user too: @project puts a run without --branch on the user's branch, user.<name>.
      const r = await runAgent(['run-local', pipeline, '--code-url', `file://${file}`, '--python', PYTHON, '--parallelism', '4', '--datastore-root', join(cwd, '.metaflow')], { cwd, env: agentEnv({ METAFLOW_USER: 'test' }) })
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      const pathspec = pathspecOf(r.stdout)
      expect(pathspec).toMatch(new RegExp(`^${name}/kfp-`))
      const report = await metaflowRun(pathspec, localClientEnv(cwd))
      expect(report.successful).toBe(true)
      expect(Object.fromEntries(Object.entries(report.tasks).map(([s, ids]) => [s, ids.length]))).toEqual(tasks)
      const expected = await plainRun()
      expect(sameFolder(await runArtifacts(pathspec, cwd), CORPUS)).toEqual(sameFolder(expected.artifacts, CORPUS))
    }, 600_000)
  })
})
