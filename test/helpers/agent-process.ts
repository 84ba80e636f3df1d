// Runs the built dist/metaflow-kfp as a real process and collects what it printed.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { AGENT } from './paths'

export interface AgentRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface StartedAgent {
  child: ChildProcess
  done: Promise<AgentRun>
  /** resolves when stdout or stderr has printed text matching the pattern */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
}

/** A clean environment for the agent: no AWS or Metaflow settings leak in from the machine. */
export function agentEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AWS_|METAFLOW_|MF_)/.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

export function startAgent(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): StartedAgent {
  const child = spawn(AGENT, args, { cwd: opts.cwd, env: opts.env ?? agentEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
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
  const done = new Promise<AgentRun>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return {
    child,
    done,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout=${stdout} stderr=${stderr}`)), timeoutMs)
        waiters.push({ re, resolve: () => { clearTimeout(timer); resolve() } })
        check()
      }),
  }
}

export function runAgent(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<AgentRun> {
  return startAgent(args, opts).done
}
