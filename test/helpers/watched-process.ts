// Spawns a process, collects what it prints, and lets a test wait until a line it expects appears.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

export interface Finished {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface Watched {
  child: ChildProcess
  done: Promise<Finished>
  /** resolves when stdout or stderr has printed text matching the pattern */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
}

export function startWatched(command: string, args: readonly string[], opts: { cwd?: string | undefined; env?: NodeJS.ProcessEnv | undefined; defaultTimeoutMs?: number } = {}): Watched {
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: { re: RegExp; resolve: () => void }[] = []
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(stdout) || w.re.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  }
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
    check()
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
    check()
  })
  const done = new Promise<Finished>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return {
    child,
    done,
    waitFor: (re, timeoutMs = opts.defaultTimeoutMs ?? 60_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout=${stdout} stderr=${stderr}`)), timeoutMs)
        waiters.push({ re, resolve: () => { clearTimeout(timer); resolve() } })
        check()
      }),
  }
}
