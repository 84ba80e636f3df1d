// Helpers the benchmark sections share: the agent's stage timings, ratios and row formatting.
import { spawnSync } from 'node:child_process'
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
