// Keeps a task's stdout and stderr in Metaflow's mflog format and saves them to the datastore, so `flow.py logs` works.
import { randomUUID } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import type { WriteStream } from 'node:fs'
import { join } from 'node:path'
import type { ObjectStore, TaskRef } from '../datastore/datastore.js'
import { taskPrefix } from '../datastore/datastore.js'

export type StreamName = 'stdout' | 'stderr'

/** One mflog line: `[MFLOG|0|<utc ts>Z|task|<id>]<message>`, as metaflow/mflog/mflog.py writes it. */
export function mflogLine(message: Buffer | string, now: Date): Buffer {
  // Python's %f has microseconds; a Date has milliseconds.
  const ts = `${now.toISOString().slice(0, 23)}000`
  return Buffer.concat([Buffer.from(`[MFLOG|0|${ts}Z|task|${randomUUID()}]`), Buffer.from(message), Buffer.from('\n')])
}

/**
 * Appends each line of the task's two streams to a local file in mflog format. Lines go to
 * disk, not memory, so a step that prints gigabytes costs the agent no more than a buffer.
 */
export class TaskLogs {
  private readonly files: Record<StreamName, { path: string; out: WriteStream }>

  constructor(dir: string, private readonly now: () => Date = () => new Date()) {
    this.files = {
      stdout: { path: join(dir, 'mflog_stdout'), out: createWriteStream(join(dir, 'mflog_stdout')) },
      stderr: { path: join(dir, 'mflog_stderr'), out: createWriteStream(join(dir, 'mflog_stderr')) },
    }
  }

  /** Records a line; resolves once the file can take more, which is the backpressure. */
  write(stream: StreamName, line: Buffer | string): Promise<void> | void {
    const { out } = this.files[stream]
    if (out.write(mflogLine(line, this.now()))) return
    return new Promise((resolve) => out.once('drain', resolve))
  }

  async close(): Promise<void> {
    await Promise.all(
      Object.values(this.files).map(({ out }) => new Promise<void>((resolve) => out.end(resolve))),
    )
  }

  /** Uploads both files as `<attempt>.task_stdout.log` and `<attempt>.task_stderr.log`. */
  async save(store: ObjectStore, task: TaskRef): Promise<void> {
    await this.close()
    for (const stream of ['stdout', 'stderr'] as const) {
      await store.putFile(`${taskPrefix(task)}/${task.attempt}.task_${stream}.log`, this.files[stream].path)
    }
  }
}
