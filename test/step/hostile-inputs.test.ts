// Hostile and mistaken inputs through the built agent: unsafe names, misspelt parameters, wild numbers, re-run attempts.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { agentEnv, runAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const exec = promisify(execFile)

/** The flags every task here shares: a flow from disk, the project's Python, a datastore in a fresh folder. */
function common(dir: string, flow = flowUrl('hello_flow.py'), runId = 'kfp-r') {
  return ['--code-url', flow, '--python', PYTHON, '--datastore-root', join(dir, '.metaflow'), '--run-id', runId]
}

/** Exit 64 with exactly one line: "metaflow-kfp: error: failed to … (…)". */
function expectUsageLine(r: AgentRun, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(64)
  const errors = r.stderr.trim().split('\n').filter((l) => l.includes('error:'))
  expect(errors).toHaveLength(1)
  expect(errors[0]).toMatch(/^metaflow-kfp: error: failed to .+\(.+\)$/)
  expect(errors[0]).toMatch(pattern)
}

/** Every file under dir, relative, so a test can say nothing was written. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1))
}

/** Asks Metaflow's client which attempt of a task it trusts. */
async function currentAttempt(sysroot: string, pathspec: string): Promise<number> {
  const script = 'import sys\nfrom metaflow import Task, namespace\nnamespace(None)\nprint(Task(sys.argv[1]).current_attempt)'
  const { stdout } = await exec(PYTHON, ['-c', script, pathspec], { env: { ...localClientEnv(sysroot), METAFLOW_USER: 'test' }, timeout: 60_000 })
  return Number(stdout.trim())
}

describe('names that become datastore paths', () => {
  it('refuses --run-id .., which wrote the run straight under .metaflow/', async () => {
    const dir = tempDir()
    const r = await runAgent(['step', 'start', ...common(dir, undefined, '..')])
    expectUsageLine(r, /--run-id "\.\.": it names a folder of the datastore/)
    expect(filesUnder(dir)).toEqual([])
  })

  it('refuses a step named ../../../../escaped, which wrote task logs outside the datastore', async () => {
    const dir = tempDir()
    const r = await runAgent(['step', '../../../../escaped', ...common(dir), '--parent', 'start'])
    expectUsageLine(r, /step "\.\.\/\.\.\/\.\.\/\.\.\/escaped": it is not a Python identifier/)
    expect(filesUnder(dir)).toEqual([])
  })

  it('refuses a run id holding {{, which KFP 2.4 and older pass unresolved so every run would share it', async () => {
    const r = await runAgent(['step', 'start', ...common(tempDir(), undefined, 'kfp-{{$.pipeline_job_uuid}}')])
    expectUsageLine(r, /unresolved placeholder "\{\{", which KFP 2\.4 and older pass through/)
  })

  for (const [what, args, pattern] of [
    ['--task-id ..', ['step', 'start', '--task-id', '..'], /--task-id "\.\."/],
    ['a task id with a slash', ['step', 'start', '--task-id', 'a/b'], /--task-id "a\/b": it contains one of/],
    ['a hidden task id', ['step', 'start', '--task-id', '.start'], /starts with a dot/],
    ['a parameters task id of ..', ['init', '--task-id', '..'], /--task-id "\.\."/],
    ['a --parent that walks up', ['step', 'end', '--parent', '../start'], /--parent "\.\.\/start"/],
    ['a --join-foreach with a slash', ['step', 'join', '--join-foreach', 'a/b', '--num-splits', '2'], /--join-foreach "a\/b"/],
    ['a --flow-name that walks up', ['step', 'start', '--flow-name', '../HelloFlow'], /--flow-name "\.\.\/HelloFlow"/],
    ["the step name Metaflow keeps for parameters", ['step', '_parameters'], /Metaflow reserves it/],
    ['--input-paths that walk up', ['step', 'end', '--input-paths', 'kfp-r/../start'], /--input-paths: "kfp-r\/\.\.\/start" is unsafe/],
  ] as const) {
    it(`refuses ${what} before writing anything`, async () => {
      const dir = tempDir()
      const r = await runAgent([...args, ...common(dir)])
      expectUsageLine(r, pattern)
      expect(filesUnder(dir)).toEqual([])
    })
  }

  it('refuses a run id longer than a folder name can be', async () => {
    const r = await runAgent(['step', 'start', ...common(tempDir(), undefined, `kfp-${'x'.repeat(300)}`)])
    expectUsageLine(r, /longer than 255 bytes/)
  })
})

describe('flow parameters', () => {
  it('refuses --param pp=1 for a flow without pp, which ran the flow with its defaults', async () => {
    const dir = tempDir()
    const r = await runAgent(['step', 'start', ...common(dir, flowUrl('params_flow.py')), '--param', 'pp=1'])
    expectUsageLine(r, /failed to accept parameter pp: ParamsFlow has no parameter of that name; its parameters are alpha, config, count, who/)
    expect(existsSync(join(dir, '.metaflow', 'ParamsFlow', 'kfp-r'))).toBe(false)
  })

  it('refuses --params-json naming a parameter the flow lacks, from the init command too', async () => {
    const r = await runAgent(['init', ...common(tempDir(), flowUrl('hello_flow.py')), '--params-json', '{"alpha": 1}'])
    expectUsageLine(r, /failed to accept parameter alpha: HelloFlow has no parameter of that name; it has no parameters/)
  })

  it('refuses a required parameter left out when others are given', async () => {
    const r = await runAgent(['step', 'start', ...common(tempDir(), flowUrl('required_param_flow.py', FIXTURE_FLOWS)), '--param', 'epochs=2'])
    expectUsageLine(r, /RequiredParamFlow requires Learning-Rate/)
  })

  it('matches parameter names case-insensitively, with - and _ alike, as Metaflow does', async () => {
    const dir = tempDir()
    const c = common(dir, flowUrl('required_param_flow.py', FIXTURE_FLOWS))
    const start = await runAgent(['step', 'start', ...c, '--param', 'LEARNING_rate=0.25', '--param', 'EPOCHS=3'])
    expect(start.code, start.stderr).toBe(0)
    const end = await runAgent(['step', 'end', ...c, '--parent', 'start'])
    expect(end.code, end.stderr).toBe(0)
    const report = await metaflowRun('RequiredParamFlow/kfp-r', localClientEnv(dir))
    expect(report.successful).toBe(true)
    expect(report.end.result).toBe(0.75)
  })

  it("leaves a flow Metaflow cannot load to init, which reports the flow's own error", async () => {
    const dir = tempDir()
    const flow = join(dir, 'broken_flow.py')
    writeFileSync(flow, 'from metaflow import FlowSpec, step\nimport no_such_module_here\n\nclass BrokenFlow(FlowSpec):\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n\nif __name__ == "__main__":\n    BrokenFlow()\n')
    const r = await runAgent(['step', 'start', ...common(dir, `file://${flow}`), '--param', 'a=1'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/warning: could not list the flow's parameters, so init checks them itself: .*No module named 'no_such_module_here'/)
    expect(r.stderr).toMatch(/init failed with exit code 1/)
  })

  it("refuses a run without a parameter a Config makes required, which the step's old reader (no Configs) passed on to init", async () => {
    const dir = tempDir()
    const flow = join(dir, 'strict_flow.py')
    writeFileSync(flow, [
      'from metaflow import Config, FlowSpec, Parameter, config_expr, step',
      'class StrictFlow(FlowSpec):',
      '    settings = Config("settings", default_value={"strict": True, "beta": 3})',
      '    alpha = Parameter("alpha", type=int, required=config_expr("settings.strict"))',
      '    beta = Parameter("beta", type=int, required=True, default=config_expr("settings.beta"))',
      '    @step',
      '    def start(self):',
      '        self.total = self.alpha + self.beta',
      '        self.next(self.end)',
      '    @step',
      '    def end(self):',
      '        pass',
      'if __name__ == "__main__":',
      '    StrictFlow()',
      '',
    ].join('\n'))
    const refused = await runAgent(['step', 'start', ...common(dir, `file://${flow}`, 'kfp-a'), '--param', 'beta=1'])
    expectUsageLine(refused, /failed to initialise run kfp-a: StrictFlow requires alpha \(/)
    expect(existsSync(join(dir, '.metaflow', 'StrictFlow', 'kfp-a'))).toBe(false)
    // beta is required too, but its Config default satisfies init, as it does python flow.py run.
    const c = common(dir, `file://${flow}`, 'kfp-b')
    const start = await runAgent(['step', 'start', ...c, '--param', 'alpha=1'])
    expect(start.code, start.stderr).toBe(0)
    expect((await runAgent(['step', 'end', ...c, '--parent', 'start'])).code).toBe(0)
    const report = await metaflowRun('StrictFlow/kfp-b', localClientEnv(dir))
    expect(report.successful).toBe(true)
    expect(report.end.total).toBe(4)
  }, 120_000)

  it('refuses one parameter given twice under two spellings, where the later silently won', async () => {
    const r = await runAgent(['step', 'start', ...common(tempDir(), flowUrl('params_flow.py')), '--param', 'alpha=1', '--param', 'ALPHA=2'])
    expectUsageLine(r, /parameter ALPHA: it is the same parameter as alpha/)
  })

  it('refuses a parameter just under the argument limit, which failed with spawn E2BIG as exit 70', async () => {
    // Fits the agent's own argv (who=… under 128 KiB) but not init's METAFLOW_INIT_WHO=… variable.
    const value = 'x'.repeat(131_060)
    const r = await runAgent(['step', 'start', ...common(tempDir(), flowUrl('params_flow.py')), '--param', `who=${value}`])
    expectUsageLine(r, /parameter who: it is 131079 bytes as METAFLOW_INIT_WHO, and Linux passes at most 131072 bytes .*MAX_ARG_STRLEN.*IncludeFile/)
  })
})

describe('numbers', () => {
  for (const [what, args, pattern] of [
    ["--grace-period 3000000, which overflowed Node's timer and SIGKILLed the step 1 ms after SIGTERM", ['--grace-period', '3000000'], /--grace-period 3000000: expected seconds, from 0 up to 86400/],
    ['--code-timeout 3000000, which timed out at once', ['--code-timeout', '3000000'], /--code-timeout 3000000/],
    ['--code-timeout 1e10, which was exit 69', ['--code-timeout', '1e10'], /--code-timeout 10000000000/],
    ['--code-timeout Infinity, which was exit 69', ['--code-timeout', 'Infinity'], /--code-timeout Infinity/],
    ['--code-timeout that is not a number', ['--code-timeout', 'soon'], /--code-timeout NaN/],
    ['--code-max-bytes 1.5', ['--code-max-bytes', '1.5'], /--code-max-bytes 1\.5: expected a whole number/],
    ['--num-splits 0, which crashed Metaflow with AttributeError', ['--join-foreach', 'explore', '--num-splits', '0'], /--num-splits 0: expected a whole number from 1/],
    ['a negative --split-index', ['--parent', 'start', '--split-index', '-1'], /--split-index -1/],
    ['a --split-index past the largest foreach', ['--parent', 'start', '--split-index', '1000000'], /--split-index 1000000/],
    ['a --split-path entry past the largest foreach', ['--parent', 'start', '--split-path', '0,99999999'], /--split-path 99999999/],
    ['--max-user-code-retries beyond what Metaflow allows', ['--max-user-code-retries', '9'], /--max-user-code-retries 9: expected a whole number from 0 to 5/],
    ['a flag that takes one value given twice', ['--grace-period', '1', '--grace-period', '2'], /--grace-period: it is given 2 times/],
  ] as const) {
    it(`refuses ${what}`, async () => {
      const dir = tempDir()
      const r = await runAgent(['step', 'explore', ...common(dir), ...args])
      expectUsageLine(r, pattern)
      expect(filesUnder(dir)).toEqual([])
    })
  }

  it('refuses run-local --parallelism 0', async () => {
    const r = await runAgent(['run-local', 'pipeline-templates/hello_flow.kfp.yaml', '--code-url', flowUrl('hello_flow.py'), '--parallelism', '0'])
    expectUsageLine(r, /--parallelism 0: expected a whole number from 1 to 1000/)
  })
})

describe('profile values of the wrong type', () => {
  for (const [key, value, kind] of [
    ['METAFLOW_USER', { name: 'alice' }, 'an object'],
    ['METAFLOW_DEFAULT_DATASTORE', ['s3'], 'a list'],
    ['METAFLOW_AWS_S3_REGION', 5, 'a number'],
  ] as const) {
    it(`refuses ${kind} for ${key}, which was taken as ${String(value)}`, async () => {
      const home = tempDir()
      mkdirSync(join(home, '.metaflowconfig'))
      const path = join(home, '.metaflowconfig', 'config_team.json')
      writeFileSync(path, JSON.stringify({ [key]: value }))
      const env = agentEnv({ METAFLOW_HOME: join(home, '.metaflowconfig'), METAFLOW_PROFILE: 'team' })
      for (const args of [['config'], ['step', 'start', ...common(tempDir())]]) {
        const r = await runAgent(args, { env })
        expectUsageLine(r, new RegExp(`failed to read ${key} from the Metaflow profile ${path}: it is ${kind}, not a string`))
      }
    })
  }
})

describe('a task run again', () => {
  it('does not run a finished attempt again, which wrote a second record contradicting what downstream tasks read', async () => {
    const dir = tempDir()
    const c = common(dir)
    const out = (n: string) => join(dir, 'out', n)
    expect((await runAgent(['step', 'start', ...c])).code).toBe(0)
    const first = await runAgent(['step', 'hello', ...c, '--parent', 'start'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toContain('Metaflow says hi from KFP')
    const before = readFileSync(join(dir, '.metaflow', 'HelloFlow', 'kfp-r', 'hello', 'hello', '0.data.json'), 'utf8')

    // The retried pod of a task that finished but died before writing its outputs.
    const again = await runAgent(['step', 'hello', ...c, '--parent', 'start', '--output-dir', out('hello')])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).not.toContain('Metaflow says hi from KFP')
    expect(again.stderr).toMatch(/attempt 0 already succeeded; publishing its outputs without running the step again/)
    expect(readFileSync(join(out('hello'), 'task_id'), 'utf8')).toBe('hello')
    expect(readFileSync(join(dir, '.metaflow', 'HelloFlow', 'kfp-r', 'hello', 'hello', '0.data.json'), 'utf8')).toBe(before)
    expect(existsSync(join(dir, '.metaflow', 'HelloFlow', 'kfp-r', 'hello', 'hello', '1.attempt.json'))).toBe(false)

    expect((await runAgent(['step', 'end', ...c, '--parent', 'hello'])).code).toBe(0)
    const report = await metaflowRun('HelloFlow/kfp-r', localClientEnv(dir))
    expect(report.successful).toBe(true)
    expect(report.end.message).toBe('Metaflow says hi from KFP')
    expect(await currentAttempt(dir, 'HelloFlow/kfp-r/hello/hello')).toBe(0)
  })

  it('runs a failed attempt asked for again as the next attempt, so a retry whose number does not advance really retries', async () => {
    const dir = tempDir()
    const c = common(dir, flowUrl('flaky_flow.py', FIXTURE_FLOWS))
    const failed = await runAgent(['step', 'start', ...c])
    expect(failed.code).toBe(1)
    // KFP before 2.16.1 sets no KFP_RETRY_INDEX, so its retry asks for attempt 0 again.
    const retried = await runAgent(['step', 'start', ...c])
    expect(retried.code, retried.stderr).toBe(0)
    expect(retried.stdout).toContain('start runs as attempt 1')
    expect(retried.stderr).toMatch(/attempt 0 was asked for, but attempts up to 0 exist; running as attempt 1/)
    expect((await runAgent(['step', 'end', ...c, '--parent', 'start'])).code).toBe(0)
    expect(await currentAttempt(dir, 'FlakyFlow/kfp-r/start/start')).toBe(1)
    const report = await metaflowRun('FlakyFlow/kfp-r', localClientEnv(dir))
    expect(report.successful).toBe(true)
    expect(report.end.attempt_seen).toBe(1)
  })

  it('runs the attempt after the latest one when a later one is asked for, since Metaflow readers stop at a gap', async () => {
    const dir = tempDir()
    const c = common(dir, flowUrl('flaky_flow.py', FIXTURE_FLOWS))
    expect((await runAgent(['step', 'start', ...c])).code).toBe(1)
    const retried = await runAgent(['step', 'start', ...c, '--retry-count', '3'])
    expect(retried.code, retried.stderr).toBe(0)
    expect(retried.stdout).toContain('start runs as attempt 1')
    expect(await currentAttempt(dir, 'FlakyFlow/kfp-r/start/start')).toBe(1)
  })
})
