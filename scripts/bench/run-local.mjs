// Bench section: run-local against Metaflow's own runtime (`python flow.py run`) on the same flows, wall and CPU, in alternated pairs.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Writes the Node process's own CPU (not its children's) when it exits, one file per process:
// the agent's CPU, apart from the Python steps it starts. Loaded through NODE_OPTIONS, so it
// also counts agents that run-local starts as processes of their own.
const CPU_PRELOAD = `process.on('exit', () => {
  const u = process.cpuUsage()
  require('fs').writeFileSync(require('path').join(process.env.MFKFP_BENCH_CPU_DIR, process.pid + '.json'), JSON.stringify(u))
})
`

/**
 * Runs `cmd args` under /usr/bin/time; returns wall seconds and user+sys CPU seconds of the
 * process and every child it waited for.
 */
function timedRun(cmd, args, { env, cwd, log }) {
  const timeFile = join(cwd, `time-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`)
  const r = spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%e %U %S', cmd, ...args], { env, cwd, encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.status !== 0) {
    log(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`)
    throw new Error(`${cmd} ${args.slice(0, 3).join(' ')} … exited ${r.status ?? r.signal}: ${String(r.stderr).slice(-800)}`)
  }
  const [wall, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number)
  return { wall, cpu: user + sys, stdout: r.stdout, stderr: r.stderr }
}

function agentCpu(dir) {
  let s = 0
  for (const f of readdirSync(dir)) {
    const u = JSON.parse(readFileSync(join(dir, f), 'utf8'))
    s += (u.user + u.system) / 1e6
  }
  return s
}

/**
 * One flow, `pairs` times: python flow.py run, then run-local of the KFP template, each in a
 * fresh folder. Returns the per-pair figures.
 */
function compare(ctx, { name, flowFile, template, pairs }) {
  const { python, agent, env } = ctx
  const preload = join(ctx.work, 'cpu-preload.cjs')
  writeFileSync(preload, CPU_PRELOAD)
  const out = []
  for (let i = 0; i < pairs; i++) {
    const dir = join(ctx.work, `${name}-${i}`)
    const mf = join(dir, 'metaflow-run')
    const rl = join(dir, 'run-local')
    const cpuDir = join(dir, 'agent-cpu')
    for (const d of [mf, rl, cpuDir]) mkdirSync(d, { recursive: true })
    const flow = join(dir, 'flow.py')
    copyFileSync(flowFile, flow)
    // --no-pylint: the agent's tasks do not lint either; Metaflow's default max-workers (16).
    const plain = timedRun(python, [flow, '--quiet', '--no-pylint', '--datastore-root', join(mf, '.metaflow'), 'run'], { env, cwd: mf, log: ctx.log })
    const nodeOptions = [env.NODE_OPTIONS, `--require=${preload}`].filter(Boolean).join(' ')
    const local = timedRun(agent, ['run-local', template, '--code-url', `file://${flow}`, '--python', python, '--datastore-root', join(rl, '.metaflow')], {
      env: { ...env, NODE_OPTIONS: nodeOptions, MFKFP_BENCH_CPU_DIR: cpuDir },
      cwd: rl,
      log: ctx.log,
    })
    const tasks = (local.stdout.match(/ ok +\d+\.\d+ s$/gm) ?? []).length
    if (!/^Metaflow run: \S+\/kfp-/m.test(local.stdout) || tasks === 0) throw new Error(`run-local of ${name} reported no run: ${local.stdout.slice(-500)}`)
    const pair = { plain, local, tasks, agentCpu: agentCpu(cpuDir) }
    ctx.log(`${name} pair ${i + 1}/${pairs}: python flow.py run ${plain.wall.toFixed(2)} s (${plain.cpu.toFixed(2)} s CPU), run-local ${local.wall.toFixed(2)} s (${local.cpu.toFixed(2)} s CPU, agent ${pair.agentCpu.toFixed(2)} s), ${tasks} tasks`)
    out.push(pair)
  }
  return out
}

function rows(ctx, label, pairs) {
  const m = ctx.median
  const wallRatio = m(pairs.map((p) => p.local.wall / p.plain.wall))
  const cpuRatio = m(pairs.map((p) => p.local.cpu / p.plain.cpu))
  const tasks = pairs[0].tasks
  const wallLocal = m(pairs.map((p) => p.local.wall))
  const wallPlain = m(pairs.map((p) => p.plain.wall))
  const perTask = m(pairs.map((p) => (p.agentCpu / p.tasks) * 1000))
  const n = `median of ${pairs.length} alternated pair${pairs.length > 1 ? 's' : ''}`
  return [
    {
      what: `run-local vs python flow.py run, ${label} (${tasks} tasks): wall`,
      measured: `${wallRatio.toFixed(2)}x (${wallLocal.toFixed(2)} s vs ${wallPlain.toFixed(2)} s, ${n})`,
      goal: '<= 1.2x',
      ok: wallRatio <= 1.2,
    },
    {
      what: `run-local, ${label}: tasks per second, CPU, and the agent's own CPU per task`,
      measured: `${(tasks / wallLocal).toFixed(1)} tasks/s (python flow.py run ${(tasks / wallPlain).toFixed(1)}); CPU user+sys with the steps ${m(pairs.map((p) => p.local.cpu)).toFixed(2)} s vs ${m(pairs.map((p) => p.plain.cpu)).toFixed(2)} s = ${cpuRatio.toFixed(2)}x; the agent (Node) ${perTask.toFixed(0)} ms per task, run-local's own start included`,
      goal: 'reported',
      ok: null,
    },
  ]
}

export default async function runLocalSection(ctx) {
  const template = join(ctx.repo, 'pipeline-templates', 'foreach_flow.kfp.yaml')
  const seedPairs = Number(process.env.BENCH_RUN_LOCAL_PAIRS ?? Math.min(ctx.rounds, 5))
  const widePairs = Number(process.env.BENCH_RUN_LOCAL_WIDE_PAIRS ?? Math.min(ctx.rounds, 2))
  const seed = compare(ctx, { name: 'seed', flowFile: join(ctx.repo, 'pipeline-templates', 'flows', 'foreach_flow.py'), template, pairs: seedPairs })
  const wide = compare(ctx, { name: 'wide', flowFile: join(ctx.repo, 'test', 'fixtures', 'flows', 'wide_foreach_flow.py'), template, pairs: widePairs })
  return [...rows(ctx, "the seed's foreach flow", seed), ...rows(ctx, 'a 100-split foreach', wide)]
}
