// Measures the design's budgets as ratios against the alternative, all in one run: `make bench`.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const repo = resolve(new URL('.', import.meta.url).pathname, '..')
const agent = join(repo, 'dist', 'metaflow-kfp')
const python = join(repo, '.venv', 'bin', 'python')
const venvBin = join(repo, '.venv', 'bin')
const flow = join(repo, 'pipeline-templates', 'flows', 'hello_flow.py')
const work = mkdtempSync(join(tmpdir(), 'mfkfp-bench-'))
const root = join(work, '.metaflow')
const env = { ...process.env, METAFLOW_USER: 'bench' }
const rounds = Number(process.env.BENCH_ROUNDS ?? 15)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
function timed(cmd, args, opts = {}) {
  const t = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
  return Number(process.hrtime.bigint() - t) / 1e6
}
const rows = []
const report = (what, value, budget, ok) => rows.push({ what, value, budget, ok: ok ? 'yes' : 'NO' })

// 1. Agent overhead per step over a bare `python flow.py step`, alternating the two.
execFileSync(python, [flow, '--quiet', `--datastore-root=${root}`, 'init', '--run-id', 'b', '--task-id', 'params'], { env })
const bare = []
const viaAgent = []
for (let i = 0; i < rounds; i++) {
  bare.push(timed(python, [flow, '--quiet', '--no-pylint', '--datastore=local', `--datastore-root=${root}`, 'step', 'start', '--run-id', 'b', '--task-id', `bare-${i}`, '--input-paths', 'b/_parameters/params']))
  viaAgent.push(timed(agent, ['step', 'start', '--code-url', `file://${flow}`, '--python', python, '--datastore-root', root, '--run-id', 'b', '--task-id', `agent-${i}`, '--input-paths', 'b/_parameters/params', '--output-dir', join(work, 'out', String(i))]))
}
const overhead = median(viaAgent) - median(bare)
report('agent overhead per step (median)', `${overhead.toFixed(0)} ms (agent ${median(viaAgent).toFixed(0)} ms / bare ${median(bare).toFixed(0)} ms = ${(median(viaAgent) / median(bare)).toFixed(2)}x)`, '<= 80 ms', overhead <= 80)

// 2. The runtime check when the pin is there, as the agent itself reports it, against `pip show`.
const checks = []
for (let i = 0; i < rounds; i++) {
  const r = spawnSync(agent, ['step', 'start', '--code-url', `file://${flow}`, '--python', python, '--datastore-root', root, '--run-id', 'b', '--task-id', `check-${i}`, '--input-paths', 'b/_parameters/params'], { env, encoding: 'utf8' })
  const m = /runtime check: metaflow \S+ is there \((\d+) ms\)/.exec(r.stderr)
  if (!m) throw new Error(`the agent did not report its runtime check: ${r.stderr}`)
  checks.push(Number(m[1]))
}
const pipShow = Array.from({ length: 5 }, () => timed(python, ['-m', 'pip', 'show', '-q', 'metaflow']))
report('runtime check, pin baked in (median)', `${median(checks).toFixed(0)} ms (pip show: ${median(pipShow).toFixed(0)} ms, ${(median(pipShow) / median(checks)).toFixed(1)}x slower)`, '<= 100 ms, no pip', median(checks) <= 100)

// 3. Installing the runtime when it is missing: uv against pip, each into a fresh venv.
const pin = readFileSync(join(repo, 'image', 'runtime-pin.txt'), 'utf8').trim()
function install(kind) {
  const venv = join(work, `venv-${kind}`)
  execFileSync('python3', ['-m', 'venv', venv])
  const py = join(venv, 'bin', 'python')
  return kind === 'uv'
    ? timed(join(venvBin, 'uv'), ['pip', 'install', '--quiet', '--no-cache', '--python', py, pin])
    : timed(py, ['-m', 'pip', 'install', '--quiet', '--no-cache-dir', '--disable-pip-version-check', pin])
}
const pipMs = install('pip')
const uvMs = install('uv')
report('runtime install, uv vs pip (no cache)', `uv ${(uvMs / 1000).toFixed(1)} s, pip ${(pipMs / 1000).toFixed(1)} s = ${(pipMs / uvMs).toFixed(1)}x`, 'uv >= 5x faster', pipMs / uvMs >= 5)

// 4. The agent file and --version.
const size = statSync(agent).size
const version = Array.from({ length: rounds }, () => timed(agent, ['--version']))
const nodeBare = Array.from({ length: rounds }, () => timed(process.execPath, ['-e', '0']))
report('agent file size', `${(size / 1e6).toFixed(2)} MB`, '<= 3 MB', size <= 3e6)
report('--version (median)', `${median(version).toFixed(0)} ms (bare node start ${median(nodeBare).toFixed(0)} ms)`, '<= 100 ms', median(version) <= 100)

// 5. The agent's peak memory while a step streams 1 GB of output, against the step's own.
const noisy = join(work, 'noisy_flow.py')
writeFileSync(noisy, readFileSync(flow, 'utf8').replace(
  'self.message = "Metaflow says hi"',
  'import sys\n        line = "x" * 1023 + "\\n"\n        for _ in range(1 << 20):\n            sys.stdout.write(line)\n        self.message = "Metaflow says hi"',
))
const peak = await new Promise((resolveP, reject) => {
  const child = spawn('/usr/bin/time', ['-f', '%M', agent, 'step', 'start', '--code-url', `file://${noisy}`, '--python', python, '--datastore-root', root, '--run-id', 'b', '--task-id', 'noisy', '--input-paths', 'b/_parameters/params'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let bytes = 0
  let err = ''
  child.stdout.on('data', (d) => { bytes += d.length })
  child.stderr.on('data', (d) => { err += d })
  child.on('close', (code) => code === 0 ? resolveP({ kb: Number(err.trim().split('\n').at(-1)), bytes }) : reject(new Error(err)))
})
report('agent peak RSS streaming 1 GB of step output', `${(peak.kb / 1024).toFixed(0)} MB (passed through ${(peak.bytes / 2 ** 30).toFixed(2)} GiB)`, '<= 100 MB', peak.kb / 1024 <= 100)

rmSync(work, { recursive: true, force: true })
console.log('\nmetaflow-kfp benchmark (one run, this machine)\n')
console.log('| what | measured | budget | within |\n| --- | --- | --- | --- |')
for (const r of rows) console.log(`| ${r.what} | ${r.value} | ${r.budget} | ${r.ok} |`)
