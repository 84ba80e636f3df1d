// The typed configuration of one agent command, and the defaults that flags and the environment override.
import type { OutputName } from './step/outputs.js'
import type { ResolvedSettings, SettingFlags } from './settings.js'

export type Datastore = 'local' | 's3'

export interface FetchSettings {
  url: string
  sha256?: string | undefined
  allowHttp: boolean
  flowFile?: string | undefined
  maxBytes: number
  timeoutMs: number
  attempts: number
}

/** What `init` and `step` share. */
export interface TaskConfig {
  code: FetchSettings
  /** the FlowSpec class; read from the flow file when not given */
  flowName?: string | undefined
  python: string
  runtime: string
  user: string
  datastore: Datastore
  /** the Metaflow datastore root (for local, the `.metaflow` folder itself) */
  datastoreRoot?: string | undefined
  metadata?: string | undefined
  /** every setting with where it came from (settings.ts); user and datastore above are taken from it */
  settings: ResolvedSettings
  runId: string
  tags: string[]
  /** flow parameters for init: name -> value as Metaflow's CLI would take it */
  params: Record<string, string>
  outputDir?: string | undefined
  outputs: { name: OutputName; path: string }[]
  /** where to put the code; a fresh temp folder when not given */
  workDir?: string | undefined
  keepWorkDir: boolean
  graceMs: number
  /** @project's --branch and --production, passed to Metaflow's init and step */
  branch?: string | undefined
  production?: boolean | undefined
}

export interface InitConfig extends TaskConfig {
  command: 'init'
  taskId?: string | undefined
}

export interface StepConfig extends TaskConfig {
  command: 'step'
  step: string
  taskId?: string | undefined
  inputPaths?: string | undefined
  splitIndex?: number | undefined
  splitPath: number[]
  parents: string[]
  /** each --parent-any as given: a comma list of candidate parents, of which one ran */
  parentAny: string[]
  /** --join-foreach as given: one step, or a comma list when the foreach body ends in a switch */
  joinForeach?: string | undefined
  numSplits?: number | undefined
  retryCount: number
  maxUserCodeRetries: number
}

export type AgentConfig = InitConfig | StepConfig

/** What cli.ts produces: a config still waiting for its settings, and the flags that set them. */
/** A config before settings: no user or datastore yet, and a step's attempt may still come from KFP_RETRY_INDEX. */
export type UnresolvedConfig =
  | Omit<InitConfig, 'user' | 'datastore' | 'settings'>
  | (Omit<StepConfig, 'user' | 'datastore' | 'settings' | 'retryCount'> & { retryCount?: number | undefined })
export type ParsedRun = { kind: 'run'; config: UnresolvedConfig; flags: SettingFlags }

export const DEFAULTS = {
  user: 'kfp-user',
  python: 'python3',
  codeMaxBytes: 64 << 20,
  codeTimeoutMs: 5 * 60_000,
  codeAttempts: 6,
  graceMs: 20_000,
  /** input paths longer than this go to Metaflow through --input-paths-filename */
  inputPathsInlineMax: 8 << 10,
} as const

/** Metaflow refuses attempt numbers from this one on (MAX_ATTEMPTS in metaflow_config.py). */
export const METAFLOW_MAX_ATTEMPTS = 6

/**
 * The documented range of every numeric flag. Seconds stay far below Node's longest timer
 * (2^31-1 ms, about 24.8 days), past which a timer fires at once.
 */
export const LIMITS = {
  /** --code-timeout and --grace-period: at most one day */
  maxSeconds: 86_400,
  /** --code-max-bytes: at most 1 TiB */
  maxCodeBytes: 2 ** 40,
  /** --num-splits, and one more than the largest --split-index and --split-path entry */
  maxSplits: 1_000_000,
  /** run-local --parallelism */
  maxParallelism: 1_000,
  /** Linux's MAX_ARG_STRLEN: one argv or environment string, its NUL included */
  maxArgStringBytes: 128 << 10,
  /** all flow parameters together, as environment strings: half of Linux's usual 2 MiB ARG_MAX, which argv and the rest of the environment share */
  maxParamsBytes: 1 << 20,
  /** Metaflow's MAX_TAG_SIZE and MAX_USER_TAG_SET_SIZE (tagging_util.py) */
  maxTagChars: 500,
  maxTags: 50,
} as const
