// Keeps a few prestarted Pythons ready for run-local's tasks, so a task's step skips most of Python's start, as a pod's does.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WARM_MODULES_SCRIPT, interpreterArg, pythonPath, runCommand } from '../step/runtime.js'
import { discard } from '../step/warm-python.js'
import type { StartWarmPython, WarmPython } from '../step/warm-python.js'

export interface WarmPoolOptions {
  start: StartWarmPython
  /** the tasks' interpreter, as --python gives it */
  python: string
  env: NodeJS.ProcessEnv
  cwd: string
  /** where the module list goes; the caller removes it */
  workDir: string
  /** how many to keep ready */
  size: number
  log: (line: string) => void
}

/**
 * A pool of `size` prestarted Pythons. It first asks the interpreter once which modules
 * importing Metaflow brings in (one Python start, beside the run's first task), then keeps
 * `size` Pythons importing them; each take() hands one over and starts the next. Why a few and
 * not one per task: an unused one costs its imports' CPU, and the run's last ones go unused.
 */
export class WarmPool {
  private readonly ready: WarmPython[] = []
  private closed = false
  private readonly stop = new AbortController()
  private listFile: string | undefined
  private python: string | undefined

  private constructor(private readonly o: WarmPoolOptions) {}

  /** The pool, filling in the background; take() returns nothing until it has filled. */
  static open(o: WarmPoolOptions): WarmPool {
    const pool = new WarmPool(o)
    pool.fill().catch((err: unknown) => {
      if (!pool.closed) o.log(`tasks start Python afresh: failed to prepare prestarted Pythons: ${(err as Error).message}`)
    })
    return pool
  }

  /** A prestarted Python for one task's step, or undefined when none is ready; its place is refilled. */
  take(): WarmPython | undefined {
    while (this.ready.length > 0) {
      const warm = this.ready.shift() as WarmPython
      this.refill()
      if (!warm.error && warm.child.exitCode === null && warm.child.signalCode === null) return warm
      discard(warm)
    }
    return undefined
  }

  /** Stops every Python still waiting; the pool starts no more. */
  close(): void {
    this.closed = true
    this.stop.abort(new Error('run-local ended'))
    for (const warm of this.ready.splice(0)) discard(warm)
  }

  private async fill(): Promise<void> {
    const { python: given, env, cwd } = this.o
    // Resolved as the step resolves --python (run-step.ts prepare), so the two compare equal.
    const python = await pythonPath(interpreterArg(given, cwd), env)
    if (!python) return
    const { stdout } = await runCommand(python, ['-c', WARM_MODULES_SCRIPT], { env, timeoutMs: 120_000, signal: this.stop.signal })
    if (this.closed) return
    const list = join(this.o.workDir, 'warm-modules.json')
    await writeFile(list, stdout)
    this.python = python
    this.listFile = list
    for (let i = 0; i < this.o.size; i++) this.refill()
  }

  private refill(): void {
    if (this.closed || this.python === undefined) return
    try {
      this.ready.push(this.o.start(this.python, this.listFile))
    } catch (err) {
      this.o.log(`warning: failed to prestart ${this.python}: ${(err as Error).message}`)
    }
  }
}
