// The agent file's size, and `--version` and `--help` against a bare `node -e 0` (alternated, median).
import { statSync } from 'node:fs'

export default async function startup(ctx) {
  const size = statSync(ctx.agent).size
  const node = []
  const version = []
  const help = []
  for (let i = 0; i < ctx.rounds; i++) {
    const runs = [
      () => node.push(ctx.timed(process.execPath, ['-e', '0'])),
      () => version.push(ctx.timed(ctx.agent, ['--version'])),
      () => help.push(ctx.timed(ctx.agent, ['--help'])),
    ]
    // Each command takes each place in the round in turn.
    for (let j = 0; j < runs.length; j++) runs[(i + j) % runs.length]()
  }
  const n = ctx.median(node)
  const row = (what, xs) => {
    const m = ctx.median(xs)
    return { what: `\`${what}\` against a bare \`node -e 0\` (median of ${ctx.rounds})`, measured: `${m.toFixed(0)} ms vs ${n.toFixed(0)} ms = ${(m / n).toFixed(2)}x`, goal: '<= 1.3x', ok: m / n <= 1.3 }
  }
  return [
    row('--version', version),
    row('--help', help),
    { what: 'agent file size', measured: `${(size / 1e6).toFixed(2)} MB`, goal: '<= 3 MB', ok: size <= 3e6 },
  ]
}
