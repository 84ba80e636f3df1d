// The agent's peak RSS while a step prints 1 GB (and 10 GB with BENCH_10GB=1: it takes minutes).
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { helloFlow, parseTimings } from './lib.mjs'

/** Runs a step that prints `gib` GiB of 1 KiB lines through the agent under /usr/bin/time; the agent's peak RSS in MB. */
async function peakWhilePrinting(ctx, root, gib) {
  const flow = join(ctx.work, `noisy_${gib}_flow.py`)
  writeFileSync(flow, readFileSync(helloFlow(ctx), 'utf8').replace(
    'self.message = "Metaflow says hi"',
    `import sys\n        line = "x" * 1023 + "\\n"\n        for _ in range(${gib} << 20):\n            sys.stdout.write(line)\n        self.message = "Metaflow says hi"`,
  ))
  const started = Date.now()
  // /usr/bin/time measures the agent alone: the step is its child, and %M is the largest RSS of the process it ran.
  const child = spawn('/usr/bin/time', ['-f', '%M', ctx.agent, 'step', 'start', '--code-url', `file://${flow}`, '--python', ctx.python, '--datastore-root', root, '--run-id', 'b', '--task-id', `noisy-${gib}`, '--input-paths', 'b/_parameters/params'], { env: { ...ctx.env, METAFLOW_KFP_TIMINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let bytes = 0
  let err = ''
  child.stdout.on('data', (d) => { bytes += d.length })
  child.stderr.on('data', (d) => { err = (err + d).slice(-20000) })
  const code = await new Promise((r) => child.on('close', r))
  if (code !== 0) throw new Error(`the noisy step failed (${code}): ${err}`)
  // The agent's own account of its heap as it ends (stage-times.ts): what of the peak is V8's heap.
  const t = parseTimings(err)
  return { mb: Number(err.trim().split('\n').at(-1)) / 1024, gib: bytes / 2 ** 30, s: (Date.now() - started) / 1000, heap: t['heap-mb']?.ms, used: t['heap-used-mb']?.ms }
}

const describe = (r) => `${r.mb.toFixed(0)} MB (${r.gib.toFixed(2)} GiB passed through in ${r.s.toFixed(0)} s; V8's heap at the end: ${r.heap?.toFixed(0)} MB committed, ${r.used?.toFixed(0)} MB in use)`

export default async function memory(ctx) {
  const root = join(ctx.work, '.metaflow')
  ctx.timed(ctx.python, [helloFlow(ctx), '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'b', '--task-id', 'params'])
  const one = await peakWhilePrinting(ctx, root, 1)
  const rows = [{ what: 'agent peak RSS while a step prints 1 GB', measured: describe(one), goal: '<= 100 MB', ok: one.mb <= 100 }]
  if (process.env.BENCH_10GB === '1') {
    const ten = await peakWhilePrinting(ctx, root, 10)
    // Reported, as the issue asks: the 100 MB goal is the 1 GB row's.
    rows.push({ what: 'agent peak RSS while a step prints 10 GB', measured: describe(ten), goal: 'reported', ok: null })
  } else {
    rows.push({ what: 'agent peak RSS while a step prints 10 GB', measured: `not run: about ${Math.round(one.s * 10)} s here, so opt-in (BENCH_10GB=1 make bench)`, goal: 'reported', ok: null })
  }
  return rows
}
