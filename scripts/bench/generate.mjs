// Bench section: generate's time for a 50-step flow against a bare Metaflow start, and what passes between tasks at 100,000 splits in each form.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

const WIDTH = 100_000

/** A --python that appends `<start ns> <end ns>` to `log` for each start, around the real interpreter. */
function countingPython(dir, python, log) {
  const path = join(dir, 'python-counting')
  writeFileSync(path, `#!/bin/sh\nt0=$(date +%s%N)\n'${python}' "$@"\nrc=$?\necho "$t0 $(date +%s%N)" >> '${log}'\nexit $rc\n`)
  chmodSync(path, 0o755)
  return path
}

/** The Python starts logged, each as its wall ms. */
const starts = (path) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => { const [a, b] = l.split(' ').map(Number); return (b - a) / 1e6 }) : [])

/** generate in both forms, alternated with `python flow.py --quiet show`, the bare start of Metaflow on the same flow. */
function generateTime(ctx) {
  const flow = join(ctx.repo, 'scripts', 'bench', 'flows', 'fifty_step_flow.py')
  const log = join(ctx.work, 'python-starts.txt')
  const python = countingPython(ctx.work, ctx.python, log)
  const rounds = Number(process.env.BENCH_GENERATE_ROUNDS ?? Math.min(ctx.rounds, 5))
  const times = { kfp: [], argo: [], show: [] }
  let generates = 0
  for (let i = 0; i < rounds; i++) {
    times.show.push(ctx.timed(ctx.python, [flow, '--quiet', 'show'], { cwd: ctx.work }))
    for (const form of ['kfp', 'argo']) {
      const out = join(ctx.work, `fifty.${form}.yaml`)
      times[form].push(ctx.timed(ctx.agent, ['generate', flow, '--format', form, '--code-url', 'https://example.com/flows/fifty_step_flow.py', '--python', python, '--output', out], { cwd: ctx.work }))
      generates++
    }
  }
  const steps = Object.keys(parse(readFileSync(join(ctx.work, 'fifty.kfp.yaml'), 'utf8')).components ?? {}).length
  const pythonMs = starts(log)
  const perGenerate = pythonMs.length / generates
  const m = (xs) => ctx.median(xs) / 1000
  const worst = Math.max(m(times.kfp), m(times.argo))
  ctx.log(`generate kfp ${m(times.kfp).toFixed(2)} s, argo ${m(times.argo).toFixed(2)} s, show ${m(times.show).toFixed(2)} s, ${perGenerate} Python start(s) each, ${steps} components`)
  return {
    what: 'generate, a 50-step flow (KFP v2 and Argo forms): time and Python starts',
    measured: `KFP ${m(times.kfp).toFixed(2)} s, Argo ${m(times.argo).toFixed(2)} s, of which its Python start ${m(pythonMs).toFixed(2)} s; python flow.py show ${m(times.show).toFixed(2)} s (${(worst / m(times.show)).toFixed(2)}x); ${perGenerate} Python start per generate (median of ${rounds})`,
    goal: 'one Python start, < 2 s',
    ok: perGenerate === 1 && worst < 2,
  }
}

/** The start task's outputs that a form's downstream tasks read, from the generated pipeline itself. */
function consumedOutputs(form, text) {
  if (form === 'argo') return [...new Set([...text.matchAll(/\{\{tasks\.start\.outputs\.parameters\.([\w-]+)\}\}/g)].map((m) => m[1]))]
  const keys = new Set()
  const walk = (v) => {
    if (Array.isArray(v)) return v.forEach(walk)
    if (v && typeof v === 'object') {
      const p = v.taskOutputParameter
      if (p && p.producerTask === 'start') keys.add(p.outputParameterKey)
      Object.values(v).forEach(walk)
    }
  }
  walk(parse(text))
  return [...keys]
}

/**
 * The foreach step alone, through the agent on the local datastore, with 100,000 splits; the
 * bytes of each output the generated pipelines pass on, against the limits that apply.
 */
function splitSizes(ctx) {
  const flow = join(ctx.repo, 'test', 'fixtures', 'flows', 'wide_foreach_flow.py')
  const consumed = {}
  for (const form of ['kfp', 'argo']) {
    const out = join(ctx.work, `wide.${form}.yaml`)
    ctx.timed(ctx.agent, ['generate', flow, '--format', form, '--code-url', 'https://example.com/flows/wide_foreach_flow.py', '--python', ctx.python, '--output', out], { cwd: ctx.work })
    consumed[form] = consumedOutputs(form, readFileSync(out, 'utf8'))
  }
  const outDir = join(ctx.work, 'outputs')
  mkdirSync(outDir)
  const ms = ctx.timed(ctx.agent, ['step', 'start', '--code-url', `file://${flow}`, '--run-id', 'kfp-bench-wide', '--param', `width=${WIDTH}`, '--python', ctx.python, '--datastore-root', join(ctx.work, '.metaflow'), '--output-dir', outDir], { cwd: ctx.work })
  if (readFileSync(join(outDir, 'split_count'), 'utf8') !== String(WIDTH)) throw new Error(`the foreach step did not report ${WIDTH} splits`)
  const size = (name) => statSync(join(outDir, name)).size
  const bytes = (form) => consumed[form].reduce((n, name) => n + size(name), 0)
  const detail = (form) => consumed[form].map((n) => `${n} ${size(n).toLocaleString('en-US')} B`).join(' + ')
  ctx.log(`the foreach step with ${WIDTH} splits took ${(ms / 1000).toFixed(1)} s; KFP reads ${consumed.kfp.join(', ')}; Argo reads ${consumed.argo.join(', ')}`)
  const kfp = bytes('kfp')
  const argo = bytes('argo')
  const MB4 = 4 * 1024 * 1024
  return [
    {
      what: `KFP v2 form, ${WIDTH.toLocaleString('en-US')} splits: bytes the foreach task passes on`,
      measured: `${kfp.toLocaleString('en-US')} B (${detail('kfp')}); ParallelFor needs the list: its outputs go to MLMD over gRPC, 4 MiB a message before KFP 2.16 (100 MiB from 2.16); a single argv string may hold 128 KiB`,
      goal: '< 4 MiB (MLMD message, KFP < 2.16)',
      ok: kfp < MB4,
    },
    {
      what: `Argo form, ${WIDTH.toLocaleString('en-US')} splits: bytes the foreach task passes on`,
      measured: `${argo.toLocaleString('en-US')} B (${detail('argo')}, withSequence over the count); a withParam list would be ${size('splits').toLocaleString('en-US')} B of the workflow object's 1 MiB (MAX_WORKFLOW_SIZE) and etcd's 1.5 MiB`,
      goal: 'O(1): <= 64 B whatever the width',
      ok: argo <= 64,
    },
  ]
}

export default async function generateSection(ctx) {
  return [generateTime(ctx), ...splitSizes(ctx)]
}
