// Keeps a task's stdout and stderr in Metaflow's mflog format and saves them to the datastore, so `flow.py logs` works.
import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import type { WriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { ObjectStore, TaskRef } from '../datastore/datastore.js'
import { taskPrefix } from '../datastore/datastore.js'

export type StreamName = 'stdout' | 'stderr'

/** One mflog line: `[MFLOG|0|<utc ts>Z|task|<id>]<message>`, as metaflow/mflog/mflog.py writes it; `micros` since the epoch. */
export function mflogLine(message: Buffer | string, micros: number): Buffer {
  const ts = `${new Date(Math.floor(micros / 1000)).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}`
  return Buffer.concat([Buffer.from(`[MFLOG|0|${ts}Z|task|${randomUUID()}]`), Buffer.from(message), Buffer.from('\n')])
}

/**
 * When the next save while the step runs is due, from the time since saving started: every 2 s
 * for the first minutes, easing to 30 s after about 20 minutes (the shape of Metaflow's own
 * mflog.update_delay), and never sooner than 100 times what the last save took, so saving costs
 * the machine at most 1% whatever the log's size.
 */
export function nextSaveDelayMs(elapsedMs: number, lastSaveMs: number): number {
  const sigmoid = 1 / (1 + Math.exp(-0.01 * (elapsedMs / 1000) + 9))
  return Math.max(2000 + sigmoid * 28_000, 100 * lastSaveMs)
}

export interface SaveWhileRunningOptions {
  /** the agent's progress lines; a failed save is reported once */
  log: (line: string) => void
  /** the schedule; tests pass a faster one */
  delayMs?: (elapsedMs: number, lastSaveMs: number) => number
  now?: () => number
}

interface LogFile {
  path: string
  out: WriteStream
  /** bytes the file holds for sure: whole mflog lines whose writes have completed */
  flushed: number
  /** `flushed` at the last save */
  saved: number
}

/**
 * Appends each line of the task's two streams to a local file in mflog format. Lines go to
 * disk, not memory, so a step that prints gigabytes costs the agent no more than a buffer.
 * While the step runs the files are saved to the datastore every few seconds, so a pod
 * killed mid-step (OOM, node loss, a deadline) still leaves `flow.py logs` the lines up to
 * a few seconds before; save() stores them complete on every path the agent lives through.
 */
export class TaskLogs {
  private readonly files: Record<StreamName, LogFile>
  private timer: NodeJS.Timeout | undefined
  private saving: Promise<void> = Promise.resolve()
  private stopped = false
  private lastMicros = 0

  constructor(private readonly dir: string, private readonly now: () => Date = () => new Date()) {
    const file = (name: string): LogFile => ({ path: join(dir, name), out: createWriteStream(join(dir, name)), flushed: 0, saved: 0 })
    this.files = { stdout: file('mflog_stdout'), stderr: file('mflog_stderr') }
  }

  /** Records a line; resolves once the file can take more, which is the backpressure. */
  write(stream: StreamName, line: Buffer | string): Promise<void> | void {
    const f = this.files[stream]
    // Why strictly increasing: Metaflow's `logs` sorts lines by timestamp, then by the random line id,
    // so lines printed within one millisecond (a Date's resolution) came out shuffled.
    this.lastMicros = Math.max(this.now().getTime() * 1000, this.lastMicros + 1)
    const data = mflogLine(line, this.lastMicros)
    // Write callbacks run in order, so `flushed` always ends on a line boundary.
    if (f.out.write(data, (err) => { if (!err) f.flushed += data.length })) return
    return new Promise((resolve) => f.out.once('drain', resolve))
  }

  /** Starts saving both files to the datastore on a schedule while the step runs; save() stops it. */
  saveWhileRunning(store: ObjectStore, task: TaskRef, opts: SaveWhileRunningOptions): void {
    const now = opts.now ?? Date.now
    const delay = opts.delayMs ?? nextSaveDelayMs
    const started = now()
    let warned = false
    let lastSaveMs = 0
    const tick = () => {
      this.saving = (async () => {
        const t0 = now()
        try {
          await this.saveSnapshots(store, task)
        } catch (err) {
          if (!warned) opts.log(`warning: failed to save the task logs to ${store.root} while the step runs: ${(err as Error).message}`)
          warned = true
        }
        lastSaveMs = now() - t0
        if (!this.stopped) schedule()
      })()
    }
    const schedule = () => {
      // unref: a pending save never keeps the agent alive.
      this.timer = setTimeout(tick, delay(now() - started, lastSaveMs))
      this.timer.unref()
    }
    schedule()
  }

  /** Uploads what each file holds for sure, if it grew, through a snapshot: the live file keeps growing. */
  private async saveSnapshots(store: ObjectStore, task: TaskRef): Promise<void> {
    for (const stream of ['stdout', 'stderr'] as const) {
      const f = this.files[stream]
      const upTo = f.flushed
      if (upTo === f.saved) continue
      const snapshot = join(this.dir, `mflog_${stream}.snapshot`)
      try {
        await pipeline(createReadStream(f.path, { start: 0, end: upTo - 1 }), createWriteStream(snapshot))
        await store.putFile(logKey(task, stream), snapshot)
        f.saved = upTo
      } finally {
        await rm(snapshot, { force: true })
      }
    }
  }

  private async stopSaving(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.saving
  }

  async close(): Promise<void> {
    await Promise.all(
      Object.values(this.files).map(({ out }) => new Promise<void>((resolve) => out.end(resolve))),
    )
  }

  /** Uploads both files complete as `<attempt>.task_stdout.log` and `<attempt>.task_stderr.log`. */
  async save(store: ObjectStore, task: TaskRef): Promise<void> {
    await this.stopSaving()
    await this.close()
    for (const stream of ['stdout', 'stderr'] as const) {
      await store.putFile(logKey(task, stream), this.files[stream].path)
    }
  }
}

function logKey(task: TaskRef, stream: StreamName): string {
  return `${taskPrefix(task)}/${task.attempt}.task_${stream}.log`
}
