// What every fault case checks the same way: one error line, no stack trace, no secret, nothing partial, no leftovers.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, expect } from 'vitest'
import { startAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { MOTO_KEYS } from '../helpers/moto'
import { REPO } from '../helpers/paths'

export const FAULT_FLOWS = resolve(REPO, 'test', 'faults', 'flows')
export const STAGE_FLOW = resolve(FAULT_FLOWS, 'stage_flow.py')

/** The agent's `error:` lines. */
export function errorLines(r: AgentRun): string[] {
  return `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => /^metaflow-kfp: error:/.test(l))
}

/** Everything the run printed, for failure messages. */
export function shown(r: AgentRun): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-6000)}`
}

/** Exit `code` with exactly one `error:` line in the project's form, and no stack trace. */
export function expectOneError(r: AgentRun, code: number, pattern?: RegExp): string {
  expect(r.code, shown(r)).toBe(code)
  const lines = errorLines(r)
  expect(lines, shown(r)).toHaveLength(1)
  const line = lines[0] as string
  // "failed to <verb> <object>: <cause> (<what to do>)"; "refusing to" is the agent's word for a deliberate no.
  expect(line, shown(r)).toMatch(/^metaflow-kfp: error: (failed|refusing) to \S+ .*\(.+\)$/)
  if (pattern) expect(line, shown(r)).toMatch(pattern)
  expectNoStack(r)
  return line
}

export function expectNoStack(r: AgentRun): void {
  const agentLines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => !/^\[MFLOG|/.test(l))
  expect(agentLines.filter((l) => /^\s+at .+[:(].*\d+:\d+\)?$/.test(l)), shown(r)).toEqual([])
}

/** No source key, role key or session token in anything printed or written under `dirs`. */
export function expectNoSecrets(runs: AgentRun[], dirs: string[] = [], extra: string[] = []): void {
  const texts = runs.flatMap((r) => [r.stdout, r.stderr])
  for (const d of dirs) {
    if (!existsSync(d)) continue
    for (const f of readdirSync(d, { recursive: true, withFileTypes: true })) {
      if (f.isFile()) texts.push(readFileSync(join(f.parentPath, f.name)).toString('latin1'))
    }
  }
  const all = texts.join('\n')
  for (const secret of [MOTO_KEYS.AWS_SECRET_ACCESS_KEY, MOTO_KEYS.AWS_ACCESS_KEY_ID, ...extra]) expect(all.includes(secret), `a secret was printed: ${secret.slice(0, 4)}…`).toBe(false)
  // moto's role keys start with ASIA like real STS keys; its session tokens with FQoGZXIvYXdzE.
  expect(all).not.toMatch(/ASIA[A-Z0-9]{12,}/)
  expect(all).not.toMatch(/FQoGZXIvYXdzE/)
}

/** The output files a pipeline would read: none at all, or every one of them complete. */
export function outputsIn(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {}
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]))
}

export function expectNoOutputs(dir: string): void {
  expect(outputsIn(dir)).toEqual({})
}

/** All three outputs with the values of a finished non-foreach task, or nothing: never a part, never a temp file. */
export function expectAllOrNothing(dir: string, taskId: string): 'all' | 'none' {
  const got = outputsIn(dir)
  if (Object.keys(got).length === 0) return 'none'
  expect(got).toEqual({ task_id: taskId, split_count: '0', splits: '[]' })
  return 'all'
}

/** Processes whose command line mentions `needle` (a temp dir unique to the case), other than this test process. */
export function processesMentioning(needle: string): string[] {
  const found: string[] = []
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8')
      if (cmd.includes(needle) || env.includes(needle)) found.push(`${pid}: ${cmd.slice(0, 200)}`)
    } catch {
      // gone, or not ours to read
    }
  }
  return found
}

/** Waits until no process mentions `needle`, up to `ms`; returns the ones still there. */
export async function leftoverProcesses(needle: string, ms = 3000): Promise<string[]> {
  const until = Date.now() + ms
  for (;;) {
    const left = processesMentioning(needle)
    if (left.length === 0 || Date.now() > until) return left
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Kills what a failed case left behind, so one failure does not slow the cases after it. */
export function killAll(needle: string): void {
  for (const p of processesMentioning(needle)) {
    try {
      process.kill(Number(p.split(':')[0]), 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

/** Files left anywhere under `dir` (names relative to it). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, withFileTypes: true }).map((f) => join(f.parentPath, f.name).slice(dir.length + 1))
}

/** The agent's peak resident memory is read by the test from /proc while it runs. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/** `python -c` with the project's venv, for small checks through Metaflow's own client. */
export function python(code: string, args: string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(resolve(REPO, '.venv', 'bin', 'python'), ['-c', code, ...args], { env, encoding: 'utf8', timeout: 60_000 })
}

export interface BoundedRun extends AgentRun {
  /** true when the agent was still running at the bound and was killed */
  timedOut: boolean
  ms: number
}

/**
 * Runs the agent with its own TMPDIR (so its work dir and every child can be found) and kills
 * it and everything it started if it is still running after `boundMs`: no case can hang.
 */
export async function runBounded(args: readonly string[], opts: { env: NodeJS.ProcessEnv; tmp: string; boundMs: number; cwd?: string }): Promise<BoundedRun> {
  const started = Date.now()
  const agent = startAgent(args, { env: { ...opts.env, TMPDIR: opts.tmp }, cwd: opts.cwd })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    agent.child.kill('SIGKILL')
    killAll(opts.tmp)
  }, opts.boundMs)
  try {
    const r = await agent.done
    return { ...r, timedOut, ms: Date.now() - started }
  } finally {
    clearTimeout(timer)
    if (timedOut) killAll(opts.tmp)
  }
}

/**
 * Fresh folders for cases that run concurrently: all removed after the file, not after each
 * case (useTempDir's afterEach would delete a folder another running case still uses).
 */
export function useCaseDirs(prefix: string): () => string {
  const dirs: string[] = []
  afterAll(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix))
    dirs.push(d)
    return d
  }
}
