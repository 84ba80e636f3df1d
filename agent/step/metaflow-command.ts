// Builds the argv and environment of `python flow.py … init|step …`; data goes in as argv or env, never through a shell.
import type { Datastore } from '../config.js'

export interface TopLevel {
  flowPath: string
  datastore: Datastore
  datastoreRoot: string
  metadata?: string | undefined
}

export function topLevelArgs(t: TopLevel): string[] {
  return [
    t.flowPath,
    '--quiet',
    '--no-pylint',
    `--datastore=${t.datastore}`,
    `--datastore-root=${t.datastoreRoot}`,
    ...(t.metadata ? [`--metadata=${t.metadata}`] : []),
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

/** `init` reads each flow parameter from METAFLOW_INIT_<NAME> (click's auto_envvar_prefix). */
export function initParamEnv(params: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(params)) {
    env[`METAFLOW_INIT_${name.toUpperCase().replace(/-/g, '_')}`] = value
  }
  return env
}

/**
 * The step's environment: the agent's own, plus the user Metaflow requires and unbuffered
 * output so lines stream live.
 */
export function stepEnv(base: NodeJS.ProcessEnv, user: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...base, METAFLOW_USER: user, PYTHONUNBUFFERED: 'x', ...extra }
}
