// Metaflow switches run task by task through the built agent, each run judged by Metaflow's client against `python flow.py run` of the same flow.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv, runAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { localClientEnv, metaflowRun as report } from '../helpers/metaflow-client'
import type { RunReport as Report } from '../helpers/metaflow-client'
import { restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const exec = promisify(execFile)
const tempDir = useTempDir('mfkfp-switch-')

/** Runs the agent on one flow the way a pipeline would: fixed code URL, run id and datastore; every output read back. */
class Driver {
  readonly runs: AgentRun[] = []
  private n = 0

  constructor(
    readonly flowFile: string,
    readonly dir: string,
    readonly runId = 'kfp-switch-1',
    readonly datastore: string[] = ['--datastore-root', join(dir, '.metaflow')],
    readonly env: NodeJS.ProcessEnv = agentEnv(),
  ) {}

  async raw(args: string[]): Promise<AgentRun> {
    const r = await runAgent([...args, '--code-url', flowUrl(this.flowFile, FIXTURE_FLOWS), '--python', PYTHON, ...this.datastore, '--run-id', this.runId], { env: this.env, cwd: this.dir })
    this.runs.push(r)
    return r
  }

  /** Runs one step with --output-dir; fails the test unless it exits 0; returns every file the output folder holds. */
  async step(name: string, ...placement: string[]): Promise<Record<string, string>> {
    const out = join(this.dir, 'outputs', String(this.n++))
    const r = await this.raw(['step', name, ...placement, '--output-dir', out])
    expect(r.code, `step ${name} ${placement.join(' ')} failed:\n${r.stdout}\n${r.stderr}`).toBe(0)
    return Object.fromEntries(readdirSync(out).map((f) => [f, readFileSync(join(out, f), 'utf8')]))
  }
}

async function referenceRun(flowFile: string, runArgs: string[] = []): Promise<Report> {
  const sysroot = tempDir()
  const env = localClientEnv(sysroot)
  const idFile = join(sysroot, 'run-id')
  await exec(PYTHON, [join(FIXTURE_FLOWS, flowFile), '--quiet', 'run', '--run-id-file', idFile, ...runArgs], { env: { ...env, METAFLOW_USER: 'test' }, cwd: sysroot })
  const flow = /class (\w+)\(FlowSpec\)/.exec(readFileSync(join(FIXTURE_FLOWS, flowFile), 'utf8'))?.[1] as string
  return report(`${flow}/${readFileSync(idFile, 'utf8').trim()}`, env)
}

/** The agent's run is judged against the reference: both succeed, the same steps ran as many tasks, and the end step holds the same artifacts. */
function expectSameRun(agent: Report, reference: Report): void {
  expect(reference.successful).toBe(true)
  expect(agent.successful).toBe(true)
  const counts = (r: Report) => Object.fromEntries(Object.entries(r.tasks).map(([s, t]) => [s, t.length]))
  expect(counts(agent)).toEqual(counts(reference))
  expect(agent.end).toEqual(reference.end)
}

function judgeLocal(d: Driver, flow: string): Promise<Report> {
  return report(`${flow}/${d.runId}`, localClientEnv(d.dir))
}

describe('switches run task by task, judged against python flow.py run', () => {
  for (const mode of ['small', 'big']) {
    it(`runs a switch taking ${mode}: the switch step names its case in switch_step and the step after finds whichever case ran`, async () => {
      const reference = referenceRun('switch_flow.py', ['--mode', mode])
      const d = new Driver('switch_flow.py', tempDir())
      const other = mode === 'small' ? 'big' : 'small'
      expect(await d.step('start', '--param', `mode=${mode}`)).toEqual({ task_id: 'start', split_count: '0', splits: '[]', switch_step: mode })
      // A step that is not a switch keeps the output folder it always had.
      expect(await d.step(mode, '--parent', 'start')).toEqual({ task_id: mode, split_count: '0', splits: '[]' })
      const explicit = join(d.dir, 'kfp', 'switch_step')
      const after = await d.raw(['step', 'after', '--parent-any', `${other},${mode}`, '--output', `switch_step=${explicit}`, '--output', `task_id=${join(d.dir, 'kfp', 'task_id')}`])
      expect(after.code, after.stderr).toBe(0)
      expect(readFileSync(explicit, 'utf8')).toBe('')
      expect(readFileSync(join(d.dir, 'kfp', 'task_id'), 'utf8')).toBe('after')
      await d.step('end', '--parent', 'after')
      const agent = await judgeLocal(d, 'SwitchFlow')
      expectSameRun(agent, await reference)
      expect(agent.tasks).toEqual({ start: ['start'], [mode]: [mode], after: ['after'], end: ['end'] })
      expect(agent.end.result).toBe(mode === 'small' ? 'start/small/after:1' : 'start/big/after:1000')
    }, 180_000)
  }

  it('runs a switch after a switch whose cases go straight to a custom-named end step, from a custom-named start', async () => {
    const reference = referenceRun('switch_twice_flow.py', ['--first', 'b', '--second', 'c'])
    const d = new Driver('switch_twice_flow.py', tempDir())
    expect((await d.step('begin', '--param', 'first=b', '--param', 'second=c')).switch_step).toBe('b')
    await d.step('b', '--parent', 'begin')
    expect((await d.step('middle', '--parent-any', 'a,b')).switch_step).toBe('c')
    expect(await d.step('c', '--parent', 'middle')).not.toHaveProperty('switch_step')
    await d.step('finish', '--parent-any', 'c,d')
    const agent = await judgeLocal(d, 'SwitchTwiceFlow')
    expectSameRun(agent, await reference)
    expect(agent.end.result).toBe('begin/b/middle/c/finish')
    expect(agent.tasks).toEqual({ begin: ['begin'], b: ['b'], middle: ['middle'], c: ['c'], finish: ['finish'] })
  }, 180_000)

  it('runs a static split and join inside one case, converging with the other case on one step', async () => {
    const reference = referenceRun('switch_branch_in_case_flow.py')
    const d = new Driver('switch_branch_in_case_flow.py', tempDir())
    expect((await d.step('start')).switch_step).toBe('fan')
    await d.step('fan', '--parent', 'start')
    await d.step('left', '--parent', 'fan')
    await d.step('right', '--parent', 'fan')
    await d.step('fan_join', '--parent', 'left', '--parent', 'right')
    await d.step('after', '--parent-any', 'fan_join,plain')
    await d.step('end', '--parent', 'after')
    const agent = await judgeLocal(d, 'SwitchBranchInCaseFlow')
    expectSameRun(agent, await reference)
    expect(agent.end.result).toBe('fan:23')
  }, 180_000)

  it('runs a switch inside a foreach whose splits take different cases straight into the join (--join-foreach even,odd)', async () => {
    const reference = referenceRun('switch_in_foreach_flow.py')
    const d = new Driver('switch_in_foreach_flow.py', tempDir())
    const start = await d.step('start')
    expect(start.splits).toBe('[0,1,2,3,4]')
    const taken: string[] = []
    for (let i = 0; i < Number(start.split_count); i++) {
      const route = await d.step('route', '--parent', 'start', '--split-index', String(i))
      expect(route.task_id).toBe(`route-${i}`)
      taken.push(route.switch_step as string)
      // The case step sits at its switch's position: same split path, no split index of its own.
      expect((await d.step(route.switch_step as string, '--parent', 'route', '--split-path', String(i))).task_id).toBe(`${route.switch_step}-${i}`)
    }
    expect(taken).toEqual(['odd', 'even', 'odd', 'even', 'odd'])
    await d.step('join', '--join-foreach', 'even,odd', '--num-splits', start.split_count as string)
    await d.step('end', '--parent', 'join')
    const agent = await judgeLocal(d, 'SwitchInForeachFlow')
    expectSameRun(agent, await reference)
    expect(agent.end.result).toBe('3*3+1=10,4/2=2,7*3+1=22,10/2=5,11*3+1=34')
    expect(agent.tasks.even).toEqual(['even-1', 'even-3'])
    expect(agent.tasks.odd).toEqual(['odd-0', 'odd-2', 'odd-4'])
  }, 240_000)

  it('runs a static split whose one branch holds a switch, joined with --parent and --parent-any', async () => {
    const reference = referenceRun('switch_in_split_flow.py')
    const d = new Driver('switch_in_split_flow.py', tempDir())
    expect(await d.step('start')).not.toHaveProperty('switch_step')
    expect((await d.step('left', '--parent', 'start')).switch_step).toBe('l2')
    await d.step('right', '--parent', 'start')
    await d.step('l2', '--parent', 'left')
    await d.step('join', '--parent', 'right', '--parent-any', 'l1,l2')
    await d.step('end', '--parent', 'join')
    const agent = await judgeLocal(d, 'SwitchInSplitFlow')
    expectSameRun(agent, await reference)
    expect(agent.end.result).toBe('l2+right')
  }, 180_000)

  for (const mode of ['work', 'skip']) {
    it(`runs a switch whose case ${mode === 'skip' ? 'skips straight to the end, a parent of end as the switch itself' : 'runs a step before the end the switch could skip to'}: --parent-any takes the candidate that went on to end`, async () => {
      const reference = referenceRun('switch_skip_flow.py', ['--mode', mode])
      const d = new Driver('switch_skip_flow.py', tempDir())
      expect((await d.step('start', '--param', `mode=${mode}`)).switch_step).toBe(mode === 'skip' ? 'end' : 'work')
      if (mode === 'work') await d.step('work', '--parent', 'start')
      // start finished either way; only its _transition says whether it went on to end.
      await d.step('end', '--parent-any', 'work,start')
      const agent = await judgeLocal(d, 'SwitchSkipFlow')
      expectSameRun(agent, await reference)
      expect(agent.end.result).toBe(mode === 'skip' ? 'skip:skipped' : 'work:worked')
    }, 180_000)
  }

  it('reports the case again when a switch step that already succeeded is retried, without running it twice', async () => {
    const d = new Driver('switch_flow.py', tempDir())
    expect((await d.step('start', '--param', 'mode=big')).switch_step).toBe('big')
    expect(await d.step('start', '--param', 'mode=big', '--retry-count', '1')).toEqual({ task_id: 'start', split_count: '0', splits: '[]', switch_step: 'big' })
    expect(d.runs[1]?.stderr).toMatch(/attempt 0 already succeeded; publishing its outputs without running the step again/)
  }, 120_000)
})

describe('a switch on the S3 datastore', () => {
  const BUCKET = 'switch-datastore'
  const ROOT = `s3://${BUCKET}/team/metaflow`
  let moto: Moto
  beforeAll(async () => {
    moto = await startMoto()
    await makeBucket(moto.endpoint, BUCKET)
  })
  afterAll(async () => {
    await moto?.stop()
  })

  it('reads the case taken and finds the case that ran in S3 (moto), judged against python flow.py run', async () => {
    const reference = referenceRun('switch_flow.py', ['--mode', 'big'])
    const env = agentEnv({ ...MOTO_KEYS, HOME: tempDir(), AWS_DEFAULT_REGION: 'us-east-1', METAFLOW_S3_ENDPOINT_URL: moto.endpoint })
    const d = new Driver('switch_flow.py', tempDir(), 'kfp-s3-switch', ['--datastore', 's3', '--datastore-root', ROOT], env)
    expect((await d.step('start', '--param', 'mode=big')).switch_step).toBe('big')
    await d.step('big', '--parent', 'start')
    const none = await d.raw(['step', 'after', '--parent-any', 'small,nothing', '--task-id', 'after-refused'])
    expect(none.code).toBe(64)
    await d.step('after', '--parent-any', 'small,big')
    await d.step('end', '--parent', 'after')
    const laptop = tempDir()
    const client = s3ClientEnv(moto.endpoint, ROOT, laptop)
    await restoreLocalMetadata(client, 'SwitchFlow', d.runId, [['_parameters', 'params'], ['start', 'start'], ['big', 'big'], ['after', 'after'], ['end', 'end']])
    const agent = await report(`SwitchFlow/${d.runId}`, client)
    expectSameRun(agent, await reference)
    expect(agent.end.result).toBe('start/big/after:1000')
  }, 240_000)
})

/** The agent's error lines: one line per failure, naming what failed. */
function errorLines(r: AgentRun): string[] {
  return r.stderr.split('\n').filter((l) => /error/i.test(l))
}

describe('placements that do not fit the run', () => {
  it('refuses --parent-any naming a step that never ran with one line and exit 64, leaving nothing under the task', async () => {
    const d = new Driver('switch_flow.py', tempDir())
    await d.step('start')
    await d.step('small', '--parent', 'start')
    const r = await d.raw(['step', 'after', '--parent-any', 'big,missing', '--output-dir', join(d.dir, 'out')])
    expect(r.code).toBe(64)
    expect(errorLines(r)).toEqual([expect.stringMatching(/failed to find the parents of kfp-switch-1\/after: of --parent-any big,missing, none finished: kfp-switch-1\/big\/big never ran, kfp-switch-1\/missing\/missing never ran \(.+\)$/)])
    expect(existsSync(join(d.dir, '.metaflow', 'SwitchFlow', d.runId, 'after'))).toBe(false)
    expect(existsSync(join(d.dir, 'out'))).toBe(false)
  }, 120_000)

  it('refuses --parent-any when two of its candidates both finished, since a switch takes one case', async () => {
    const d = new Driver('switch_flow.py', tempDir())
    await d.step('start')
    await d.step('small', '--parent', 'start')
    // Run by hand: a switch never takes both, but a pipeline wired wrongly (or a person) can run both.
    await d.step('big', '--parent', 'start')
    const r = await d.raw(['step', 'after', '--parent-any', 'small,big'])
    expect(r.code).toBe(64)
    expect(errorLines(r)).toEqual([expect.stringMatching(/of --parent-any small,big, exactly one may have finished, but kfp-switch-1\/small\/small and kfp-switch-1\/big\/big did/)])
  }, 120_000)

  it('refuses a --join-foreach even,odd whose split 2 has neither case finished, naming that split', async () => {
    const d = new Driver('switch_in_foreach_flow.py', tempDir())
    const start = await d.step('start')
    for (let i = 0; i < 5; i++) {
      const route = await d.step('route', '--parent', 'start', '--split-index', String(i))
      if (i !== 2) await d.step(route.switch_step as string, '--parent', 'route', '--split-path', String(i))
    }
    const r = await d.raw(['step', 'join', '--join-foreach', 'even,odd', '--num-splits', start.split_count as string])
    expect(r.code).toBe(64)
    expect(errorLines(r)).toEqual([expect.stringMatching(/of --join-foreach even,odd, none finished at split 2: kfp-switch-1\/even\/even-2 never ran, kfp-switch-1\/odd\/odd-2 never ran \(/)])
  }, 240_000)

  const malformed: [string, string[], RegExp][] = [
    ['an empty name in --parent-any', ['--parent-any', 'a,,b'], /failed to accept --parent-any "a,,b": it holds an empty name/],
    ['a trailing comma in --join-foreach', ['--join-foreach', 'a,', '--num-splits', '2'], /failed to accept --join-foreach "a,": it holds an empty name/],
    ['a name given twice in one group', ['--parent-any', 'a,b,a'], /failed to accept --parent-any "a,b,a": it names a twice/],
    ['a name in --parent and --parent-any', ['--parent', 'a', '--parent-any', 'a,b'], /failed to place the step: a is named twice among --parent and --parent-any/],
    ['a name that is no step name', ['--parent-any', 'a,b c'], /failed to accept --parent-any "b c": it is not a Python identifier/],
    ['Metaflow\'s own parameters task as a candidate', ['--parent-any', '_parameters,a'], /failed to accept --parent-any "_parameters": Metaflow reserves it/],
    ['--parent-any with a foreach join', ['--join-foreach', 'a,b', '--num-splits', '2', '--parent-any', 'c,d'], /--join-foreach and --parent-any exclude each other/],
  ]
  for (const [what, args, message] of malformed) {
    it(`refuses ${what} with one line and exit 64, before fetching anything`, async () => {
      const d = new Driver('switch_flow.py', tempDir())
      const r = await d.raw(['step', 'after', ...args])
      expect(r.code).toBe(64)
      expect(errorLines(r)).toEqual([expect.stringMatching(message)])
      expect(r.stderr).not.toMatch(/fetched/)
    }, 60_000)
  }
})
