// Runs the built dist/metaflow-kfp as a real process and collects what it printed.
import { AGENT } from './paths'
import { startWatched } from './watched-process'
import type { Finished, Watched } from './watched-process'

export type AgentRun = Finished
export type StartedAgent = Watched

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
  return startWatched(AGENT, args, { cwd: opts.cwd, env: opts.env ?? agentEnv() })
}

export function runAgent(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<AgentRun> {
  return startAgent(args, opts).done
}
