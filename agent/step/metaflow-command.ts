// Builds the argv and environment of `python flow.py … init|step …`; data goes in as argv or env, never through a shell.
import { LIMITS } from '../config.js'
import type { Datastore } from '../config.js'
import { AgentError } from '../errors.js'

export interface TopLevel {
  flowPath: string
  datastore: Datastore
  datastoreRoot: string
  metadata?: string | undefined
  /** @project's branch options, top-level options of every Metaflow command */
  branch?: string | undefined
  production?: boolean | undefined
}

export function topLevelArgs(t: TopLevel): string[] {
  return [
    t.flowPath,
    '--quiet',
    '--no-pylint',
    `--datastore=${t.datastore}`,
    `--datastore-root=${t.datastoreRoot}`,
    ...(t.metadata ? [`--metadata=${t.metadata}`] : []),
    ...(t.branch !== undefined ? [`--branch=${t.branch}`] : []),
    ...(t.production ? ['--production'] : []),
  ]
}

export function initArgs(t: TopLevel, runId: string, taskId: string, tags: readonly string[]): string[] {
  return [...topLevelArgs(t), 'init', '--run-id', runId, '--task-id', taskId, ...tagArgs(tags)]
}

export interface StepArgs {
  step: string
  runId: string
  taskId: string
  /** input paths inline, or a file holding them for very wide joins */
  inputPaths: { inline: string } | { file: string }
  splitIndex?: number | undefined
  retryCount: number
  maxUserCodeRetries: number
  tags: readonly string[]
}

export function stepArgs(t: TopLevel, s: StepArgs): string[] {
  return [
    ...topLevelArgs(t),
    'step',
    s.step,
    '--run-id', s.runId,
    '--task-id', s.taskId,
    ...('inline' in s.inputPaths ? ['--input-paths', s.inputPaths.inline] : ['--input-paths-filename', s.inputPaths.file]),
    ...(s.splitIndex === undefined ? [] : ['--split-index', String(s.splitIndex)]),
    '--retry-count', String(s.retryCount),
    '--max-user-code-retries', String(s.maxUserCodeRetries),
    ...tagArgs(s.tags),
  ]
}

const tagArgs = (t: readonly string[]) => t.flatMap((tag) => ['--tag', tag])

/**
 * The key click matches a parameter by: lower case with `-` as `_` (click's option name), which is
 * also why Metaflow calls parameter names case-insensitive. `Alpha`, `alpha` and `ALPHA` are one.
 */
export function paramKey(name: string): string {
  return name.toLowerCase().replace(/-/g, '_')
}

/** The variable `init` reads a flow parameter from: METAFLOW_INIT_<NAME> (click's auto_envvar_prefix). */
export function initParamVar(name: string): string {
  return `METAFLOW_INIT_${paramKey(name).toUpperCase()}`
}

/** `init` reads each flow parameter from its METAFLOW_INIT_<NAME> variable. */
export function initParamEnv(params: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(params)) env[initParamVar(name)] = value
  return env
}

/**
 * Refuses parameters the kernel would refuse to pass to `init` (spawn E2BIG): one environment
 * string is at most MAX_ARG_STRLEN (128 KiB), and all of them share ARG_MAX with the argv.
 */
export function checkParamSizes(params: Record<string, string>): void {
  const hint = 'pass large data as a file instead: an IncludeFile parameter, or a path or URL the flow reads'
  let total = 0
  for (const [name, value] of Object.entries(params)) {
    const bytes = Buffer.byteLength(`${initParamVar(name)}=${value}`) + 1
    total += bytes
    if (bytes > LIMITS.maxArgStringBytes) {
      throw new AgentError('usage', `failed to accept parameter ${name}: it is ${bytes} bytes as ${initParamVar(name)}, and Linux passes at most ${LIMITS.maxArgStringBytes} bytes (128 KiB, MAX_ARG_STRLEN) in one environment string`, { hint })
    }
  }
  if (total > LIMITS.maxParamsBytes) {
    throw new AgentError('usage', `failed to accept the flow parameters: together they are ${total} bytes, above the agent's limit of ${LIMITS.maxParamsBytes} (1 MiB, half of Linux's usual ARG_MAX)`, { hint })
  }
}

/**
 * The step's environment: the agent's own, plus the user Metaflow requires and unbuffered
 * output so lines stream live.
 */
export function stepEnv(base: NodeJS.ProcessEnv, user: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...base, METAFLOW_USER: user, PYTHONUNBUFFERED: 'x', ...extra }
}
