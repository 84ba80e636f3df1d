// Runs one template task on this machine for run-local: the agent's own entrypoint on the task's argv, its log in a file, its outputs read back.
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { AgentError, ExitCode } from '../errors.js'
import { makeDirs } from '../make-dirs.js'
import type { Io } from '../step/run-step.js'
import { discard } from '../step/warm-python.js'
import type { WarmPool } from './warm-pool.js'
import { runProcess } from '../step/step-process.js'

export interface TaskRequest {
  /** what the summary calls the task, e.g. explore[2] */
  label: string
  /** the container's command and args, placeholders already substituted */
  command: readonly string[]
  args: readonly string[]
  /** the container's env entries */
  env: Record<string, string>
  /** output name -> local file the task writes it to */
  outputs: Record<string, string>
  /** output name -> value when the file is missing (Argo valueFrom.default) */
  defaults?: Record<string, string>
}

/** What run-local hands the runner of either template form. */
export interface FormRunOptions {
  /** the template's inputs by name (Argo workflow parameters, KFP pipeline inputs), from --code-url and --param */
  params: Record<string, string>
  /** what the run's uuid placeholder resolves to ({{workflow.uid}}, {{$.pipeline_job_uuid}}) */
  runUuid: string
  tasks: LocalTasks
  parallelism: number
}

export interface TaskRecord {
  label: string
  /** the Metaflow task id, from the task's task_id output */
  taskId?: string | undefined
  /** the foreach split count the task handed downstream, from its split_count output */
  splitCount?: string | undefined
  status: 'ok' | 'failed'
  exitCode: number
  durationMs: number
  logPath: string
  /** why the task failed, when it was not the step's own exit code */
  reason?: string | undefined
}

/** The agent's entrypoint, main(argv, io): parses the task's argv, runs it and maps every outcome to the exit code a pod would give. */
export type AgentMain = (argv: readonly string[], io: Io) => Promise<number>

export interface LocalTaskSettings {
  /** argv that starts this agent: node and the bundle */
  agent: readonly string[]
  /**
   * When given, a task runs through this entrypoint inside run-local's process, with its own Io
   * (env, log file, stop signal), instead of a Node start and a bundle load per task. A task
   * whose env sets what the agent reads from its process still runs as a process (see
   * PROCESS_WIDE).
   */
  inProcess?: AgentMain | undefined
  /** run-local's own stop: running tasks are stopped as their pods would be, and no new task starts */
  signal?: AbortSignal | undefined
  python: string
  datastoreRoot: string
  /** a scratch folder for task folders and logs */
  workDir: string
  parallelism: number
  env: NodeJS.ProcessEnv
  cwd: string
  log: (line: string) => void
  /** a clock, for durations */
  now: () => number
  /** prestarted Pythons for the steps that run in this process */
  warmPool?: WarmPool | undefined
}

/** Thrown to the DAG walkers when a task failed; the runner reports the record. */
export class TaskFailed extends Error {
  constructor(readonly record: TaskRecord) {
    super(`task ${record.label} failed`)
  }
}

/** Thrown instead of starting a task once another one has failed. */
export class RunStopped extends Error {
  constructor() {
    super('the run stopped after a failed task')
  }
}

// The template's own say on these would send a laptop run to the cluster's datastore or interpreter.
const OVERRIDDEN = ['--python', '--datastore', '--datastore-root', '--metadata']

// What the agent reads from its process rather than from io.env: os.homedir() (the Metaflow
// profile), os.tmpdir() (the work folder), the AWS SDK's default credential chain, Node itself.
// A task whose env gives one of these another value runs as a process of its own, as in its pod.
const PROCESS_WIDE = /^(HOME|TMPDIR|TMP|TEMP|AWS_.*|NODE_.*)$/

/** Runs container tasks through the agent with bounded parallelism and keeps one record per task. */
export class LocalTasks {
  readonly records: TaskRecord[] = []
  failure: TaskRecord | undefined
  private free: number
  private readonly waiting: (() => void)[] = []
  private seq = 0
  /** the stop controllers of the tasks running in this process; run-local's stop aborts them all */
  private readonly running = new Set<AbortController>()
  private readonly onStop = () => {
    for (const c of this.running) c.abort(this.s.signal?.reason)
  }
  /** one runtime check per interpreter and pin for the whole run: every task uses the same environment */
  private readonly runtimeChecks = new Map<string, Promise<unknown>>()

  constructor(private readonly s: LocalTaskSettings) {
    this.free = Math.max(1, s.parallelism)
    // One listener for all tasks, so a wide run adds none per task to run-local's signal.
    s.signal?.addEventListener('abort', this.onStop, { once: true })
  }

  /** Stops listening to run-local's signal; run-local calls it when the run is over. */
  close(): void {
    this.s.signal?.removeEventListener('abort', this.onStop)
  }

  /** A fresh private folder for one task: container paths map under it. */
  async taskDir(): Promise<string> {
    const dir = join(this.s.workDir, `task-${++this.seq}`)
    await makeDirs(dir)
    return dir
  }

  async run(req: TaskRequest): Promise<Record<string, string>> {
    checkCommand(req)
    await this.acquire()
    try {
      if (this.failure || this.s.signal?.aborted) throw new RunStopped()
      return await this.runNow(req)
    } finally {
      this.release()
    }
  }

  private async runNow(req: TaskRequest): Promise<Record<string, string>> {
    const logPath = join(this.s.workDir, `log-${++this.seq}.txt`)
    // The task's argv as its container gets it, after the command (the agent itself).
    const argv = [
      ...req.command.slice(1),
      ...withoutOverridden(req.args),
      '--python', this.s.python,
      '--datastore', 'local',
      '--datastore-root', this.s.datastoreRoot,
      '--metadata', 'local',
    ]
    const env = { ...this.s.env, ...req.env }
    const out = createWriteStream(logPath)
    // A log that cannot be written (a full disk) loses its lines, never the task or the run:
    // without a listener the stream's error would end run-local, and a write waiting for
    // 'drain' would wait for good.
    let broken = false
    out.on('error', (err) => {
      if (!broken) this.s.log(`warning: failed to write the log of ${req.label} to ${logPath}: ${err.message}`)
      broken = true
    })
    const write = (line: Buffer) => {
      if (broken || out.write(Buffer.concat([line, Buffer.from('\n')]))) return
      return new Promise<void>((r) => {
        const go = () => {
          out.off('drain', go)
          out.off('error', go)
          r()
        }
        out.once('drain', go)
        out.once('error', go)
      })
    }
    this.s.log(`started ${req.label}`)
    const started = this.s.now()
    let exitCode: number
    try {
      const main = this.s.inProcess
      if (main && !needsOwnProcess(req.env, this.s.env)) {
        exitCode = await this.runInProcess(main, argv, env, write)
      } else {
        const result = await runProcess(this.s.agent[0] as string, [...this.s.agent.slice(1), ...argv], {
          cwd: this.s.cwd,
          env,
          graceMs: 20_000,
          stdout: write,
          stderr: write,
        })
        exitCode = result.exitCode
      }
    } finally {
      await new Promise<void>((r) => out.end(r))
    }
    const record: TaskRecord = { label: req.label, status: 'ok', exitCode, durationMs: this.s.now() - started, logPath }
    this.records.push(record)
    if (exitCode !== 0) return this.fail(record)

    const values: Record<string, string> = {}
    for (const [name, path] of Object.entries(req.outputs)) {
      try {
        values[name] = await readFile(path, 'utf8')
      } catch {
        const fallback = req.defaults?.[name]
        if (fallback === undefined) {
          record.exitCode = ExitCode.outputs
          record.reason = `it exited 0 but did not write its output ${name}`
          return this.fail(record)
        }
        values[name] = fallback
      }
    }
    record.taskId = values.task_id
    record.splitCount = values.split_count
    this.s.log(`${req.label} succeeded in ${record.durationMs} ms${record.taskId ? ` (Metaflow task ${record.taskId})` : ''}`)
    return values
  }

  /** One task through the agent's entrypoint in this process: its own env, log and stop signal, as a pod's agent has. */
  private async runInProcess(main: AgentMain, argv: readonly string[], env: NodeJS.ProcessEnv, write: (line: Buffer) => void | Promise<void>): Promise<number> {
    const stop = new AbortController()
    if (this.s.signal?.aborted) stop.abort(this.s.signal.reason)
    this.running.add(stop)
    const io: Io = {
      log: (line) => void write(Buffer.from(`metaflow-kfp: ${line}`)),
      stdout: write,
      stderr: write,
      env,
      cwd: this.s.cwd,
      signal: stop.signal,
      shareRuntimeCheck: (key, check) => this.shareRuntimeCheck(key, check),
      warmPython: argv[0] === 'step' ? this.s.warmPool?.take() : undefined,
    }
    try {
      return await main(argv, io)
    } finally {
      this.running.delete(stop)
      // A task that ended before its step (a usage error, a finished attempt) leaves its Python unused.
      if (io.warmPython) discard(io.warmPython)
    }
  }

  /**
   * The first task to ask checks (or installs) the runtime; the others wait for that answer
   * instead of starting Python each, or running installers side by side into one environment.
   * Only a success is kept: when the check fails (or the task that ran it was stopped), the
   * next waiting task checks again for itself.
   */
  private shareRuntimeCheck<T>(key: string, check: () => Promise<T>): Promise<T> {
    const known = this.runtimeChecks.get(key) as Promise<T> | undefined
    if (known) return known.catch(() => this.shareRuntimeCheck(key, check))
    const checking = check()
    this.runtimeChecks.set(key, checking)
    checking.catch(() => {
      if (this.runtimeChecks.get(key) === checking) this.runtimeChecks.delete(key)
    })
    return checking
  }

  private fail(record: TaskRecord): never {
    record.status = 'failed'
    this.failure ??= record
    this.s.log(`${record.label} failed: ${record.reason ?? `exit code ${record.exitCode}`}`)
    throw new TaskFailed(record)
  }

  private acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  private release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.free++
  }
}

/** run-local runs only the agent; anything else would need the image. */
function checkCommand(req: TaskRequest): void {
  const program = req.command[0]
  if (program === undefined || basename(program) !== 'metaflow-kfp') {
    throw new AgentError('usage', `failed to run task ${req.label} locally: its container command ${JSON.stringify(req.command)} is not the metaflow-kfp agent`, {
      hint: 'set the command to ["/usr/local/bin/metaflow-kfp"]; run-local runs only the agent',
    })
  }
}

/** Whether the task's env changes what the agent reads from its process, so it needs one of its own. */
export function needsOwnProcess(taskEnv: Record<string, string>, base: NodeJS.ProcessEnv): boolean {
  return Object.entries(taskEnv).some(([k, v]) => PROCESS_WIDE.test(k) && base[k] !== v)
}

/** Drops the flags run-local sets itself, in both `--flag value` and `--flag=value` form. */
export function withoutOverridden(args: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (OVERRIDDEN.includes(a)) {
      i++
      continue
    }
    if (OVERRIDDEN.some((f) => a.startsWith(`${f}=`))) continue
    out.push(a)
  }
  return out
}
