// Runs one child process in its own process group: live line-by-line output, signal forwarding, 128+N.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { constants } from 'node:os'
import { Transform, Writable } from 'node:stream'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

export interface ProcessResult {
  /** the exit code, or 128+N after a death by signal N, or after an error exit once signal N was forwarded */
  exitCode: number
  /** the signal that killed the child, when one did */
  signal?: NodeJS.Signals | undefined
  /** the signal the agent received and forwarded, when one did */
  forwarded?: NodeJS.Signals | undefined
}

/** Receives each complete line of one stream, without its newline. Returns false to ask for backpressure. */
export type LineSink = (line: Buffer) => void | Promise<void>

export interface RunProcessOptions {
  cwd: string
  env: NodeJS.ProcessEnv
  stdout: LineSink
  stderr: LineSink
  /** after forwarding a signal, how long the group gets before SIGKILL */
  graceMs: number
  /** after the child exits, how long to wait for grandchildren holding its pipes */
  closeWaitMs?: number
  /** the signals to forward; the process object to listen on (tests pass their own) */
  signals?: readonly NodeJS.Signals[]
  signalSource?: NodeJS.EventEmitter
  /**
   * The task's stop signal. Once aborted, nothing is spawned and its reason is thrown: a stop
   * that came between the download and the step would otherwise be lost, and the step run in
   * full. A running child learns of a stop from the forwarded signal instead.
   */
  signal?: AbortSignal | undefined
  /**
   * A child already running this command (the prestarted Python, handed the step), to follow
   * instead of spawning one: a process-group leader with its stdout and stderr piped.
   */
  adopt?: ChildProcess | undefined
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
/** Lines longer than this are cut, so one endless line cannot exhaust memory. */
const MAX_LINE = 1 << 20

/**
 * Spawns `command args` (argv, never a shell) as a process-group leader and streams its
 * output line by line into the sinks with backpressure. SIGTERM/SIGINT/SIGHUP sent to the
 * agent go to the whole group; SIGKILL follows after the grace period.
 */
export async function runProcess(command: string, args: readonly string[], opts: RunProcessOptions): Promise<ProcessResult> {
  if (opts.signal?.aborted) {
    try {
      if (opts.adopt?.pid !== undefined) process.kill(-opts.adopt.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    opts.signal.throwIfAborted()
  }
  const child = opts.adopt ?? spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  const source = opts.signalSource ?? process
  const signals = opts.signals ?? FORWARDED
  let forwarded: NodeJS.Signals | undefined
  let killTimer: NodeJS.Timeout | undefined
  const sendToGroup = (sig: NodeJS.Signals) => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, sig)
    } catch {
      // the group is already gone
    }
  }
  const onSignal = (sig: NodeJS.Signals) => {
    forwarded ??= sig
    sendToGroup(sig)
    killTimer ??= setTimeout(() => sendToGroup('SIGKILL'), opts.graceMs)
    killTimer.unref()
  }
  for (const s of signals) source.on(s, onSignal)

  const spawned = opts.adopt ? Promise.resolve() : new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // An adopted child may already be gone.
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const streams = Promise.all([
    pump(child.stdout as Readable, opts.stdout),
    pump(child.stderr as Readable, opts.stderr),
  ])
  try {
    await spawned
    const { code, signal } = await exited
    // A grandchild that inherited the pipes can keep them open after the child exits.
    const closeWait = opts.closeWaitMs ?? 5000
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.stdout?.destroy()
        child.stderr?.destroy()
        resolve()
      }, closeWait)
    })
    await Promise.race([streams.catch(() => undefined), late])
    clearTimeout(timer)
    let exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0)
    // A step that exited with an error code after the agent forwarded signal N (Python turns
    // SIGINT into exit 1) was stopped by it: 128+N says so. A death by a signal keeps its own
    // 128+N (137 after the grace period's SIGKILL).
    if (forwarded && code !== null && code !== 0) exitCode = 128 + constants.signals[forwarded]
    return { exitCode, signal: signal ?? undefined, forwarded }
  } finally {
    for (const s of signals) source.off(s, onSignal)
    if (killTimer) clearTimeout(killTimer)
  }
}

async function pump(stream: Readable, sink: LineSink): Promise<void> {
  await pipeline(stream, splitLines(), new Writable({
    objectMode: true,
    // Why so few: a line can be MAX_LINE bytes, and Node's default of 16 objects per side let a
    // flood without newlines hold 32 MiB of pieces in flight.
    highWaterMark: 2,
    write(line: Buffer, _enc, done) {
      Promise.resolve(sink(line)).then(() => done(), done)
    },
  }))
}

/** A transform from bytes to complete lines (Buffers without the newline). */
export function splitLines(): Transform {
  // Why a list of pieces: joining the unfinished line with every chunk copied it again per chunk, so
  // a long line without newlines made garbage quadratic in MAX_LINE and the agent's memory spiked.
  let pending: Buffer[] = []
  let pendingBytes = 0
  const take = (tail: Buffer): Buffer => {
    const line = pending.length ? Buffer.concat([...pending, tail], pendingBytes + tail.length) : tail
    pending = []
    pendingBytes = 0
    return line
  }
  return new Transform({
    readableObjectMode: true,
    readableHighWaterMark: 2,
    transform(chunk: Buffer, _enc, done) {
      let buf = chunk
      for (;;) {
        const nl = buf.indexOf(0x0a)
        let part = nl === -1 ? buf : buf.subarray(0, nl)
        while (pendingBytes + part.length > MAX_LINE) {
          const room = MAX_LINE - pendingBytes
          this.push(take(part.subarray(0, room)))
          part = part.subarray(room)
        }
        if (nl !== -1) {
          this.push(take(part))
          buf = buf.subarray(nl + 1)
          continue
        }
        if (part.length) {
          // A copy, so the piece does not pin the whole chunk it came from.
          pending.push(Buffer.from(part))
          pendingBytes += part.length
        }
        break
      }
      done()
    },
    flush(done) {
      if (pendingBytes) this.push(take(Buffer.alloc(0)))
      done()
    },
  })
}
