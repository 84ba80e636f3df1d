// What only a real engine shows: Argo's retries, `argo stop` reaching the step, a deadline's kill leaving logs, a wide foreach fan-out.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FIXTURE_FLOWS, PYTHON } from '../helpers/paths'
import { argo, describeWorkflow, kubectl, loadTemplate, podNodes, submit, waitUntil, waitWorkflow, withSharedDatastore } from './cluster'
import { useSharedDirs } from './shared-dirs'

const run = promisify(execFile)
const E2E_FLOWS = resolve(__dirname, 'flows')

/** Asks Metaflow's client a question about one run: the script gets the pathspec as sys.argv[1] and prints JSON. */
async function askMetaflow(sysroot: string, pathspec: string, script: string): Promise<any> {
  const { stdout } = await run(PYTHON, ['-c', `import json, sys\nfrom metaflow import Run, Task, namespace\nnamespace(None)\n${script}`, pathspec], {
    env: { ...localClientEnv(sysroot), METAFLOW_USER: 'test' },
    timeout: 120_000,
  })
  return JSON.parse(stdout)
}

describe('behaviours only a real engine shows', () => {
  const shared = useSharedDirs()

  it("retries a step that fails once through Argo's retryStrategy, passing {{retries}} so Metaflow records attempt 0 failed and attempt 1 successful", async () => {
    const dir = shared()
    const flowFile = join(E2E_FLOWS, 'retry_once_flow.py')
    const { name, uid } = await submit(withSharedDatastore(loadTemplate('hello_flow.argo.yaml'), dir.path), { 'code-url': dir.flowUrl(flowFile) })
    const wf = await waitWorkflow(name, 300_000)
    expect(wf.status.phase, describeWorkflow(wf)).toBe('Succeeded')
    const hello = podNodes(wf).filter((n) => n.templateName === 'hello')
    expect(hello.map((n) => n.phase).sort(), describeWorkflow(wf)).toEqual(['Failed', 'Succeeded'])

    const pathspec = `RetryOnceFlow/kfp-${uid}`
    expect((await metaflowRun(pathspec, localClientEnv(dir.path))).successful).toBe(true)
    const attempts = await askMetaflow(dir.path, pathspec, `
r = Run(sys.argv[1])
t = r['hello'].task
first = Task(t.pathspec, attempt=0)
print(json.dumps({'current': t.current_attempt, 'ok': t.successful, 'worked': t['attempt_that_worked'].data,
                  'first_ok': first.successful, 'first_stderr': first.stderr}))
`)
    expect(attempts).toMatchObject({ current: 1, ok: true, worked: 1, first_ok: false })
    expect(attempts.first_stderr).toContain('hello fails on its first attempt on purpose')
  })

  it("fails a task whose code URL is missing with the agent's exit 69 on every attempt Argo's retryStrategy makes, and runs nothing after it", async () => {
    const dir = shared()
    const { name } = await submit(withSharedDatastore(loadTemplate('hello_flow.argo.yaml'), dir.path), { 'code-url': `file://${dir.path}/flows/no_such_flow.py` })
    const wf = await waitWorkflow(name, 300_000)
    expect(wf.status.phase, describeWorkflow(wf)).toBe('Failed')
    const pods = podNodes(wf)
    // retryStrategy limit 2: three attempts of start, and hello and end never started.
    expect(pods.map((n) => n.templateName), describeWorkflow(wf)).toEqual(['start', 'start', 'start'])
    const items = JSON.parse(await kubectl(['get', 'pods', '-l', `workflows.argoproj.io/workflow=${name}`, '-o', 'json'])).items as any[]
    const codes = items.map((p) => p.status.containerStatuses.find((c: { name: string }) => c.name === 'main').state.terminated.exitCode)
    expect(codes).toEqual([69, 69, 69])
  })

  it('stops a sleeping step with argo stop: SIGTERM reaches the step, which records it, and the agent exits 143', async () => {
    const dir = shared()
    const marker = join(dir.path, 'signal-marker')
    // One task of the hello template, running the sleepy fixture's start step.
    const template = loadTemplate('hello_flow.argo.yaml')
    template.spec.templates[0].dag.tasks = template.spec.templates[0].dag.tasks.filter((t: { name: string }) => t.name === 'start')
    const workflow = withSharedDatastore(template, dir.path, { SIGNAL_MARKER: marker })
    const { name } = await submit(workflow, { 'code-url': dir.flowUrl(join(FIXTURE_FLOWS, 'sleepy_flow.py')) })

    const pods = async () => JSON.parse(await kubectl(['get', 'pods', '-l', `workflows.argoproj.io/workflow=${name}`, '-o', 'json'])).items as any[]
    const deadline = Date.now() + 240_000
    for (;;) {
      const [pod] = await pods()
      if (pod?.status?.phase === 'Running') {
        const logs = await kubectl(['logs', pod.metadata.name, '-c', 'main']).catch(() => '')
        if (logs.includes('READY')) break
      }
      if (Date.now() > deadline) throw new Error(`the sleepy step never printed READY: ${describeWorkflow(await waitUntil(name, () => true, 1000))}`)
      await new Promise((r) => setTimeout(r, 1000))
    }
    await argo(['stop', name])
    const wf = await waitWorkflow(name, 180_000)
    expect(wf.status.phase, describeWorkflow(wf)).toMatch(/Failed|Error/)
    expect(existsSync(marker) ? readFileSync(marker, 'utf8') : 'no marker: the step never saw a signal').toBe('SIGTERM')
    const [pod] = await pods()
    const main = pod.status.containerStatuses.find((c: { name: string }) => c.name === 'main')
    expect(main.state.terminated.exitCode).toBe(143)
  })

  it("leaves the lines a step printed before its activeDeadlineSeconds killed it to Metaflow's logs command, and the workflow fails", async () => {
    const dir = shared()
    const flowFile = join(E2E_FLOWS, 'deadline_flow.py')
    // One task of the hello template, running the deadline flow's start step, which prints then sleeps 600 s.
    const template = loadTemplate('hello_flow.argo.yaml')
    template.spec.templates[0].dag.tasks = template.spec.templates[0].dag.tasks.filter((t: { name: string }) => t.name === 'start')
    const start = template.spec.templates.find((t: { name: string }) => t.name === 'start')
    // Why no retries: one attempt, so the logs read are the killed attempt's; without a retryStrategy Argo leaves {{retries}} unset.
    delete start.retryStrategy
    start.container.args = start.container.args.map((a: string) => (a === '{{retries}}' ? '0' : a))
    // Why 30 s and not 3: the pod's deadline counts from its start, agent and Metaflow start-up included.
    start.activeDeadlineSeconds = 30
    const { name, uid } = await submit(withSharedDatastore(template, dir.path), { 'code-url': dir.flowUrl(flowFile) })
    const wf = await waitWorkflow(name, 240_000)
    expect(wf.status.phase, describeWorkflow(wf)).toMatch(/Failed|Error/)
    const [node] = podNodes(wf)
    expect(node?.phase, describeWorkflow(wf)).toBe('Failed')
    expect(node?.message, describeWorkflow(wf)).toMatch(/deadline/)

    const { stdout } = await run(PYTHON, [flowFile, 'logs', `kfp-${uid}/start/start`], {
      env: { ...localClientEnv(dir.path), METAFLOW_USER: 'test' },
      timeout: 120_000,
    })
    const lines = [...stdout.matchAll(/^line (\d+) before the deadline$/gm)].map((m) => Number(m[1]))
    expect(lines, `${describeWorkflow(wf)}\nflow.py logs printed:\n${stdout}`).toEqual([0, 1, 2, 3, 4])
    expect(stdout).not.toContain('woke up')
  })

  it('fans a 100-split foreach out with withSequence, passing only a few bytes between tasks, and the join sees all 100 splits', async () => {
    const dir = shared()
    const workflow = withSharedDatastore(loadTemplate('foreach_flow.argo.yaml'), dir.path)
    // Why a parallelism: 100 Python pods at once would take the memory of a small test machine.
    workflow.spec.parallelism = 12
    const { name, uid } = await submit(workflow, { 'code-url': dir.flowUrl(join(FIXTURE_FLOWS, 'wide_foreach_flow.py')) })
    const wf = await waitWorkflow(name, 900_000)
    expect(wf.status.phase, describeWorkflow(wf)).toBe('Succeeded')
    const outputs = podNodes(wf).flatMap((n) => n.outputs?.parameters ?? [])
    expect(outputs.find((p) => p.name === 'split_count')?.value).toBe('100')
    expect(Math.max(...outputs.map((p) => (p.value ?? '').length))).toBeLessThanOrEqual(12)

    const pathspec = `WideForeachFlow/kfp-${uid}`
    const report = await metaflowRun(pathspec, localClientEnv(dir.path))
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toHaveLength(100)
    expect(report.end).toMatchObject({ count: 100, total: 328350 })
  })
})
