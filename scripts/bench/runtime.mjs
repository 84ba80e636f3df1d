// The runtime check when the pin is there (as the agent reports it) against `pip show`, and uv against pip installing it.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { bakeLikeTheImage, helloFlow } from './lib.mjs'

export default async function runtime(ctx) {
  const flow = helloFlow(ctx)
  const root = join(ctx.work, '.metaflow')
  ctx.timed(ctx.python, [flow, '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'b', '--task-id', 'params'])
  // As the image runs it (the runtime marker in its venv) and as built (a venv without one: a Python start).
  const image = bakeLikeTheImage(ctx)
  const reported = (agent, python, id) => {
    const r = spawnSync(agent, ['step', 'start', '--code-url', `file://${flow}`, '--python', python, '--datastore-root', root, '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params'], { env: ctx.env, encoding: 'utf8' })
    const m = /runtime check: metaflow \S+ is there(?: \(([^)]*)\))? \((\d+) ms\)/.exec(r.stderr)
    if (!m) throw new Error(`the agent did not report its runtime check: ${r.stderr.slice(-1500)}`)
    return { ms: Number(m[2]), marker: m[1] !== undefined }
  }
  const marked = []
  const checks = []
  const pipShow = []
  for (let i = 0; i < ctx.rounds; i++) {
    const a = reported(image.agent, image.python, `marker-${i}`)
    if (!a.marker) throw new Error('the baked venv was checked without its runtime marker')
    marked.push(a.ms)
    checks.push(reported(ctx.agent, ctx.python, `check-${i}`).ms)
    if (i < 5) pipShow.push(ctx.timed(ctx.python, ['-m', 'pip', 'show', '-q', 'metaflow']))
  }
  const mark = ctx.median(marked)
  const check = ctx.median(checks)
  const show = ctx.median(pipShow)

  // Installing the pin into a fresh venv: uv (what the agent uses when it is on PATH) against pip, no cache.
  const pin = readFileSync(join(ctx.repo, 'image', 'runtime-pin.txt'), 'utf8').split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'))
  const install = (kind) => {
    const venv = join(ctx.work, `venv-${kind}`)
    execFileSync('python3', ['-m', 'venv', venv])
    const py = join(venv, 'bin', 'python')
    return kind === 'uv'
      ? ctx.timed(join(ctx.venvBin, 'uv'), ['pip', 'install', '--quiet', '--no-cache', '--python', py, pin])
      : ctx.timed(py, ['-m', 'pip', 'install', '--quiet', '--no-cache-dir', '--disable-pip-version-check', pin])
  }
  const pip = install('pip')
  const uv = install('uv')
  return [
    { what: `runtime check with the pin baked in, as the image runs it (its runtime marker; median of ${ctx.rounds}, as the agent reports it)`, measured: `${mark.toFixed(0)} ms; without a marker, one Python start: ${check.toFixed(0)} ms; \`pip show\`: ${show.toFixed(0)} ms`, goal: '<= 100 ms, no pip', ok: mark <= 100 },
    { what: `installing ${pin} into a fresh venv, uv against pip (no cache)`, measured: `uv ${(uv / 1000).toFixed(1)} s, pip ${(pip / 1000).toFixed(1)} s = ${(pip / uv).toFixed(1)}x (bound by downloads from PyPI)`, goal: 'uv >= 5x faster', ok: pip / uv >= 5 },
  ]
}
