// Runs every benchmark section in one run, prints the table and regenerates the README's from it: `make bench`.
//
// INTERFACE of a section (scripts/bench/<name>.mjs, listed in SECTIONS below):
//   export default async function (ctx) { return [{ what, measured, goal, ok }, ...] }
//   what, measured, goal: strings (no `|`, no newline); ok: boolean, or null for a row that only
//   reports (a breakdown; printed as "—"). A section that throws gets one
//   failed row and the others still run.
//   ctx = {
//     repo,     // the repository's absolute path
//     agent,    // <repo>/dist/metaflow-kfp
//     python,   // <repo>/.venv/bin/python
//     venvBin,  // <repo>/.venv/bin
//     work,     // a fresh temp dir for this section, removed after it
//     env,      // { ...process.env, METAFLOW_USER: 'bench' }
//     rounds,   // Number(BENCH_ROUNDS ?? 15)
//     median(xs),                  // median of numbers
//     timed(cmd, args, opts?),     // spawnSync (env: ctx.env, stdio ignore/ignore/pipe, then opts); throws on a non-zero exit; wall ms
//     log(line),                   // a progress line on stderr
//   }
// Environment: BENCH_ONLY=name[,name] runs only those sections (and leaves the README alone);
// BENCH_ROUNDS=N; BENCH_README=0 never touches the README; BENCH_10GB=1 adds the 10 GB memory row.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const SECTIONS = ['startup', 'step-overhead', 'runtime', 'memory', 's3', 'run-local', 'generate']

const repo = resolve(new URL('.', import.meta.url).pathname, '..', '..')
const README_BEGIN = '<!-- bench:begin (written by `make bench`: scripts/bench/run.mjs) -->'
const README_END = '<!-- bench:end -->'

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

function makeCtx(name, env) {
  const work = mkdtempSync(join(tmpdir(), `mfkfp-bench-${name}-`))
  const timed = (cmd, args, opts = {}) => {
    const t = process.hrtime.bigint()
    const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
    const ms = Number(process.hrtime.bigint() - t) / 1e6
    if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`)
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${String(r.stderr ?? '').slice(-2000)}`)
    return ms
  }
  return {
    repo,
    agent: join(repo, 'dist', 'metaflow-kfp'),
    python: join(repo, '.venv', 'bin', 'python'),
    venvBin: join(repo, '.venv', 'bin'),
    work,
    env,
    rounds: Number(process.env.BENCH_ROUNDS ?? 15),
    median,
    timed,
    log: (line) => process.stderr.write(`bench ${name}: ${line}\n`),
  }
}

const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ')

async function main() {
  const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',').map((s) => s.trim()).filter(Boolean) : null
  for (const n of only ?? []) if (!SECTIONS.includes(n)) throw new Error(`no bench section ${n} (sections: ${SECTIONS.join(', ')})`)
  const chosen = only ?? SECTIONS
  const started = new Date()
  const cores = typeof availableParallelism === 'function' ? availableParallelism() : cpus().length
  const load = loadavg().map((x) => x.toFixed(2)).join(' ')
  const env = { ...process.env, METAFLOW_USER: 'bench' }
  // Why: a host that exports NODE_EXTRA_CA_CERTS (this one does, for its proxy) makes every Node
  // start parse that bundle, ~50 ms here; the image sets none, and the bench measures as it runs.
  delete env.NODE_EXTRA_CA_CERTS
  const rows = []
  const t0 = Date.now()
  for (const name of chosen) {
    const ctx = makeCtx(name, env)
    const ts = Date.now()
    process.stderr.write(`bench: ${name} …\n`)
    try {
      const mod = await import(pathToFileURL(join(repo, 'scripts', 'bench', `${name}.mjs`)).href)
      const got = await mod.default(ctx)
      for (const r of got) rows.push({ section: name, ...r })
    } catch (err) {
      process.stderr.write(`bench: ${name} failed: ${err?.stack ?? err}\n`)
      rows.push({ section: name, what: `${name} section`, measured: `failed: ${err?.message ?? err}`.slice(0, 400), goal: 'runs', ok: false })
    } finally {
      rmSync(ctx.work, { recursive: true, force: true, maxRetries: 3 })
    }
    process.stderr.write(`bench: ${name} took ${((Date.now() - ts) / 1000).toFixed(0)} s\n`)
  }
  const total = (Date.now() - t0) / 1000
  const head = `One run of ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cores} cores, load average ${load} at its start, ${rows.filter((r) => r.ok === true).length} of ${rows.filter((r) => r.ok !== null).length} goals met, ${Math.round(total)} s in all:`
  const table = [
    '| what | measured | goal | met |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${cell(r.what)} | ${cell(r.measured)} | ${cell(r.goal)} | ${r.ok === null ? '—' : r.ok ? 'yes' : 'NO'} |`),
  ].join('\n')
  console.log(`\nmetaflow-kfp benchmark\n\n${head}\n\n${table}`)
  if (only || process.env.BENCH_README === '0') return
  const readmePath = join(repo, 'README.md')
  const text = readFileSync(readmePath, 'utf8')
  const a = text.indexOf(README_BEGIN)
  const b = text.indexOf(README_END)
  if (a < 0 || b < a) {
    process.stderr.write('bench: the README has no benchmark markers; not rewritten\n')
    return
  }
  const next = `${text.slice(0, a + README_BEGIN.length)}\n${head}\n\n${table}\n${text.slice(b)}`
  // Whole or not at all: a temp file beside it, then a rename.
  const tmp = `${readmePath}.bench-${process.pid}`
  writeFileSync(tmp, next)
  renameSync(tmp, readmePath)
  process.stderr.write('bench: README benchmark table regenerated from this run\n')
}

await main()
