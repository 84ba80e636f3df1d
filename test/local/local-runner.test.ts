// run-local executes the templates on this machine; Metaflow's own client judges the runs.
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { runArtifacts, runFlowPlainly } from '../helpers/flow-artifacts'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { AGENT, FIXTURE_FLOWS, FLOWS, PYTHON, REPO, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const execFileP = promisify(execFile)
const TEMPLATES = resolve(REPO, 'pipeline-templates')

const CASES = [
  { flow: 'hello_flow', name: 'HelloFlow', steps: ['end', 'hello', 'start'], params: {} },
  { flow: 'branch_flow', name: 'BranchFlow', steps: ['end', 'join', 'left', 'right', 'start'], params: {} },
  { flow: 'foreach_flow', name: 'ForeachFlow', steps: ['end', 'explore', 'join', 'start'], params: {} },
  { flow: 'nested_foreach_flow', name: 'NestedForeachFlow', steps: ['end', 'inner', 'inner_join', 'outer', 'outer_join', 'start'], params: {} },
  { flow: 'params_flow', name: 'ParamsFlow', steps: ['end', 'start'], params: { alpha: '0.25', who: 'kfp', count: '3', config: '{"depth": 4}' } },
] as const

// What Metaflow's client says about a run that never reached its end step.
const FAILED_RUN = `
import json, sys
from metaflow import Run, namespace
namespace(None)
r = Run(sys.argv[1])
print(json.dumps({'successful': r.successful, 'steps': sorted(s.id for s in r), 'helloOk': r['hello'].task.successful}))
`

function pathspecOf(stdout: string): string {
  const m = /^Metaflow run: (\S+)$/m.exec(stdout)
  if (!m) throw new Error(`no Metaflow run line in: ${stdout}`)
  return m[1] as string
}

async function runLocal(template: string, flowFile: string, cwd: string, extra: readonly string[] = []) {
  return runAgent(['run-local', join(TEMPLATES, template), '--code-url', `file://${flowFile}`, '--python', PYTHON, ...extra], { cwd, env: agentEnv() })
}

describe('metaflow-kfp run-local', () => {
  const tempDir = useTempDir()

  describe.each(CASES)('with $flow', ({ flow, name, steps, params }) => {
    const paramArgs = Object.entries(params).flatMap(([k, v]) => ['--param', `${k}=${v}`])
    const flowFile = join(FLOWS, `${flow}.py`)

    it.each(['kfp', 'argo'])("runs the %s template into a run Metaflow's client calls successful, with the artifacts of python flow.py run", async (form) => {
      const cwd = tempDir()
      const r = await runLocal(`${flow}.${form}.yaml`, flowFile, cwd, paramArgs)
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      const pathspec = pathspecOf(r.stdout)
      expect(pathspec).toMatch(new RegExp(`^${name}/kfp-[0-9a-f-]{36}$`))
      expect(r.stdout).toMatch(/^TASK +METAFLOW TASK ID +SPLITS +STATUS +DURATION$/m)
      expect(r.stdout).toMatch(/^end +end +- +ok +\d+\.\d+ s$/m)

      // The default datastore root is ./.metaflow, where Metaflow's client looks from this folder.
      const report = await metaflowRun(pathspec, localClientEnv(cwd))
      expect(report.successful).toBe(true)
      expect(Object.keys(report.tasks).sort()).toEqual([...steps])

      const plainRoot = tempDir()
      const plain = await runFlowPlainly(flowFile, name, Object.entries(params).flatMap(([k, v]) => [`--${k}`, v]), plainRoot)
      const ours = await runArtifacts(pathspec, cwd)
      // runArtifacts adds the run's own facts under @ keys (@project-tags).
      expect(Object.keys(ours).filter((k) => !k.startsWith('@')).sort()).toEqual([...steps])
      expect(ours).toEqual(await runArtifacts(plain, plainRoot))
    })
  })

  it('passes --param values through to the flow, typed as the flow declares them', async () => {
    const cwd = tempDir()
    const r = await runLocal('params_flow.kfp.yaml', join(FLOWS, 'params_flow.py'), cwd, ['--param', 'alpha=0.75', '--param', 'who=x y', '--param', 'config={"depth": 2}'])
    expect(r.code).toBe(0)
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
    expect(report.end).toMatchObject({ alpha: 0.75, who: 'x y', count: 2, greeting: 'hello x y hello x y ', scaled: 1.5 })
  })

  describe.each(['kfp', 'argo'])('with the %s foreach template and 100 splits', (form) => {
    it('runs every split with bounded parallelism and joins them all', async () => {
      const cwd = tempDir()
      const r = await runLocal(`foreach_flow.${form}.yaml`, join(FIXTURE_FLOWS, 'wide_foreach_flow.py'), cwd, ['--parallelism', '4'])
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(cwd))
      expect(report.successful).toBe(true)
      expect(report.tasks.explore).toHaveLength(100)
      expect(report.end).toMatchObject({ count: 100, total: 328350 })
      expect(r.stdout).toMatch(/^start +start +100 +ok /m)
      // Never more than --parallelism tasks at once: replay the start/finish lines.
      let running = 0
      let peak = 0
      for (const line of r.stderr.split('\n')) {
        if (/: started /.test(line)) peak = Math.max(peak, ++running)
        if (/ (succeeded|failed)/.test(line)) running--
      }
      expect(peak).toBe(4)
    }, 300_000)
  })

  it("keeps the Argo foreach task's outputs a few bytes, whatever the split count", async () => {
    // Runs the start container of the Argo template as the pod would, with 100 and 100,000 splits.
    const doc = parse(readFileSync(join(TEMPLATES, 'foreach_flow.argo.yaml'), 'utf8'))
    const start = doc.spec.templates.find((t: { name: string }) => t.name === 'start')
    const declared: string[] = start.outputs.parameters.map((p: { valueFrom: { path: string } }) => p.valueFrom.path)
    const passed = doc.spec.templates.find((t: { name: string }) => t.name === 'main').dag.tasks.flatMap((t: { withSequence?: unknown; withParam?: unknown }) => [t.withSequence, t.withParam])
    expect(JSON.stringify(passed)).not.toMatch(/splits/)

    const sizes: Record<string, number> = {}
    for (const width of [100, 100_000]) {
      const dir = tempDir()
      const args = (start.container.args as string[]).map((a) =>
        a.replace('{{workflow.parameters.code-url}}', flowUrl('wide_foreach_flow.py', FIXTURE_FLOWS))
          .replace('{{workflow.uid}}', `w${width}`)
          .replace('{{retries}}', '0')
          .replace(/^\/tmp\/outputs/, join(dir, 'outputs')))
      const r = await runAgent([...args, '--param', `width=${width}`, '--python', PYTHON, '--datastore-root', join(dir, '.metaflow')], { cwd: dir, env: agentEnv() })
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      sizes[width] = declared.reduce((n, p) => n + statSync(join(dir, 'outputs', p.replace(/^\/tmp\/outputs\//, ''))).size, 0)
      expect(readFileSync(join(dir, 'outputs', 'split_count'), 'utf8')).toBe(String(width))
    }
    expect(sizes[100]).toBeLessThanOrEqual(16)
    expect(sizes[100_000]).toBeLessThanOrEqual(16)
  }, 300_000)

  describe.each(['kfp', 'argo'])('with the %s template of a flow whose step fails', (form) => {
    it('stops at the failing task, shows its log and exits non-zero', async () => {
      const cwd = tempDir()
      const r = await runLocal(`hello_flow.${form}.yaml`, join(FIXTURE_FLOWS, 'failing_hello_flow.py'), cwd)
      expect(r.code).not.toBe(0)
      expect(r.code).not.toBeNull()
      expect(r.stderr).toMatch(/task hello failed \(exit code \d+\); its log/)
      expect(r.stderr).toMatch(/\| .*hello is failing on purpose/)
      expect(r.stderr).toMatch(/\| .*RuntimeError: boom from the hello step/)
      expect(r.stderr).not.toMatch(/started end/)
      expect(r.stdout).toMatch(/^hello +- +- +failed \(\d+\)/m)
      const { stdout } = await execFileP(PYTHON, ['-c', FAILED_RUN, pathspecOf(r.stdout)], { env: { ...localClientEnv(cwd), METAFLOW_USER: 'test' } })
      expect(JSON.parse(stdout)).toEqual({ successful: false, steps: ['hello', 'start'], helloOk: false })
    })
  })

  it('refuses a construct it does not run, naming it, before running any task', async () => {
    const cwd = tempDir()
    const argo = readFileSync(join(TEMPLATES, 'foreach_flow.argo.yaml'), 'utf8').replace(
      'withSequence:\n              count: "{{tasks.start.outputs.parameters.split_count}}"',
      'withParam: "{{tasks.start.outputs.parameters.splits}}"',
    )
    writeFileSync(join(cwd, 'withparam.argo.yaml'), argo)
    const kfp = readFileSync(join(TEMPLATES, 'hello_flow.kfp.yaml'), 'utf8').replace('dependentTasks: [hello]', 'dependentTasks: [hello]\n        triggerPolicy: {strategy: ALL_UPSTREAM_TASKS_COMPLETED}')
    writeFileSync(join(cwd, 'trigger.kfp.yaml'), kfp)

    // A trigger condition runs (switches); a trigger strategy (exit handlers) is still refused by name.
    for (const [file, construct] of [['withparam.argo.yaml', 'withParam'], ['trigger.kfp.yaml', 'strategy']] as const) {
      const r = await runAgent(['run-local', file, '--code-url', flowUrl('foreach_flow.py'), '--python', PYTHON], { cwd, env: agentEnv() })
      expect(r.code).toBe(64)
      expect(r.stderr).toMatch(new RegExp(`error: failed to run the template locally: run-local does not support ${construct} in task`))
      expect(r.stderr).not.toMatch(/started/)
    }
    expect(readdirSync(cwd)).not.toContain('.metaflow')
  })

  it('refuses an unknown --param with the names the template has', async () => {
    const r = await runAgent(['run-local', join(TEMPLATES, 'params_flow.argo.yaml'), '--code-url', flowUrl('params_flow.py'), '--param', 'alhpa=1'], { cwd: tempDir(), env: agentEnv() })
    expect(r.code).toBe(64)
    expect(r.stderr).toMatch(/error: failed to set workflow parameter alhpa: the workflow has no such parameter \(its parameters are: code-url, alpha, who, count, config\)/)
  })

  it('puts the run under METAFLOW_DATASTORE_SYSROOT_LOCAL as the step command does, where it wrote ./.metaflow and the client found nothing', async () => {
    const sysroot = tempDir()
    const cwd = tempDir()
    const r = await runAgent(['run-local', join(TEMPLATES, 'hello_flow.kfp.yaml'), '--code-url', flowUrl('hello_flow.py'), '--python', PYTHON], {
      cwd,
      env: agentEnv({ METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot }),
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`datastore root ${join(sysroot, '.metaflow')}`)
    expect(readdirSync(cwd)).toEqual([])
    // Metaflow's client, configured only by the variable, finds the run.
    const report = await metaflowRun(pathspecOf(r.stdout), localClientEnv(sysroot))
    expect(report.successful).toBe(true)
  })

  it('keeps an explicit --datastore-root above METAFLOW_DATASTORE_SYSROOT_LOCAL', async () => {
    const sysroot = tempDir()
    const cwd = tempDir()
    const r = await runAgent(['run-local', join(TEMPLATES, 'hello_flow.kfp.yaml'), '--code-url', flowUrl('hello_flow.py'), '--python', PYTHON, '--datastore-root', 'here/.metaflow'], {
      cwd,
      env: agentEnv({ METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot }),
    })
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(sysroot)).toEqual([])
    expect((await metaflowRun(pathspecOf(r.stdout), localClientEnv(join(cwd, 'here')))).successful).toBe(true)
  })

  it('is listed in --help', async () => {
    const { stdout } = await execFileP(AGENT, ['--help'])
    expect(stdout).toMatch(/run-local <template>/)
  })
})
