// A fake `uv` that never finishes: it records its own pid and its child's, so tests can look for orphans in /proc.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface FakeInstaller {
  /** put first on PATH: the agent picks uv from PATH before pip */
  bin: string
  /** the file the installer writes "<its pid> <its child's pid>" into once both run */
  marker: string
  env: Record<string, string>
  /** the two pids, once the installer has started */
  pids(): number[] | undefined
}

export function fakeSlowInstaller(dir: string): FakeInstaller {
  const bin = join(dir, 'fake-bin')
  mkdirSync(bin, { recursive: true })
  const marker = join(dir, 'installer-pids')
  const uv = join(bin, 'uv')
  // `sleep` stands for pip's own children (resolvers, build backends): the whole group must go.
  writeFileSync(uv, '#!/bin/sh\nsleep 300 &\necho "$$ $!" > "$FAKE_INSTALLER_MARKER.tmp"\nmv "$FAKE_INSTALLER_MARKER.tmp" "$FAKE_INSTALLER_MARKER"\nwait\n')
  chmodSync(uv, 0o755)
  return {
    bin,
    marker,
    env: { PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_INSTALLER_MARKER: marker },
    pids: () => (existsSync(marker) ? readFileSync(marker, 'utf8').trim().split(/\s+/).map(Number) : undefined),
  }
}

/** True while the process exists and is not a zombie (a zombie has exited; only its parent's bookkeeping remains). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** Waits until none of the pids runs, up to `timeoutMs`; returns those still running. */
export async function waitUntilGone(pids: readonly number[], timeoutMs = 5000): Promise<number[]> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const alive = pids.filter(isRunning)
    if (alive.length === 0 || Date.now() > until) return alive
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function waitForPids(f: FakeInstaller, timeoutMs = 60_000): Promise<number[]> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const p = f.pids()
    if (p) return p
    if (Date.now() > until) throw new Error('the fake installer never started')
    await new Promise((r) => setTimeout(r, 50))
  }
}
