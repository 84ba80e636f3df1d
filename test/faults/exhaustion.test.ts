// Resource exhaustion: a step that prints 200 MiB, one endless line, a parameter at the kernel's argument limit; the agent's memory stays bounded.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import { localClientEnv } from '../helpers/metaflow-client'
import { AGENT, PYTHON } from '../helpers/paths'
import { STAGE_FLOW, errorLines, expectNoStack, filesUnder, killAll, python, rssKiB, useCaseDirs } from './fault-kit'

const caseDir = useCaseDirs('mfkfp-exhaust-')
const MiB = 1 << 20
/** The agent's budget: DESIGN.md allows 100 MB while a step streams 1 GB; this leaves room for a loaded machine. */
const RSS_LIMIT_KIB = 150 * 1024

interface Streamed {
  code: number | null
  signal: NodeJS.Signals | null
  /** bytes the agent wrote to its stdout, counted, not kept */
  stdoutBytes: number
  /** the longest stdout line the agent wrote */
  longestLine: number
  stderr: string
  peakRssKiB: number
  dir: string
}

/**
 * Runs `step start` with stdout read through a pipe the way a container runtime reads it, counting
 * bytes instead of keeping them, and samples the agent's resident memory until it exits.
 */
async function stream(env: Record<string, string>, extra: string[] = [], boundMs = 240_000): Promise<Streamed> {
  const dir = caseDir()
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  const child = spawn(AGENT, [
    'step', 'start', '--code-url', `file://${STAGE_FLOW}`, '--python', PYTHON, '--run-id', 'kfp-exhaust',
    '--datastore-root', join(dir, '.metaflow'), '--output-dir', join(dir, 'outputs'), ...extra,
  ], { cwd: dir, env: agentEnv({ HOME: dir, TMPDIR: tmp, ...env }), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdoutBytes = 0
  let longestLine = 0
  let current = 0
  child.stdout.on('data', (d: Buffer) => {
    stdoutBytes += d.length
    let from = 0
    for (let nl = d.indexOf(10); nl !== -1; nl = d.indexOf(10, from)) {
      longestLine = Math.max(longestLine, current + nl - from)
      current = 0
      from = nl + 1
    }
    current += d.length - from
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 1 * MiB) stderr += d.toString()
  })
  let peakRssKiB = 0
  const sampler = setInterval(() => {
    if (child.pid) peakRssKiB = Math.max(peakRssKiB, rssKiB(child.pid) ?? 0)
  }, 25)
  const guard = setTimeout(() => {
    child.kill('SIGKILL')
    killAll(tmp)
  }, boundMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])))
  clearInterval(sampler)
  clearTimeout(guard)
  killAll(tmp)
  return { code, signal, stdoutBytes, longestLine: Math.max(longestLine, current), stderr, peakRssKiB, dir }
}

const shownS = (s: Streamed) => `exit ${s.code} signal ${s.signal} stdout ${s.stdoutBytes} bytes peak RSS ${s.peakRssKiB} KiB\n${s.stderr.slice(-4000)}`

/** Metaflow's client says whether the task succeeded and how long its payload is; the saved log is measured on disk. */
function judged(dir: string): { successful: boolean; payload: number; savedStdoutBytes: number } {
  const text = python(`
import json, sys
from metaflow import Task, namespace
namespace(None)
t = Task('StageFlow/kfp-exhaust/start/start')
print(json.dumps({'successful': t.successful, 'payload': len(t.data.payload)}))
`, [], { ...localClientEnv(dir), METAFLOW_USER: 'test' })
  // Reading 200 MiB back through the client takes minutes; the file it would read is right here.
  const log = join(dir, '.metaflow', 'StageFlow', 'kfp-exhaust', 'start', 'start', '0.task_stdout.log')
  return { ...(JSON.parse(text) as { successful: boolean; payload: number }), savedStdoutBytes: existsSync(log) ? statSync(log).size : 0 }
}

describe('a step that floods its output', () => {
  it('of 200 MiB in 1 KB lines is passed on whole and saved, with the agent under 150 MiB of memory', async () => {
    const s = await stream({ FAULT_PRINT_BYTES: String(200 * MiB), FAULT_LINE_BYTES: '1024' })
    expect(s.code, shownS(s)).toBe(0)
    expect(s.stdoutBytes, shownS(s)).toBeGreaterThanOrEqual(200 * MiB)
    expect(s.peakRssKiB, shownS(s)).toBeGreaterThan(0)
    expect(s.peakRssKiB, shownS(s)).toBeLessThan(RSS_LIMIT_KIB)
    expect(filesUnder(join(s.dir, 'tmp'))).toEqual([])
    const saved = judged(s.dir)
    expect(saved.successful).toBe(true)
    expect(saved.savedStdoutBytes).toBeGreaterThanOrEqual(200 * MiB)
  }, 300_000)

  it('in one 64 MiB line without a newline is passed on in bounded pieces, with the agent under 150 MiB of memory', async () => {
    const s = await stream({ FAULT_PRINT_BYTES: String(64 * MiB), FAULT_LINE_BYTES: String(64 * MiB) })
    expect(s.code, shownS(s)).toBe(0)
    expect(s.stdoutBytes, shownS(s)).toBeGreaterThanOrEqual(64 * MiB - 1)
    // The step's bytes all arrive; no single line the agent writes holds the whole flood.
    expect(s.longestLine, shownS(s)).toBeLessThanOrEqual(8 * MiB)
    expect(s.peakRssKiB, shownS(s)).toBeLessThan(RSS_LIMIT_KIB)
    const saved = judged(s.dir)
    expect(saved.successful).toBe(true)
    expect(saved.savedStdoutBytes).toBeGreaterThanOrEqual(64 * MiB)
  }, 300_000)
})

describe('a parameter at the kernel limit of one argument', () => {
  it('reaches the flow whole, or is refused with exit 64 and one line, never spawn E2BIG', async () => {
    // Linux caps one argv or environment string at 128 KiB (MAX_ARG_STRLEN); this one is a byte under it.
    const arg = `payload=${'p'.repeat(128 * 1024 - 1 - 'payload='.length)}`
    const s = await stream({}, ['--param', arg], 120_000)
    expect(s.stderr, shownS(s)).not.toMatch(/E2BIG/)
    if (s.code === 64) {
      expect(errorLines({ code: s.code, signal: s.signal, stdout: '', stderr: s.stderr }), shownS(s)).toHaveLength(1)
    } else {
      expect(s.code, shownS(s)).toBe(0)
      expect(judged(s.dir).payload).toBe(arg.length - 'payload='.length)
    }
    expectNoStack({ code: s.code, signal: s.signal, stdout: '', stderr: s.stderr })
    expect(statSync(s.dir).isDirectory()).toBe(true)
  }, 180_000)
})
