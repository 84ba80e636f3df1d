// Signals and exit codes, through the built agent and a real Metaflow step.
import { EventEmitter } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runProcess, splitLines } from '../../agent/step/step-process'
import { agentEnv, startAgent } from '../helpers/agent-process'
import { FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

function sleepyStep(dir: string, extraEnv: Record<string, string> = {}, extraArgs: string[] = []) {
  return startAgent([
    'step', 'start',
    '--code-url', flowUrl('sleepy_flow.py', FIXTURE_FLOWS),
    '--python', PYTHON,
    '--datastore-root', join(dir, '.metaflow'),
    '--run-id', 'kfp-sig',
    '--output-dir', join(dir, 'out'),
    ...extraArgs,
  ], { env: agentEnv({ SIGNAL_MARKER: join(dir, 'signal'), ...extraEnv }) })
}

describe('signals sent to the agent', () => {
  it('reach the Python step, and the agent exits 128+15 with no outputs', async () => {
    const dir = tempDir()
    const agent = sleepyStep(dir)
    await agent.waitFor(/READY/)
    agent.child.kill('SIGTERM')
    const r = await agent.done
    expect(readFileSync(join(dir, 'signal'), 'utf8')).toBe('SIGTERM')
    expect(r.code).toBe(143)
    expect(r.stderr).toMatch(/step start was killed by SIGTERM \(exit 143\)/)
    expect(existsSync(join(dir, 'out'))).toBe(false)
  })

  it('end a step that ignores SIGTERM with SIGKILL after the grace period', async () => {
    const dir = tempDir()
    const agent = sleepyStep(dir, { IGNORE_SIGTERM: '1' }, ['--grace-period', '1'])
    await agent.waitFor(/READY/)
    const sent = Date.now()
    agent.child.kill('SIGTERM')
    const r = await agent.done
    expect(readFileSync(join(dir, 'signal'), 'utf8')).toBe('SIGTERM')
    expect(r.code).toBe(137)
    expect(Date.now() - sent).toBeGreaterThanOrEqual(900)
  })
})

describe('runProcess', () => {
  const sinks = () => {
    const out: string[] = []
    const err: string[] = []
    return { out, err, stdout: (l: Buffer) => void out.push(l.toString()), stderr: (l: Buffer) => void err.push(l.toString()) }
  }

  it("passes the child's exit code through", async () => {
    const s = sinks()
    const r = await runProcess(PYTHON, ['-c', 'import sys; print("a"); print("b", file=sys.stderr); sys.exit(7)'], { cwd: tempDir(), env: process.env, graceMs: 1000, ...s })
    expect(r.exitCode).toBe(7)
    expect(s.out).toEqual(['a'])
    expect(s.err).toEqual(['b'])
  })

  it('reports a death by signal N as 128+N', async () => {
    const r = await runProcess(PYTHON, ['-c', 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)'], { cwd: tempDir(), env: process.env, graceMs: 1000, ...sinks() })
    expect(r.exitCode).toBe(128 + 11)
    expect(r.signal).toBe('SIGSEGV')
  })

  it('does not hang when an orphaned grandchild keeps the pipes open', async () => {
    const started = Date.now()
    const r = await runProcess('sh', ['-c', 'sleep 30 & echo done'], { cwd: tempDir(), env: process.env, graceMs: 1000, closeWaitMs: 300, ...sinks() })
    expect(r.exitCode).toBe(0)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('starts nothing once the task was stopped (a stop between the download and the step was lost, and the step ran in full)', async () => {
    const dir = tempDir()
    const stop = new AbortController()
    const reason = new Error('stopped by SIGTERM')
    stop.abort(reason)
    const marker = join(dir, 'ran')
    const err = await runProcess('sh', ['-c', `touch ${marker}`], { cwd: dir, env: process.env, graceMs: 1000, signal: stop.signal, ...sinks() }).catch((e: unknown) => e)
    expect(err).toBe(reason)
    await new Promise((r) => setTimeout(r, 200))
    expect(existsSync(marker)).toBe(false)
  })

  it("reports 128+N when the child exits with an error after signal N was forwarded (SIGINT gave Python's exit 1)", async () => {
    const source = new EventEmitter()
    const s = sinks()
    const script = 'import time\nprint("READY", flush=True)\ntime.sleep(30)'
    const running = runProcess(PYTHON, ['-c', script], {
      cwd: tempDir(), env: process.env, graceMs: 5000, signalSource: source,
      stdout: (l) => {
        s.stdout(l)
        if (l.toString() === 'READY') source.emit('SIGINT', 'SIGINT')
      },
      stderr: s.stderr,
    })
    const r = await running
    expect(s.err.join('\n')).toMatch(/KeyboardInterrupt/)
    expect(r.forwarded).toBe('SIGINT')
    expect(r.exitCode).toBe(130)
  })

  it('keeps lines whole however the bytes arrive and cuts none short', async () => {
    const s = sinks()
    const script = 'import sys, time\nfor i in range(3):\n    sys.stdout.write("part%d-" % i); sys.stdout.flush(); time.sleep(0.05)\nprint("end")\nprint("x" * 200000)'
    await runProcess(PYTHON, ['-c', script], { cwd: tempDir(), env: process.env, graceMs: 1000, ...s })
    expect(s.out[0]).toBe('part0-part1-part2-end')
    expect(s.out[1]).toHaveLength(200000)
  })
})

describe('splitting output into lines', () => {
  it('cuts a line longer than 1 MiB into 1 MiB pieces without adding or losing a byte, and keeps a line of exactly 1 MiB whole', async () => {
    const MiB = 1 << 20
    const exact = Buffer.alloc(MiB, 0x61)
    const long = Buffer.alloc(2 * MiB + 5, 0x62)
    const input = Buffer.concat([exact, Buffer.from('\n'), long, Buffer.from('\nend')])
    const split = splitLines()
    const lines: Buffer[] = []
    split.on('data', (l: Buffer) => lines.push(l))
    const done = new Promise((r) => split.on('end', r))
    // Chunks of odd sizes, as a pipe delivers them.
    for (let i = 0; i < input.length; i += 65_537) split.write(input.subarray(i, i + 65_537))
    split.end()
    await done
    expect(lines.map((l) => l.length)).toEqual([MiB, MiB, MiB, 5, 3])
    expect(Buffer.concat(lines).equals(Buffer.concat([exact, long, Buffer.from('end')]))).toBe(true)
  })
})
