// Hands a step to the Python the loader prestarted (warm-python.py), or says why not, so the step need not wait for a fresh Python's start.
import type { ChildProcess } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Readable, Writable } from 'node:stream'

/** What the loader (scripts/warm-python-loader.mjs) leaves on its module: the child and its interpreter. */
export interface WarmPython {
  python: string
  /** the environment it was started with */
  env: NodeJS.ProcessEnv
  child: ChildProcess
  error?: Error | undefined
  /** when the loader started it, in ms since the agent's start (for METAFLOW_KFP_TIMINGS) */
  at?: number | undefined
}

/**
 * Variables the interpreter reads as it starts, before any of its code runs: these must be the
 * step's. Why the locale ones: with none of them naming a locale, Python sets LC_CTYPE itself
 * (PEP 538), so the running Python's own environment cannot tell what it was started with.
 */
const startupKey = (k: string) => k.startsWith('PYTHON') || k === 'LC_ALL' || k === 'LC_CTYPE' || k === 'LANG'

/** Starts one prestarted Python (the loader's module.startWarmPython); `listFile` names the modules it imports early. */
export type StartWarmPython = (python: string, listFile?: string) => WarmPython

/** How long the Python may take to finish its early imports and answer before it is given up. */
const ANSWER_TIMEOUT_MS = 60_000

/** The loader's prestarted Python, when there is one; the holder forgets it, so it is handed over at most once. */
export function takeWarmPython(holder: { warmPython?: WarmPython | undefined }): WarmPython | undefined {
  const warm = holder.warmPython
  holder.warmPython = undefined
  return warm
}

/**
 * Whether `stepPython` (an absolute path, as the step would start it) is the prestarted
 * interpreter: the same folder, so the same venv, and the same real file.
 */
export function isSameInterpreter(stepPython: string, warm: WarmPython): boolean {
  try {
    return dirname(stepPython) === dirname(warm.python) && realpathSync(stepPython) === realpathSync(warm.python)
  } catch {
    return false
  }
}

/**
 * Sends the step's command to the prestarted Python and resolves to the running step once it
 * answers "ok". Anything else (it refused, died, never answered) resolves to why, with the
 * Python gone, and the caller starts a fresh one.
 */
export async function handOver(warm: WarmPython, step: { args: readonly string[]; env: NodeJS.ProcessEnv; cwd: string }): Promise<ChildProcess | { why: string }> {
  const { child } = warm
  if (warm.error) return gone(warm, `it failed to start: ${warm.error.message}`)
  if (child.exitCode !== null || child.signalCode !== null) return gone(warm, `it exited with ${child.exitCode ?? child.signalCode}`)
  const differs = [...new Set([...Object.keys(warm.env), ...Object.keys(step.env)])].filter(startupKey).sort().find((k) => warm.env[k] !== step.env[k])
  if (differs !== undefined) return gone(warm, `the step's environment differs in ${differs}, which Python read when it started`)
  child.ref()
  for (const s of child.stdio) (s as { ref?: () => void } | null)?.ref?.()
  const answer = readLine(child.stdio[3] as Readable, ANSWER_TIMEOUT_MS)
  const env = Object.fromEntries(Object.entries(step.env).filter((e): e is [string, string] => e[1] !== undefined))
  ;(child.stdin as Writable).end(`${JSON.stringify({ argv: step.args, env, cwd: step.cwd })}\n`)
  const line = await answer
  if (line === 'ok') return child
  return gone(warm, line === undefined ? 'it did not answer' : line.startsWith('no ') ? line.slice(3) : `it answered ${JSON.stringify(line.slice(0, 200))}`)
}

/** Stops the prestarted Python, whatever it is doing, and lets the agent exit without it. */
export function discard(warm: WarmPython): void {
  const { child } = warm
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  for (const s of child.stdio) (s as { destroy?: () => void } | null)?.destroy?.()
  child.unref()
}

function gone(warm: WarmPython, why: string): { why: string } {
  discard(warm)
  return { why }
}

/** The first line on `stream`, without its newline; undefined on EOF, an error or the timeout. */
function readLine(stream: Readable, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = ''
    const done = (value: string | undefined) => {
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onEnd)
      stream.off('close', onEnd)
      resolve(value)
    }
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const nl = text.indexOf('\n')
      if (nl !== -1) done(text.slice(0, nl))
    }
    const onEnd = () => done(undefined)
    const timer = setTimeout(() => done(undefined), timeoutMs)
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('error', onEnd)
    stream.once('close', onEnd)
  })
}
