// What the submit suites share: the agent's environment cut off from this machine's KFP set-up, and reading its output.
import { expect } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { VENV_BIN } from '../helpers/paths'

/** The agent's environment: nothing from this machine's KFP, Metaflow or AWS set-up; the .venv's python3 first on PATH. */
export function env(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e = agentEnv({ HOME: home, PATH: `${VENV_BIN}:${process.env.PATH ?? ''}`, ...extra })
  for (const k of Object.keys(e)) if (/^(KF_|KFP_|KUBERNETES_)/.test(k) && !(k in extra)) delete e[k]
  return e
}

export function runIdOf(r: AgentRun): string {
  const m = /^Run ID: (\S+)$/m.exec(r.stdout)
  if (!m) throw new Error(`no run id in: ${r.stdout} ${r.stderr}`)
  return m[1] as string
}

/** The agent's own failure: exactly one line on stderr. */
export function oneErrorLine(r: AgentRun): string {
  const lines = r.stderr.trim().split('\n').filter((l) => l.includes('error:'))
  expect(lines).toHaveLength(1)
  return lines[0] as string
}

export function noSecrets(r: AgentRun, secrets: string[]): void {
  for (const s of secrets) {
    expect(r.stdout).not.toContain(s)
    expect(r.stderr).not.toContain(s)
  }
}
