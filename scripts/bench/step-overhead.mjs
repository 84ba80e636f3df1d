// The agent's overhead per step over a bare `python flow.py step` (alternated pairs), as the image runs it and as built, and where its time goes.
import { join } from 'node:path'
import { bakeLikeTheImage, helloFlow, parseTimings, runAgent, stageMedians } from './lib.mjs'

const STAGES = ['node', 'load', 'args', 'modules', 'aws', 'fetch', 'runtime', 'credentials', 'cards', 'attempts', 'init', 'handover', 'step', 'metadata', 'record', 'outputs', 'logs', 'cleanup']

export default async function stepOverhead(ctx) {
  const flow = helloFlow(ctx)
  const root = join(ctx.work, '.metaflow')
  ctx.log('baking a venv with the runtime marker and an agent with its code cache, as the image does')
  const image = bakeLikeTheImage(ctx)
  const variants = {
    // As the image runs it: the code cache beside the agent, the marker in the venv, and the
    // image's METAFLOW_KFP_WARM_PYTHON, so the loader prestarts Python.
    image: { agent: image.agent, python: image.python, env: { ...ctx.env, METAFLOW_KFP_WARM_PYTHON: image.python } },
    // The same without the prestart, to show what it saves.
    cold: { agent: image.agent, python: image.python },
    // As built, e.g. on a laptop: no code cache, and a venv without a marker (one Python start to check it).
    built: { agent: ctx.agent, python: ctx.python },
  }
  ctx.timed(ctx.python, [flow, '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'b', '--task-id', 'params'])
  const bareArgs = (id) => [flow, '--quiet', '--no-pylint', '--datastore=local', `--datastore-root=${root}`, 'step', 'start', '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params']
  const agentArgs = (v, id) => ['step', 'start', '--code-url', `file://${flow}`, '--python', v.python, '--datastore-root', root, '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params', '--output-dir', join(ctx.work, 'out', id)]
  const res = {}
  for (const [name, v] of Object.entries(variants)) {
    res[name] = { bare: [], agent: [], stages: [] }
    // One of each first: files into the page cache, Metaflow's .pyc written.
    ctx.timed(v.python, bareArgs(`warm-bare-${name}`))
    runAgent({ ...ctx, agent: v.agent }, agentArgs(v, `warm-${name}`), v.env ?? ctx.env)
  }
  for (let i = 0; i < ctx.rounds; i++) {
    for (const [name, v] of Object.entries(variants)) {
      const r = res[name]
      const a = { ...ctx, agent: v.agent }
      // The order within a pair alternates, so neither side always runs right after the other.
      const pair = [() => r.bare.push(ctx.timed(v.python, bareArgs(`bare-${name}-${i}`))), () => r.agent.push(runAgent(a, agentArgs(v, `${name}-${i}`), v.env ?? ctx.env).ms)]
      if (i % 2) pair.reverse()
      for (const f of pair) f()
      // The breakdown comes from separate runs, so timing itself never counts in the overhead.
      r.stages.push(parseTimings(runAgent(a, agentArgs(v, `timed-${name}-${i}`), { ...(v.env ?? ctx.env), METAFLOW_KFP_TIMINGS: '1' }).stderr))
    }
  }
  const summary = (r) => {
    const overhead = ctx.median(r.agent.map((a, i) => a - r.bare[i]))
    const b = ctx.median(r.bare)
    const a = ctx.median(r.agent)
    return { overhead, text: `+${overhead.toFixed(0)} ms (agent ${a.toFixed(0)} ms, bare ${b.toFixed(0)} ms, ${(a / b).toFixed(2)}x)` }
  }
  const breakdown = (r) => {
    const med = Object.fromEntries(stageMedians(ctx, r.stages, STAGES))
    const stepStart = ctx.median(r.stages.map((s) => s.step.start))
    const afterStep = ctx.median(r.stages.map((s) => s.total.ms - (s.step.start + s.step.ms)))
    const parts = STAGES.filter((n) => med[n] !== undefined).map((n) => `${n} ${med[n].toFixed(1)}`)
    // When the loader prestarted Python: how long after the agent's own start (Node's start, the spawn).
    const prestart = r.stages.every((s) => s.prestart) ? `; Python prestarted at ${ctx.median(r.stages.map((s) => s.prestart.ms)).toFixed(0)} ms` : ''
    return `${parts.join(', ')}${prestart}; the step starts at ${stepStart.toFixed(0)} ms and the agent exits ${afterStep.toFixed(0)} ms after it`
  }
  const img = summary(res.image)
  const cold = summary(res.cold)
  const built = summary(res.built)
  return [
    { what: `step overhead over a bare \`python flow.py step\`, as the image runs it (code cache, runtime marker, prestarted Python; median of ${ctx.rounds} alternated pairs)`, measured: img.text, goal: '<= +50 ms', ok: img.overhead <= 50 },
    { what: 'where that step\'s time goes, the agent\'s own stages (median ms; fetch and runtime overlap; handover is the wait for the prestarted Python to finish its early imports)', measured: breakdown(res.image), goal: 'breakdown', ok: null },
    { what: 'the same without the prestarted Python (METAFLOW_KFP_WARM_PYTHON unset)', measured: `${cold.text}; ${breakdown(res.cold)}`, goal: 'for comparison', ok: null },
    { what: 'the same, as built on a laptop (no code cache; a venv without a marker, so one Python start checks it)', measured: `${built.text}; ${breakdown(res.built)}`, goal: 'for comparison', ok: null },
  ]
}
