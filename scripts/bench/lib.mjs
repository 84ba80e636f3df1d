// Helpers the benchmark sections share: the agent's stage timings, ratios and row formatting.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const helloFlow = (ctx) => join(ctx.repo, 'pipeline-templates', 'flows', 'hello_flow.py')

/**
 * Parses the agent's `timings: node=41.0@0.0 load=14.2@41.0 … total=260.3` line (METAFLOW_KFP_TIMINGS=1)
 * into { stage: { ms, start } }; a stage timed twice (modules) is summed.
 */
export function parseTimings(stderr) {
  const line = stderr.split('\n').find((l) => l.includes('timings: '))
  if (!line) throw new Error(`the agent printed no timings line: ${stderr.slice(-1000)}`)
  const out = {}
  for (const m of line.matchAll(/([a-z-]+)=([\d.]+)(?:@([\d.]+))?/g)) {
    const [, name, ms, start] = m
    const prev = out[name]
    out[name] = prev ? { ms: prev.ms + Number(ms), start: prev.start } : { ms: Number(ms), start: start === undefined ? undefined : Number(start) }
  }
  return out
}

/** Runs the agent (argv), throws on a non-zero exit, returns { ms, stderr }. */
export function runAgent(ctx, args, env = ctx.env, opts = {}) {
  const t = process.hrtime.bigint()
  const r = spawnSync(ctx.agent, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`metaflow-kfp ${args.join(' ')} exited ${r.status ?? r.signal}: ${String(r.stderr).slice(-2000)}`)
  return { ms, stderr: r.stderr }
}

export const ms = (x) => `${x.toFixed(0)} ms`
export const ratio = (a, b) => `${(a / b).toFixed(2)}x`

/** Median of each stage over several timings lines; `order` fixes the printed order. */
export function stageMedians(ctx, runs, order) {
  const names = order.filter((n) => runs.some((r) => r[n]))
  return names.map((n) => [n, ctx.median(runs.map((r) => r[n]?.ms ?? 0))])
}

/**
 * What the image bakes, here: a venv holding the pin (uv, from its cache) with the runtime marker,
 * and a copy of the agent with its V8 code cache beside it, both written by warm-up steps as the
 * Dockerfile's are. With { venv: false }, only the agent and its cache (steps use ctx.python).
 * Returns { agent, python }.
 */
export function bakeLikeTheImage(ctx, { venv: withVenv = true } = {}) {
  let python = ctx.python
  if (withVenv) {
    const venv = join(ctx.work, 'baked-venv')
    python = join(venv, 'bin', 'python')
    ctx.timed('python3', ['-m', 'venv', '--without-pip', venv])
    const pin = readFileSync(join(ctx.repo, 'image', 'runtime-pin.txt'), 'utf8').split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'))
    ctx.timed(join(ctx.venvBin, 'uv'), ['pip', 'install', '--quiet', '--compile-bytecode', '--python', python, pin, 'boto3'])
  }
  mkdirSync(join(ctx.work, 'baked-bin'))
  const agent = join(ctx.work, 'baked-bin', 'metaflow-kfp')
  copyFileSync(ctx.agent, agent)
  chmodSync(agent, 0o755)
  const flow = helloFlow(ctx)
  const root = join(ctx.work, 'bake', '.metaflow')
  ctx.timed(python, [flow, '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'bake', '--task-id', 'params'])
  const warm = (id, extra) => runAgent({ ...ctx, agent }, ['step', 'start', '--code-url', `file://${flow}`, '--python', python, '--datastore-root', root, '--run-id', 'bake', '--task-id', id, '--input-paths', 'bake/_parameters/params'], { ...ctx.env, ...extra })
  warm('cache', { METAFLOW_KFP_WRITE_CODE_CACHE: '1' })
  if (withVenv) warm('marker', { METAFLOW_KFP_WRITE_RUNTIME_MARKER: '1' })
  const check = warm('check', { METAFLOW_KFP_TIMINGS: '1' }).stderr
  if ((withVenv && !check.includes("the image's runtime marker")) || !check.includes('code-cache=used')) throw new Error(`the baked agent did not use its marker and code cache: ${check.slice(-1500)}`)
  return { agent, python }
}
