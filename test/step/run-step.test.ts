// End to end: real Metaflow steps run through dist/metaflow-kfp, judged by Metaflow's own client.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { Orchestrator } from '../helpers/orchestrate'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { FIXTURE_FLOWS, PYTHON, REPO, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

function orchestrator(flowFile: string, dir = tempDir(), url = flowUrl(flowFile)) {
  return new Orchestrator(url, 'kfp-test-1', dir)
}

async function judge(o: Orchestrator, flow: string) {
  const report = await metaflowRun(`${flow}/${o.runId}`, localClientEnv(o.sysroot))
  expect(report.successful).toBe(true)
  return report
}

describe('with task ids derived by the agent', () => {
  it('runs a linear flow', async () => {
    const o = orchestrator('hello_flow.py')
    expect(await o.step('start')).toEqual({ task_id: 'start', split_count: '0', splits: '[]' })
    await o.step('hello', '--parent', 'start')
    await o.step('end', '--parent', 'hello')
    const report = await judge(o, 'HelloFlow')
    expect(report.end.message).toBe('Metaflow says hi from KFP')
    expect(report.tasks).toEqual({ start: ['start'], hello: ['hello'], end: ['end'] })
  })

  it('runs a static branch and join', async () => {
    const o = orchestrator('branch_flow.py')
    await o.step('start')
    await o.step('left', '--parent', 'start')
    await o.step('right', '--parent', 'start')
    await o.step('join', '--parent', 'left', '--parent', 'right')
    await o.step('end', '--parent', 'join')
    expect((await judge(o, 'BranchFlow')).end.values).toEqual([11, 20])
  })

  it("runs the seed's foreach flow: start, four splits, join, end", async () => {
    const o = orchestrator('foreach_flow.py')
    const start = await o.step('start')
    expect(start).toEqual({ task_id: 'start', split_count: '4', splits: '[0,1,2,3]' })
    for (const i of JSON.parse(start.splits) as number[]) {
      expect(await o.step('explore', '--parent', 'start', '--split-index', String(i))).toEqual({ task_id: `explore-${i}`, split_count: '0', splits: '[]' })
    }
    await o.step('join', '--join-foreach', 'explore', '--num-splits', start.split_count)
    await o.step('end', '--parent', 'join')
    const report = await judge(o, 'ForeachFlow')
    expect(report.end.results).toEqual(['HOUSE OF CARDS', 'NARCOS', 'STRANGER THINGS', 'SUBURRA'])
    expect(report.end.total_letters).toBe(42)
    expect(report.tasks.explore).toEqual(['explore-0', 'explore-1', 'explore-2', 'explore-3'])
  })

  it('runs a foreach inside a foreach', async () => {
    const o = orchestrator('nested_foreach_flow.py')
    const start = await o.step('start')
    for (let i = 0; i < Number(start.split_count); i++) {
      const outer = await o.step('outer', '--parent', 'start', '--split-index', String(i))
      expect(outer.task_id).toBe(`outer-${i}`)
      for (let j = 0; j < Number(outer.split_count); j++) {
        await o.step('inner', '--parent', 'outer', '--split-path', String(i), '--split-index', String(j))
      }
      await o.step('inner_join', '--split-path', String(i), '--join-foreach', 'inner', '--num-splits', outer.split_count)
    }
    await o.step('outer_join', '--join-foreach', 'inner_join', '--num-splits', start.split_count)
    await o.step('end', '--parent', 'outer_join')
    const report = await judge(o, 'NestedForeachFlow')
    expect(report.end.sums).toEqual([5, 50])
    expect(report.tasks.inner).toEqual(['inner-0-0', 'inner-0-1', 'inner-1-0', 'inner-1-1', 'inner-1-2'])
  })

  it('passes flow parameters to init as --param and --params-json', async () => {
    const o = orchestrator('params_flow.py')
    await o.step('start', '--param', 'alpha=0.75', '--param', 'who=k f p', '--params-json', '{"count": 3, "config": {"depth": 4}}')
    await o.step('end', '--parent', 'start')
    const report = await judge(o, 'ParamsFlow')
    expect(report.end).toMatchObject({ alpha: 0.75, count: 3, config: { depth: 4 }, scaled: 3, greeting: 'hello k f p hello k f p hello k f p ' })
  })

  it('does not run init again when a start step is retried', async () => {
    // flaky_flow's start fails on attempt 0; a retry of a start that succeeded would run nothing at all.
    const o = orchestrator('flaky_flow.py', tempDir(), flowUrl('flaky_flow.py', FIXTURE_FLOWS))
    expect((await o.raw(['step', 'start'])).code).toBe(1)
    await o.step('start', '--retry-count', '1')
    expect(o.runs[1]?.stderr).toMatch(/parameters task kfp-test-1\/_parameters\/params exists; not running init again/)
    await o.step('end', '--parent', 'start')
    await judge(o, 'FlakyFlow')
  })

  it('hands a join with thousands of parents its input paths through a file', async () => {
    const o = orchestrator('foreach_flow.py')
    await o.step('start')
    for (let i = 0; i < 4; i++) await o.step('explore', '--parent', 'start', '--split-index', String(i))
    // Claiming 3000 splits makes the input paths about 60 kB; Metaflow must read them from the file and
    // then refuse the join because only 4 of the parents exist, which proves it read all 3000.
    const r = await o.raw(['step', 'join', '--join-foreach', 'explore', '--num-splits', '3000'])
    expect(r.code).not.toBe(0)
    expect(r.stderr + r.stdout).not.toMatch(/Argument list too long|E2BIG/)
    expect(r.stderr).toMatch(/input paths of \d+ bytes go to Metaflow through --input-paths-filename/)
    expect(r.stderr + r.stdout).toMatch(/Expected: 3000 Actual: 4/)
  })
})

describe('with task ids and input paths given explicitly, as in the seed', () => {
  it("runs the seed's foreach flow with its own ids and compressed input paths", async () => {
    const o = orchestrator('foreach_flow.py')
    const R = o.runId
    expect((await o.task(['init', '--task-id', 'p0'])).task_id).toBe('p0')
    const start = await o.step('start', '--task-id', 't1', '--input-paths', `${R}/_parameters/p0`)
    expect(start).toEqual({ task_id: 't1', split_count: '4', splits: '[0,1,2,3]' })
    for (let i = 0; i < 4; i++) {
      await o.step('explore', '--task-id', `t${i + 2}`, '--input-paths', `${R}/start/t1`, '--split-index', String(i))
    }
    await o.step('join', '--task-id', 't6', '--input-paths', `${R}/explore/:t2,t3,t4,t5`)
    await o.step('end', '--task-id', 't9', '--input-paths', `${R}/join/t6`)
    const report = await judge(o, 'ForeachFlow')
    expect(report.tasks.explore).toEqual(['t2', 't3', 't4', 't5'])
  })
})

describe('regression: a relative --python path failed because the step runs in the code folder', () => {
  it('resolves --python from the agent working directory', async () => {
    const dir = tempDir()
    const r = await runAgent([
      'step', 'start', '--code-url', flowUrl('hello_flow.py'), '--python', relative(REPO, PYTHON),
      '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-rel', '--output-dir', join(dir, 'out'),
    ], { cwd: REPO, env: agentEnv() })
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(join(dir, 'out', 'task_id'), 'utf8')).toBe('start')
  })
})

describe('after a step fails', () => {
  it('exits with the step exit code and writes no outputs at all', async () => {
    const dir = tempDir()
    const o = orchestrator('failing_flow.py', dir, flowUrl('failing_flow.py', FIXTURE_FLOWS))
    const out = join(dir, 'out')
    const r = await o.raw(['step', 'start', '--output-dir', out, '--output', `task_id=${join(dir, 'kfp', 'task_id')}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/this step fails on purpose/)
    expect(existsSync(out)).toBe(false)
    expect(existsSync(join(dir, 'kfp'))).toBe(false)
  })

  it('keeps the failed task logs where `flow.py logs` finds them', async () => {
    const dir = tempDir()
    const o = orchestrator('failing_flow.py', dir, flowUrl('failing_flow.py', FIXTURE_FLOWS))
    await o.raw(['step', 'start'])
    const logs = execFileSync(PYTHON, [join(FIXTURE_FLOWS, 'failing_flow.py'), 'logs', '--stderr', `${o.runId}/start/start`], {
      env: { ...localClientEnv(dir), METAFLOW_USER: 'test' },
      encoding: 'utf8',
    })
    expect(logs).toMatch(/this step fails on purpose/)
  })
})
