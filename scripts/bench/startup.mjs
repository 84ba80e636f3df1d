// The agent file's size, `--version` and `--help` against a bare `node -e 0` (alternated, median), as the image runs the agent and as built, and the bundle's own load (a usage error: loaded, parsed, refused).
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { bakeLikeTheImage } from './lib.mjs'

export default async function startup(ctx) {
  const size = statSync(ctx.agent).size
  // As the image runs it: with the code cache its build wrote beside it.
  const image = bakeLikeTheImage(ctx, { venv: false }).agent
  // stdout on /dev/null (ctx.timed's default) and on a pipe, as a script reading the answer has it.
  const piped = { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 }
  // A usage error exits 64: timed here as ctx.timed times, which takes only an exit of 0.
  const refused = (agent) => () => {
    const t = process.hrtime.bigint()
    const r = spawnSync(agent, ['--no-such-flag'], { env: ctx.env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
    const ms = Number(process.hrtime.bigint() - t) / 1e6
    if (r.status !== 64) throw new Error(`${agent} --no-such-flag exited ${r.status ?? r.signal}, not 64: ${String(r.stderr ?? r.error).slice(-500)}`)
    return ms
  }
  const cmds = {
    node: () => ctx.timed(process.execPath, ['-e', '0']),
    version: () => ctx.timed(image, ['--version']),
    help: () => ctx.timed(image, ['--help']),
    versionPiped: () => ctx.timed(image, ['--version'], piped),
    helpPiped: () => ctx.timed(image, ['--help'], piped),
    versionBuilt: () => ctx.timed(ctx.agent, ['--version']),
    helpBuilt: () => ctx.timed(ctx.agent, ['--help']),
    bundle: refused(image),
    bundleBuilt: refused(ctx.agent),
  }
  const names = Object.keys(cmds)
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  for (let i = 0; i < ctx.rounds; i++) {
    // Each command takes each place in the round in turn.
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length]
      runs[name].push(cmds[name]())
    }
  }
  const n = ctx.median(runs.node)
  const m = (key) => ctx.median(runs[key])
  const x = (ms) => `${ms.toFixed(0)} ms = ${(ms / n).toFixed(2)}x`
  const row = (what, key) => ({
    what: `\`${what}\` against a bare \`node -e 0\`, as the image runs it (median of ${ctx.rounds}; stdout on /dev/null)`,
    measured: `${m(key).toFixed(0)} ms vs ${n.toFixed(0)} ms = ${(m(key) / n).toFixed(2)}x (stdout on a pipe: ${x(m(`${key}Piped`))}; as built: ${x(m(`${key}Built`))})`,
    goal: '<= 1.3x',
    ok: m(key) / n <= 1.3 && m(`${key}Piped`) / n <= 1.3,
  })
  return [
    row('--version', 'version'),
    row('--help', 'help'),
    {
      what: `the bundle's load and argument parsing, all a step's start pays before its own work (a usage error, as the image runs it; median of ${ctx.rounds})`,
      measured: `${x(m('bundle'))} of a bare \`node -e 0\` (as built, no code cache: ${x(m('bundleBuilt'))})`,
      goal: 'reported',
      ok: null,
    },
    { what: 'agent file size', measured: `${(size / 1e6).toFixed(2)} MB`, goal: '<= 3 MB', ok: size <= 3e6 },
  ]
}
