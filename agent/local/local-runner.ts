// The run-local command: runs a KFP v2 or Argo template on this machine, one agent process per task, with the local datastore.
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { argoParamNames, runArgo } from './argo-local.js'
import { resolveLocalDatastoreRoot } from '../datastore/datastore-root.js'
import { AgentError } from '../errors.js'
import { kfpInputNames, runKfp } from './kfp-local.js'
import { LocalTasks, RunStopped, TaskFailed } from './local-task.js'
import type { AgentMain, TaskRecord } from './local-task.js'
import type { Io } from '../step/run-step.js'
import { loadTemplate } from '../pipelines/template-load.js'
import { WarmPool } from './warm-pool.js'
import type { StartWarmPython } from '../step/warm-python.js'

export interface RunLocalConfig {
  command: 'run-local'
  template: string
  codeUrl: string
  /** pipeline inputs or workflow parameters, NAME -> text */
  params: Record<string, string>
  parallelism: number
  python: string
  /** the local datastore root (the .metaflow folder); default as the step command decides it */
  datastoreRoot?: string | undefined
  /** how many prestarted Pythons to keep ready (warm-pool.ts); default the parallelism, at most the cores */
  prestart?: number | undefined
}

export interface RunLocalDeps {
  /** argv that starts this agent: node and the bundle's own path */
  agent: readonly string[]
  /** the agent's main(): tasks run through it in this process (local-task.ts); without it each task is a process */
  inProcess?: AgentMain | undefined
  /** starts a prestarted Python (the loader's); with it, in-process steps run in Pythons kept ready (warm-pool.ts) */
  startWarmPython?: StartWarmPython | undefined
  now?: () => number
  newUuid?: () => string
}

/** How many lines of a failed task's log run-local prints. */
const LOG_TAIL_LINES = 200

/** Runs the template; returns 0, or the failed task's exit code. */
export async function runLocal(cfg: RunLocalConfig, io: Io, deps: RunLocalDeps): Promise<number> {
  const template = await loadTemplate(resolve(io.cwd, cfg.template))
  // The step command's rule: --datastore-root, else $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow, else Metaflow's search.
  const datastoreRoot = resolveLocalDatastoreRoot(cfg.datastoreRoot, io)
  const runUuid = (deps.newUuid ?? randomUUID)()
  const runId = `kfp-${runUuid}`
  const now = deps.now ?? Date.now
  const names = template.form === 'kfp' ? kfpInputNames(template.doc) : argoParamNames(template.doc)
  const params = { ...cfg.params, [codeUrlName(names, cfg)]: cfg.codeUrl }

  const workDir = await mkdtemp(join(tmpdir(), 'metaflow-kfp-local-'))
  // As many as the machine runs at once, at most: an unused one costs its imports' CPU.
  const prestart = cfg.prestart ?? Math.min(cfg.parallelism, availableParallelism())
  const warmPool = deps.inProcess && deps.startWarmPython && prestart > 0
    ? WarmPool.open({ start: deps.startWarmPython, python: cfg.python, env: io.env, cwd: io.cwd, workDir, size: prestart, log: io.log })
    : undefined
  const tasks = new LocalTasks({
    warmPool,
    agent: deps.agent,
    inProcess: deps.inProcess,
    signal: io.signal,
    python: cfg.python,
    datastoreRoot,
    workDir,
    parallelism: cfg.parallelism,
    env: io.env,
    cwd: io.cwd,
    log: io.log,
    now,
  })
  const started = now()
  const restoreLimit = deps.inProcess ? allowSignalListeners(cfg.parallelism) : () => {}
  io.log(`running ${cfg.template} (${template.form === 'kfp' ? 'KFP v2 pipeline' : 'Argo Workflow'}) as Metaflow run ${runId}, ${cfg.parallelism} task(s) at a time, datastore ${datastoreRoot}`)
  try {
    try {
      const opts = { params, runUuid, tasks, parallelism: cfg.parallelism }
      if (template.form === 'kfp') await runKfp(template.doc, opts)
      else await runArgo(template.doc, opts)
    } catch (err) {
      if (!(err instanceof TaskFailed || err instanceof RunStopped) || !tasks.failure) {
        if (tasks.records.length > 0) await printSummary(tasks.records, io)
        throw err
      }
    }
    const failure = tasks.failure
    if (failure) await printLogTail(failure, io)
    await printSummary(tasks.records, io)
    const pathspec = await findRun(datastoreRoot, runId)
    await say(io, `Metaflow run: ${pathspec ?? `(none: no task of ${runId} reached ${datastoreRoot})`}`)
    await say(io, `${failure ? 'failed' : 'succeeded'} after ${formatMs(now() - started)}; datastore root ${datastoreRoot}`)
    return failure ? failure.exitCode || 1 : 0
  } finally {
    tasks.close()
    warmPool?.close()
    restoreLimit()
    await rm(workDir, { recursive: true, force: true })
  }
}

/**
 * Each running step listens for SIGTERM, SIGINT and SIGHUP on the process to forward them to its
 * group (step-process.ts). With tasks in this process that is one listener per running task,
 * and Node warns about a leak past 10; the bound here is known: --parallelism plus main's own.
 */
function allowSignalListeners(parallelism: number): () => void {
  const before = process.getMaxListeners()
  process.setMaxListeners(Math.max(before, parallelism + 10))
  return () => process.setMaxListeners(before)
}

/** The pipeline input that takes --code-url: code_url, or code-url in Argo's naming. */
function codeUrlName(names: readonly string[], cfg: RunLocalConfig): string {
  const name = ['code_url', 'code-url'].find((n) => names.includes(n))
  if (!name) {
    throw new AgentError('usage', `failed to pass --code-url to ${cfg.template}: it has no code_url or code-url input`, {
      hint: 'declare one and pass it to every task as --code-url',
    })
  }
  if (name in cfg.params) throw new AgentError('usage', `failed to accept --param ${name}: the code URL comes from --code-url`, { hint: `drop --param ${name}` })
  return name
}

async function printLogTail(record: TaskRecord, io: Io): Promise<void> {
  let text = ''
  try {
    text = await readFile(record.logPath, 'utf8')
  } catch {
    // the task never started its process
  }
  const lines = text.replace(/\n$/, '').split('\n')
  const shown = lines.slice(-LOG_TAIL_LINES)
  io.log(`task ${record.label} failed (${record.reason ?? `exit code ${record.exitCode}`}); its log${lines.length > shown.length ? ` (last ${shown.length} of ${lines.length} lines)` : ''}:`)
  for (const line of shown) await io.stderr(Buffer.from(`  | ${line}`))
}

async function printSummary(records: readonly TaskRecord[], io: Io): Promise<void> {
  const rows = [
    ['TASK', 'METAFLOW TASK ID', 'SPLITS', 'STATUS', 'DURATION'],
    ...records.map((r) => [r.label, r.taskId ?? '-', r.splitCount ?? '-', r.status === 'ok' ? 'ok' : `failed (${r.exitCode})`, formatMs(r.durationMs)]),
  ]
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => (r[c] as string).length)))
  for (const r of rows) await say(io, r.map((cell, c) => (c < 4 ? cell.padEnd(widths[c] as number) : cell)).join('  '))
}

/** Finds Flow/run in the local datastore: the flow is whichever folder holds the run. */
async function findRun(root: string, runId: string): Promise<string | undefined> {
  let entries: string[]
  try {
    entries = await readdir(root)
  } catch {
    return undefined
  }
  for (const flow of entries.sort()) {
    if (flow.startsWith('.') || flow.startsWith('_')) continue
    try {
      if ((await stat(join(root, flow, runId))).isDirectory()) return `${flow}/${runId}`
    } catch {
      // not this flow
    }
  }
  return undefined
}

function formatMs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`
}

async function say(io: Io, line: string): Promise<void> {
  await io.stdout(Buffer.from(line))
}
