// Writes the agent's own stdout and stderr so that a reader going away cannot crash the agent or hang it.

/**
 * A line writer for one of the agent's standard streams. When whatever reads it goes away
 * (`metaflow-kfp config | head -1`, a log collector restarting), the stream fails with
 * EPIPE; without a listener Node throws that from an 'error' event and the agent dies with
 * exit 1, before saving the task logs. Here the first error marks the stream closed and
 * later lines are dropped: the step's result and its task log (kept separately) stand.
 */
export interface LineWriter {
  /** writes the line and a newline; resolves when the stream can take more, or at once if it is closed */
  line(text: Buffer | string): void | Promise<void>
  /** false once the stream failed or was closed */
  readonly open: boolean
}

export function lineWriter(stream: NodeJS.WritableStream & { destroyed?: boolean }): LineWriter {
  let open = true
  const close = () => {
    open = false
  }
  stream.on('error', close)
  stream.on('close', close)
  return {
    get open() {
      return open && !stream.destroyed
    },
    line(text) {
      if (!open || stream.destroyed) return
      const data = typeof text === 'string' ? `${text}\n` : Buffer.concat([text, Buffer.from('\n')])
      let ok: boolean
      try {
        ok = stream.write(data)
      } catch {
        // A write that throws (rather than emitting 'error') is the same closed reader.
        open = false
        return
      }
      if (ok) return
      // Backpressure: wait for 'drain', but also for the failure that means it will never come.
      return new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done)
          stream.off('error', done)
          stream.off('close', done)
          resolve()
        }
        stream.once('drain', done)
        stream.once('error', done)
        stream.once('close', done)
      })
    },
  }
}
