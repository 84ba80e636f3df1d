// The agent file's size, and `--version` and `--help` against a bare `node -e 0` (alternated, median), as the image runs the agent and as built.
import { statSync } from 'node:fs'
import { bakeLikeTheImage } from './lib.mjs'

export default async function startup(ctx) {
  const size = statSync(ctx.agent).size
  // As the image runs it: with the code cache its build wrote beside it.
  const image = bakeLikeTheImage(ctx, { venv: false }).agent
  const runs = { node: [], version: [], help: [], versionBuilt: [], helpBuilt: [] }
  const cmds = [
    ['node', process.execPath, ['-e', '0']],
    ['version', image, ['--version']],
    ['help', image, ['--help']],
    ['versionBuilt', ctx.agent, ['--version']],
    ['helpBuilt', ctx.agent, ['--help']],
  ]
  for (let i = 0; i < ctx.rounds; i++) {
    // Each command takes each place in the round in turn.
    for (let j = 0; j < cmds.length; j++) {
      const [name, cmd, args] = cmds[(i + j) % cmds.length]
      runs[name].push(ctx.timed(cmd, args))
    }
  }
  const n = ctx.median(runs.node)
  const row = (what, key) => {
    const m = ctx.median(runs[key])
    const built = ctx.median(runs[`${key}Built`])
    return {
      what: `\`${what}\` against a bare \`node -e 0\`, as the image runs it (code cache; median of ${ctx.rounds})`,
      measured: `${m.toFixed(0)} ms vs ${n.toFixed(0)} ms = ${(m / n).toFixed(2)}x (as built, no cache: ${built.toFixed(0)} ms = ${(built / n).toFixed(2)}x)`,
      goal: '<= 1.3x',
      ok: m / n <= 1.3,
    }
  }
  return [
    row('--version', 'version'),
    row('--help', 'help'),
    { what: 'agent file size', measured: `${(size / 1e6).toFixed(2)} MB`, goal: '<= 3 MB', ok: size <= 3e6 },
  ]
}
