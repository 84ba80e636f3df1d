// The seed's foreach flow run task by task through dist/metaflow-kfp on the local datastore, as a pipeline would.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'

const repo = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const agent = join(repo, 'dist', 'metaflow-kfp')
const python = join(repo, '.venv', 'bin', 'python')
const flow = join(repo, 'pipeline-templates', 'flows', 'foreach_flow.py')
const sysroot = join(repo, '.demo')
const runId = `kfp-demo-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`
mkdirSync(sysroot, { recursive: true })

const common = ['--code-url', `file://${flow}`, '--python', python, '--datastore-root', join(sysroot, '.metaflow'), '--run-id', runId]
const rows = []

function task(step, placement) {
  const out = join(sysroot, 'outputs', runId, `${step}-${rows.length}`)
  const started = process.hrtime.bigint()
  const r = spawnSync(agent, ['step', step, ...common, ...placement, '--output-dir', out], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' })
  const ms = Number((process.hrtime.bigint() - started) / 1_000_000n)
  if (r.status !== 0) {
    process.stderr.write(r.stderr)
    console.error(`\n${step} failed with exit code ${r.status}`)
    process.exit(1)
  }
  const read = (name) => readFileSync(join(out, name), 'utf8')
  const row = { step, task_id: read('task_id'), split_count: read('split_count'), splits: read('splits'), ms }
  rows.push(row)
  rmSync(out, { recursive: true })
  console.log(`  ${row.step.padEnd(8)} task ${row.task_id.padEnd(10)} split_count=${row.split_count} splits=${row.splits.padEnd(10)} ${row.ms} ms`)
  return row
}

console.log(`Running ForeachFlow/${runId} task by task through dist/metaflow-kfp (datastore: ${sysroot}/.metaflow)\n`)
const start = task('start', [])
for (const i of JSON.parse(start.splits)) task('explore', ['--parent', 'start', '--split-index', String(i)])
task('join', ['--join-foreach', 'explore', '--num-splits', start.split_count])
task('end', ['--parent', 'join'])

const check = `
from metaflow import Run, namespace
namespace(None)
r = Run('ForeachFlow/${runId}')
print('Metaflow says: successful=%s, results=%s, total_letters=%s' % (r.successful, r.data.results, r.data.total_letters))
`
console.log(`\n${execFileSync(python, ['-c', check], { env: { ...process.env, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot, METAFLOW_USER: 'demo' }, encoding: 'utf8' }).trim()}`)
console.log(`Total ${rows.reduce((a, r) => a + r.ms, 0)} ms for ${rows.length} tasks.`)
