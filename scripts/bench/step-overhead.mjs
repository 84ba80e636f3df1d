// The agent's overhead per step over a bare `python flow.py step` (alternated pairs), and where its time goes.
import { join } from 'node:path'
import { helloFlow, parseTimings, runAgent, stageMedians } from './lib.mjs'

const STAGES = ['node', 'load', 'args', 'modules', 'aws', 'fetch', 'runtime', 'credentials', 'cards', 'attempts', 'init', 'step', 'metadata', 'outputs', 'logs', 'cleanup']

export default async function stepOverhead(ctx) {
  const flow = helloFlow(ctx)
  const root = join(ctx.work, '.metaflow')
  ctx.timed(ctx.python, [flow, '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'b', '--task-id', 'params'])
  const bareArgs = (id) => [flow, '--quiet', '--no-pylint', '--datastore=local', `--datastore-root=${root}`, 'step', 'start', '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params']
  const agentArgs = (id) => ['step', 'start', '--code-url', `file://${flow}`, '--python', ctx.python, '--datastore-root', root, '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params', '--output-dir', join(ctx.work, 'out', id)]
  // One of each first: Python's and the agent's files into the page cache, Metaflow's .pyc written.
  ctx.timed(ctx.python, bareArgs('warm-bare'))
  runAgent(ctx, agentArgs('warm-agent'))

  const bare = []
  const agent = []
  const stages = []
  for (let i = 0; i < ctx.rounds; i++) {
    // The order within a round alternates too, so neither side always runs right after the other.
    const pair = [() => bare.push(ctx.timed(ctx.python, bareArgs(`bare-${i}`))), () => agent.push(runAgent(ctx, agentArgs(`agent-${i}`)).ms)]
    if (i % 2) pair.reverse()
    for (const f of pair) f()
    // The breakdown comes from separate runs, so timing itself never counts in the overhead.
    stages.push(parseTimings(runAgent(ctx, agentArgs(`timed-${i}`), { ...ctx.env, METAFLOW_KFP_TIMINGS: '1' }).stderr))
  }
  const diffs = agent.map((a, i) => a - bare[i])
  const overhead = ctx.median(diffs)
  const medBare = ctx.median(bare)
  const medAgent = ctx.median(agent)
  const med = Object.fromEntries(stageMedians(ctx, stages, STAGES))
  const stepStart = ctx.median(stages.map((s) => s.step.start))
  const afterStep = ctx.median(stages.map((s) => s.total.ms - (s.step.start + s.step.ms)))
  const parts = STAGES.filter((n) => med[n] !== undefined).map((n) => `${n} ${med[n].toFixed(1)}`)
  return [
    {
      what: `step overhead over a bare \`python flow.py step\` (median of ${ctx.rounds} alternated pairs)`,
      measured: `+${overhead.toFixed(0)} ms (agent ${medAgent.toFixed(0)} ms, bare ${medBare.toFixed(0)} ms, ${(medAgent / medBare).toFixed(2)}x)`,
      goal: '<= +50 ms',
      ok: overhead <= 50,
    },
    {
      what: 'where a step\'s time goes, the agent\'s own stages (median ms; fetch and runtime overlap)',
      measured: `${parts.join(', ')}; the step starts at ${stepStart.toFixed(0)} ms, ${afterStep.toFixed(0)} ms after it ends (bare step ${medBare.toFixed(0)} ms in all)`,
      goal: 'breakdown',
      ok: null,
    },
  ]
}
