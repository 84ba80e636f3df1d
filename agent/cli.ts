// Turns argv into a typed config; no side effects beyond yargs printing --help and --version.
import yargs from 'yargs'
import type { Argv } from 'yargs'
import { AGENT_VERSION, RUNTIME_PIN } from './build-info.js'
import { DEFAULTS, LIMITS, METAFLOW_MAX_ATTEMPTS } from './config.js'
import type { ParsedRun, UnresolvedConfig } from './config.js'
import { AgentError, redactUrl } from './errors.js'
import { checkParamSizes, paramKey } from './step/metaflow-command.js'
import { isOutputName, OUTPUT_NAMES } from './step/outputs.js'
import type { OutputName } from './step/outputs.js'
import type { RunLocalConfig } from './local/local-runner.js'
import type { GenerateConfig } from './pipelines/generate.js'
import type { KfpConfig } from './kfp-api/submit.js'
import { checkCookie } from './kfp-api/auth.js'

import type { SettingFlags } from './settings.js'

export type ParsedCommand = ParsedRun | { kind: 'config'; flags: SettingFlags } | { kind: 'run-local'; config: RunLocalConfig } | { kind: 'generate'; config: GenerateConfig } | { kind: 'kfp'; config: KfpConfig } | { kind: 'printed' }

const usageError = (message: string, hint = 'run metaflow-kfp --help') => new AgentError('usage', message, { hint })

/** The options that set a Metaflow/AWS setting; each falls back to the environment, then the profile (settings.ts). */
function settingOptions(y: Argv) {
  return y
    .option('user', { type: 'string', group: 'Settings (flag > environment > profile):', describe: `METAFLOW_USER for the step (default: ${DEFAULTS.user})` })
    .option('datastore', { type: 'string', choices: ['local', 's3'], group: 'Settings (flag > environment > profile):', describe: 'METAFLOW_DEFAULT_DATASTORE (default: local)' })
    .option('datastore-root', { type: 'string', group: 'Settings (flag > environment > profile):', describe: "the datastore root: for s3 METAFLOW_DATASTORE_SYSROOT_S3; for local the .metaflow folder (default: Metaflow's own rule)" })
    .option('metadata', { type: 'string', group: 'Settings (flag > environment > profile):', describe: 'METAFLOW_DEFAULT_METADATA: local or service (default: local)' })
    .option('role-arn', { type: 'string', group: 'Settings (flag > environment > profile):', describe: 'METAFLOW_AWS_ARN: the IAM role the step runs as; assumed via STS and served to the step' })
    .option('aws-region', { type: 'string', group: 'Settings (flag > environment > profile):', describe: 'METAFLOW_AWS_S3_REGION (default: $AWS_REGION, else us-east-1)' })
    .option('s3-endpoint-url', { type: 'string', group: 'Settings (flag > environment > profile):', describe: 'METAFLOW_S3_ENDPOINT_URL, for S3-compatible stores' })
}

function settingFlags(a: Record<string, unknown>): SettingFlags {
  return {
    METAFLOW_USER: a.user as string | undefined,
    METAFLOW_DEFAULT_DATASTORE: a.datastore as string | undefined,
    METAFLOW_DEFAULT_METADATA: a.metadata as string | undefined,
    METAFLOW_AWS_ARN: a.roleArn as string | undefined,
    METAFLOW_AWS_S3_REGION: a.awsRegion as string | undefined,
    METAFLOW_S3_ENDPOINT_URL: a.s3EndpointUrl as string | undefined,
    datastoreRoot: a.datastoreRoot as string | undefined,
  }
}

function taskOptions(y: Argv) {
  return settingOptions(y)
    .option('code-url', { type: 'string', demandOption: true, group: 'Code:', describe: 'where the flow is: https://, http:// (pinned), file://, s3:// (a .py file or a .tar.gz package)' })
    .option('code-sha256', { type: 'string', group: 'Code:', describe: 'refuse to run unless the downloaded bytes have this sha256' })
    .option('allow-insecure-http', { type: 'boolean', default: false, group: 'Code:', describe: 'allow http:// without --code-sha256' })
    .option('flow-file', { type: 'string', group: 'Code:', describe: "the flow's path inside a package (default: its only top-level .py)" })
    .option('flow-name', { type: 'string', group: 'Code:', describe: 'the FlowSpec class (default: read from the flow file)' })
    .option('code-max-bytes', { type: 'number', default: DEFAULTS.codeMaxBytes, group: 'Code:', describe: 'refuse code larger than this many bytes, downloaded or unpacked (1 to 2^40)' })
    .option('code-timeout', { type: 'number', default: DEFAULTS.codeTimeoutMs / 1000, group: 'Code:', describe: 'seconds for all download attempts together (above 0, up to 86400)' })
    .option('python', { type: 'string', default: DEFAULTS.python, group: 'Runtime:', describe: 'the Python interpreter that runs the flow' })
    .option('runtime', { type: 'string', default: RUNTIME_PIN, group: 'Runtime:', describe: 'the pinned Metaflow, name==version; installed (uv, else pip) when missing' })
    .option('run-id', { type: 'string', demandOption: true, group: 'Task:', describe: 'the Metaflow run id, e.g. kfp-<pipeline run uuid>' })
    .option('tag', { type: 'string', array: true, default: [], group: 'Task:', describe: 'a Metaflow tag (repeatable)' })
    .option('param', { type: 'string', array: true, default: [], group: 'Task:', describe: 'a flow parameter for init, NAME=VALUE (repeatable)' })
    .option('params-json', { type: 'string', group: 'Task:', describe: 'flow parameters for init as one JSON object' })
    .option('output-dir', { type: 'string', group: 'Outputs:', describe: 'write task_id, split_count and splits as files in this folder, and switch_step for a switch step' })
    .option('output', { type: 'string', array: true, default: [], group: 'Outputs:', describe: `write one output to a path, NAME=PATH (repeatable; ${OUTPUT_NAMES.join(', ')})` })
    .option('work-dir', { type: 'string', group: 'Process:', describe: 'the folder the task makes its own work folder in (default: the temp dir); nothing else in it is touched' })
    .option('keep-work-dir', { type: 'boolean', default: false, group: 'Process:', describe: "keep the task's work folder instead of removing it at the end" })
    .option('branch', { type: 'string', group: 'Task:', describe: "@project's branch, passed to Metaflow as --branch (as generate writes it)" })
    .option('production', { type: 'boolean', default: false, group: 'Task:', describe: "@project's production branch, passed to Metaflow as --production" })
    .option('grace-period', { type: 'number', default: DEFAULTS.graceMs / 1000, group: 'Process:', describe: 'seconds between forwarding SIGTERM and sending SIGKILL (0 to 86400)' })
}

export function buildParser(argv: readonly string[]) {
  return yargs([...argv])
    .scriptName('metaflow-kfp')
    .usage('$0 <command> [options]\n\nRuns one Metaflow step as a Kubeflow Pipelines task.')
    .command('step <step>', 'run one step of the flow', (y) =>
      taskOptions(y)
        .positional('step', { type: 'string', describe: 'the step name' })
        .option('task-id', { type: 'string', group: 'Task:', describe: 'the task id (default: derived from the step and --split-path/--split-index)' })
        .option('input-paths', { type: 'string', group: 'Task:', describe: "the parents, in Metaflow's syntax (default: derived from --parent or --join-foreach)" })
        .option('parent', { type: 'string', array: true, default: [], group: 'Task:', describe: 'a parent step by name (repeatable)' })
        .option('parent-any', { type: 'string', array: true, default: [], group: 'Task:', describe: 'candidate parents A,B[,C…], of which exactly one ran here, found in the datastore, e.g. the cases of a switch (repeatable: one group each)' })
        .option('join-foreach', { type: 'string', group: 'Task:', describe: 'this step joins all --num-splits tasks of the named step; A,B when the foreach body ends in a switch: per split, whichever ran' })
        .option('num-splits', { type: 'number', group: 'Task:', describe: "with --join-foreach: the foreach step's split_count (1 to 1000000)" })
        .option('split-index', { type: 'number', group: 'Task:', describe: 'the index of this task in the foreach right above it' })
        .option('split-path', { type: 'string', default: '', group: 'Task:', describe: 'indices of the enclosing foreaches above --split-index, comma-separated, outermost first' })
        .option('retry-count', { type: 'number', group: 'Task:', describe: 'the attempt number, e.g. {{retries}} (default: $KFP_RETRY_INDEX, else 0)' })
        .option('max-user-code-retries', { type: 'number', default: 0, group: 'Task:', describe: "Metaflow's --max-user-code-retries" })
        .example('$0 step start --code-url https://example.com/flow.py --run-id kfp-1 --output-dir /tmp/outputs', 'the start step; runs init first')
        .example('$0 step explore --code-url … --run-id kfp-1 --parent start --split-index 2', 'the third split of a foreach')
        .example('$0 step join --code-url … --run-id kfp-1 --join-foreach explore --num-splits 4', 'a foreach join')
        .example('$0 step after --code-url … --run-id kfp-1 --parent-any case_a,case_b', "the step a switch's cases converge on"),
    )
    .command('init', "create the run's parameters task", (y) =>
      taskOptions(y)
        .option('task-id', { type: 'string', group: 'Task:', describe: 'the parameters task id (default: params)' })
        .example('$0 init --code-url file:///flows/params.py --run-id kfp-1 --param alpha=0.1', 'persist flow parameters'),
    )
    .command('config', "print the resolved settings, then the KFP keys submit reads, and where each came from (secrets masked)", (y) =>
      settingOptions(y).example('METAFLOW_PROFILE=sree $0 config', "show what the profile ~/.metaflowconfig/config_sree.json resolves to"),
    )
    .command('run-local <template>', 'run a KFP v2 or Argo template on this machine, with the local datastore', (y) =>
      y
        .positional('template', { type: 'string', describe: 'a pipeline template: KFP v2 pipeline YAML or Argo Workflow YAML' })
        .option('code-url', { type: 'string', demandOption: true, describe: "where the flow is; becomes the template's code_url (code-url) input" })
        .option('param', { type: 'string', array: true, default: [], describe: 'a pipeline input or workflow parameter, NAME=VALUE (repeatable)' })
        .option('parallelism', { type: 'number', default: 16, describe: "how many tasks run at once (default: Metaflow's own --max-workers)" })
        .option('python', { type: 'string', default: DEFAULTS.python, describe: 'the Python interpreter that runs the flow' })
        .option('datastore-root', { type: 'string', describe: 'the local datastore root, the .metaflow folder (default: $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow, else the nearest .metaflow above, else ./.metaflow)' })
        .option('prestart', { type: 'number', describe: "how many Pythons to keep started for the next tasks' steps, 0 for none (default: the parallelism, at most the cores)" })
        .example('$0 run-local pipeline-templates/foreach_flow.kfp.yaml --code-url file://$PWD/pipeline-templates/flows/foreach_flow.py', 'run the foreach template'),
    )
    .command('generate <flow>', 'write a KFP v2 pipeline (or an Argo Workflow) that runs the flow, read through Metaflow', (y) =>
      settingOptions(y)
        .positional('flow', { type: 'string', describe: 'the flow file, e.g. flow.py' })
        .option('code-url', { type: 'string', group: 'Pipeline:', describe: "where tasks fetch the flow, the code_url input's default (default: the flow's folder, packaged into the datastore and pinned by sha256)" })
        .option('flow-file', { type: 'string', group: 'Pipeline:', describe: "the flow's path inside a .tar.gz package at --code-url" })
        .option('flow-name', { type: 'string', group: 'Pipeline:', describe: 'the FlowSpec class, when the file has several' })
        .option('image', { type: 'string', group: 'Pipeline:', describe: 'the agent image (default: $METAFLOW_KFP_IMAGE, else the profile, else metaflow-kfp:<version>)' })
        .option('format', { type: 'string', choices: ['kfp', 'argo'], default: 'kfp', group: 'Pipeline:', describe: 'kfp: KFP v2 IR; argo: an Argo Workflow (KFP v1, plain Argo)' })
        .option('output', { type: 'string', group: 'Pipeline:', describe: 'write to this file (atomically) instead of stdout' })
        .option('name', { type: 'string', group: 'Pipeline:', describe: 'the pipeline name (default: metaflow-<flow name>)' })
        .option('python', { type: 'string', default: DEFAULTS.python, group: 'Pipeline:', describe: 'the Python interpreter with Metaflow that reads the flow' })
        .option('param', { type: 'string', array: true, default: [], group: 'Pipeline:', describe: "a parameter's default in the pipeline, NAME=VALUE (repeatable); for an IncludeFile, a file to store" })
        .option('branch', { type: 'string', group: 'Pipeline:', describe: "@project's branch for every task, as python flow.py --branch NAME (default: the user's branch, user.<name>)" })
        .option('production', { type: 'boolean', default: false, group: 'Pipeline:', describe: "@project's production branch for every task, as python flow.py --production" })
        .example('$0 generate flow.py --code-url https://example.com/flow.py --output flow.kfp.yaml', 'a KFP v2 pipeline for flow.py')
        .example('$0 generate flow.py --code-url … --format argo', 'the same as an Argo Workflow, on stdout'),
    )
    .command('submit <pipeline>', 'send a KFP v2 pipeline (KFP 2.x), an Argo Workflow (KFP 1.x, v1beta1), or a flow (generated first, in the form the cluster runs) to KFP as a run; print its URL', (y) =>
      kfpOptions(settingOptions(y))
        .positional('pipeline', { type: 'string', describe: 'a KFP v2 pipeline YAML, an Argo Workflow YAML (for KFP 1.x), or a flow .py file' })
        .option('experiment-name', { type: 'string', group: 'Run:', describe: 'the experiment, created when missing (default: $KF_PIPELINES_DEFAULT_EXPERIMENT_NAME, else Default)' })
        .option('run-name', { type: 'string', group: 'Run:', describe: 'the run name (default: the pipeline name and the time)' })
        .option('pipeline-name', { type: 'string', group: 'Run:', describe: 'upload the pipeline as a new version of this named pipeline (CamelCase becomes kebab-case) and run that version' })
        .option('param', { type: 'string', array: true, default: [], group: 'Run:', describe: "a pipeline input, NAME=VALUE, typed as the pipeline declares it (an Argo Workflow's are strings; repeatable)" })
        .option('wait', { type: 'boolean', default: false, group: 'Run:', describe: 'follow the run; exit 0 when it succeeded, 1 failed, 2 canceled or skipped' })
        .option('poll-interval', { type: 'number', default: 5, group: 'Run:', describe: 'seconds between status checks with --wait (0.1 to 3600)' })
        .option('progress', { type: 'boolean', default: false, group: 'Run:', describe: 'print every task state change with --wait even when stderr is not a terminal' })
        .option('code-url', { type: 'string', group: 'For a flow file:', describe: "where tasks fetch the flow (as in generate)" })
        .option('flow-file', { type: 'string', group: 'For a flow file:', describe: "the flow's path inside a .tar.gz package at --code-url" })
        .option('flow-name', { type: 'string', group: 'For a flow file:', describe: 'the FlowSpec class, when the file has several' })
        .option('image', { type: 'string', group: 'For a flow file:', describe: 'the agent image (as in generate)' })
        .option('name', { type: 'string', group: 'For a flow file:', describe: 'the pipeline name (default: metaflow-<flow name>)' })
        .option('python', { type: 'string', default: DEFAULTS.python, group: 'For a flow file:', describe: 'the Python interpreter with Metaflow that reads the flow' })
        .option('branch', { type: 'string', group: 'For a flow file:', describe: "@project's branch for every task (as in generate)" })
        .option('production', { type: 'boolean', default: false, group: 'For a flow file:', describe: "@project's production branch for every task (as in generate)" })
        .example('METAFLOW_PROFILE=sree $0 submit flow.py --code-url https://example.com/flow.py --experiment-name X --run-name Y', "the seed's run-on-kfp")
        .example('$0 submit flow.kfp.yaml --host http://localhost:8888 --param alpha=0.5 --wait', 'a pipeline file, followed to its end'),
    )
    .command('status <run-id>', "print a KFP run's state and its tasks'", (y) => kfpOptions(y).positional('run-id', { type: 'string', describe: 'the KFP run id' }))
    .command('terminate <run-id>', 'ask KFP to stop a run', (y) => kfpOptions(y).positional('run-id', { type: 'string', describe: 'the KFP run id' }))
    .demandCommand(1, 'name a command: step or init')
    .strict()
    .version(AGENT_VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue(
      'Exit codes: the step\'s own code; 128+N after signal N; the agent\'s own failures: 64 usage, 65 code refused, ' +
        '69 code unavailable, 70 internal, 71 runtime, 74 task record or outputs, 77 credentials.',
    )
    .exitProcess(false)
}

/** Where KFP is and how to sign in; each also read from the environment or the Metaflow profile (README, "Submitting to KFP"). */
function kfpOptions<T>(y: Argv<T>) {
  return y
    .option('host', { type: 'string', group: 'KFP:', describe: 'the KFP API, e.g. https://kubeflow.example.com/pipeline (default: $KF_PIPELINES_ENDPOINT)' })
    .option('ui-host', { type: 'string', group: 'KFP:', describe: "the KFP UI for run links (default: $KF_PIPELINES_UI_ENDPOINT, else the host; KFP_RUN_URL_PREFIX wins)" })
    .option('token', { type: 'string', group: 'KFP:', describe: 'a bearer token (default: $KFP_API_TOKEN, else the token file $KF_PIPELINES_SA_TOKEN_PATH)' })
    .option('cookie', { type: 'string', group: 'KFP:', describe: 'a login cookie NAME=VALUE, e.g. oauth2_proxy_kubeflow=…' })
    .option('namespace', { type: 'string', group: 'KFP:', describe: 'the Kubeflow namespace, needed on a multi-user cluster (default: $KFP_NAMESPACE)' })
}

/**
 * yargs renders the whole help text after running any command, only to cache it for a later
 * showHelp() from the command's handler, which this CLI never calls: 15 to 50 ms of every task's
 * start, and of each run-local task. --help and usage errors still render it when asked.
 */
function skipHelpCache(parser: Argv): void {
  const internal = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods
  const usage = internal?.call(parser).getUsageInstance?.()
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {}
}

/** Parses argv; settings that flags leave open are resolved later, from the environment and profile (settings.ts). */
export function parseArgs(argv: readonly string[]): ParsedCommand {
  refuseEmptyOrOddValues(argv)
  let failure: Error | undefined
  let printed = false
  const parser = buildParser(argv).fail((msg, err) => {
    failure = err ?? usageError(msg)
  })
  skipHelpCache(parser)
  const a = parser.parseSync(argv as string[], {}, (_err, _argv, output) => {
    if (output) {
      printed = true
      process.stdout.write(`${output}\n`)
    }
  }) as Record<string, unknown>
  if (failure) throw failure instanceof AgentError ? failure : usageError(failure.message)
  if (printed || a.help || a.version) return { kind: 'printed' }
  refuseRepeats(a)
  checkStrings(a)

  const command = (a._ as string[])[0]
  if (command === 'run-local') return { kind: 'run-local', config: runLocalConfig(a) }
  if (command === 'generate') return { kind: 'generate', config: generateConfig(a) }
  if (command === 'submit' || command === 'status' || command === 'terminate') return { kind: 'kfp', config: kfpConfig(command, a) }
  const flags = settingFlags(a)
  if (command === 'config') return { kind: 'config', flags }
  const base: Omit<UnresolvedConfig, 'command'> = {
    code: {
      url: a.codeUrl as string,
      sha256: a.codeSha256 as string | undefined,
      allowHttp: a.allowInsecureHttp as boolean,
      flowFile: a.flowFile as string | undefined,
      maxBytes: wholeNumber('--code-max-bytes', a.codeMaxBytes, 1, LIMITS.maxCodeBytes),
      timeoutMs: seconds('--code-timeout', a.codeTimeout, false),
      attempts: DEFAULTS.codeAttempts,
    },
    flowName: a.flowName as string | undefined,
    python: a.python as string,
    runtime: a.runtime as string,
    datastoreRoot: a.datastoreRoot as string | undefined,
    metadata: a.metadata as string | undefined,
    runId: a.runId as string,
    tags: checkTags(a.tag as string[]),
    params: parseParams(a.param as string[], a.paramsJson as string | undefined),
    outputDir: a.outputDir as string | undefined,
    outputs: (a.output as string[]).map(parseOutput),
    workDir: a.workDir as string | undefined,
    keepWorkDir: a.keepWorkDir as boolean,
    branch: checkBranch(a.branch),
    production: (a.production as boolean | undefined) ?? false,
    graceMs: seconds('--grace-period', a.gracePeriod, true),
  }
  if (command === 'init') return { kind: 'run', flags, config: { ...base, command: 'init', taskId: a.taskId as string | undefined } }
  return {
    kind: 'run',
    flags,
    config: {
      ...base,
      command: 'step',
      step: a.step as string,
      taskId: a.taskId as string | undefined,
      inputPaths: a.inputPaths as string | undefined,
      splitIndex: optional(a.splitIndex, (v) => wholeNumber('--split-index', v, 0, LIMITS.maxSplits - 1)),
      splitPath: parseSplitPath(a.splitPath as string),
      parents: a.parent as string[],
      parentAny: a.parentAny as string[],
      joinForeach: a.joinForeach as string | undefined,
      // Metaflow refuses a foreach of zero splits, so a join of none is always a mistake (and crashed Metaflow).
      numSplits: optional(a.numSplits, (v) => wholeNumber('--num-splits', v, 1, LIMITS.maxSplits)),
      retryCount: optional(a.retryCount, (v) => wholeNumber('--retry-count', v, 0, METAFLOW_MAX_ATTEMPTS - 1)),
      maxUserCodeRetries: wholeNumber('--max-user-code-retries', a.maxUserCodeRetries, 0, METAFLOW_MAX_ATTEMPTS - 1),
    },
  }
}

function kfpConfig(command: KfpConfig['command'], a: Record<string, unknown>): KfpConfig {
  const poll = a.pollInterval as number | undefined
  if (poll !== undefined && (typeof poll !== 'number' || !Number.isFinite(poll) || poll < 0.1 || poll > 3600)) {
    throw usageError(`failed to accept --poll-interval ${String(poll)}: expected seconds from 0.1 to 3600`)
  }
  return {
    command,
    target: (command === 'submit' ? a.pipeline : a.runId) as string,
    host: a.host as string | undefined,
    uiHost: a.uiHost as string | undefined,
    token: a.token as string | undefined,
    cookie: a.cookie === undefined ? undefined : checkCookie(a.cookie as string),
    namespace: a.namespace as string | undefined,
    experimentName: a.experimentName as string | undefined,
    runName: a.runName as string | undefined,
    pipelineName: a.pipelineName as string | undefined,
    params: parseParams((a.param as string[] | undefined) ?? [], undefined),
    wait: (a.wait as boolean | undefined) ?? false,
    pollMs: Math.round((poll ?? 5) * 1000),
    progress: (a.progress as boolean | undefined) ?? false,
    generate: {
      codeUrl: a.codeUrl as string | undefined,
      packageFlowFile: a.flowFile as string | undefined,
      flowName: a.flowName as string | undefined,
      image: a.image as string | undefined,
      python: (a.python as string | undefined) ?? DEFAULTS.python,
      name: a.name as string | undefined,
      branch: checkBranch(a.branch),
      production: (a.production as boolean | undefined) ?? false,
      flags: settingFlags(a),
    },
    flags: settingFlags(a),
  }
}

function generateConfig(a: Record<string, unknown>): GenerateConfig {
  return {
    command: 'generate',
    flowFile: a.flow as string,
    codeUrl: a.codeUrl as string | undefined,
    packageFlowFile: a.flowFile as string | undefined,
    flowName: a.flowName as string | undefined,
    image: a.image as string | undefined,
    format: a.format as 'kfp' | 'argo',
    output: a.output as string | undefined,
    python: a.python as string,
    params: parseParams(a.param as string[], undefined),
    name: a.name as string | undefined,
    branch: checkBranch(a.branch),
    production: (a.production as boolean | undefined) ?? false,
    flags: settingFlags(a),
  }
}

/** @project's branch name rule (project_decorator.format_name), checked before anything runs. */
function checkBranch(v: unknown): string | undefined {
  if (v === undefined) return undefined
  const branch = String(v)
  if (!/^[a-z0-9_]{1,128}$/.test(branch)) {
    throw usageError(`failed to accept --branch ${JSON.stringify(branch)}: Metaflow's @project takes lowercase letters, digits and underscores, at most 128`, 'e.g. --branch my_feature')
  }
  return branch
}

function runLocalConfig(a: Record<string, unknown>): RunLocalConfig {
  const parallelism = wholeNumber('--parallelism', a.parallelism, 1, LIMITS.maxParallelism)
  return {
    command: 'run-local',
    template: a.template as string,
    codeUrl: a.codeUrl as string,
    params: parseParams(a.param as string[], undefined),
    parallelism,
    python: a.python as string,
    datastoreRoot: a.datastoreRoot as string | undefined,
    prestart: a.prestart === undefined ? undefined : wholeNumber('--prestart', a.prestart, 0, LIMITS.maxParallelism),
  }
}

function parseOutput(spec: string): { name: OutputName; path: string } {
  const eq = spec.indexOf('=')
  const name = spec.slice(0, eq)
  const path = spec.slice(eq + 1)
  if (eq <= 0 || !path) throw usageError(`failed to parse --output ${JSON.stringify(spec)}: expected NAME=PATH`)
  if (!isOutputName(name)) throw usageError(`failed to parse --output ${JSON.stringify(spec)}: unknown output ${name}`, `use one of ${OUTPUT_NAMES.join(', ')}`)
  return { name, path }
}

/** `--param NAME=VALUE` pairs and `--params-json`; JSON strings stay raw, other values become JSON text. */
export function parseParams(pairs: readonly string[], json: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (json !== undefined) {
    let obj: unknown
    try {
      obj = JSON.parse(json)
    } catch (err) {
      throw usageError(`failed to parse --params-json: ${(err as Error).message}`, 'pass one JSON object, e.g. {"alpha": 0.5}')
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw usageError('failed to parse --params-json: not a JSON object', 'pass one JSON object, e.g. {"alpha": 0.5}')
    for (const [k, v] of Object.entries(obj)) add(out, k, typeof v === 'string' ? v : JSON.stringify(v))
  }
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw usageError(`failed to parse --param ${JSON.stringify(pair)}: expected NAME=VALUE`)
    add(out, pair.slice(0, eq), pair.slice(eq + 1))
  }
  checkParamSizes(out)
  return out
}

// Two spellings of one parameter (alpha, ALPHA, a-b, a_b) set one variable: the later would win silently.
function add(out: Record<string, string>, name: string, value: string): void {
  checkParamName(name)
  const twin = Object.keys(out).find((k) => paramKey(k) === paramKey(name))
  if (twin !== undefined) throw usageError(`failed to accept parameter ${name}: ${twin === name ? 'it is given twice' : `it is the same parameter as ${twin}, as Metaflow matches names case-insensitively`}`, 'give each parameter once')
  out[name] = value
}

function checkParamName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) throw usageError(`failed to accept parameter name ${JSON.stringify(name)}`, 'use the name the flow gives its Parameter')
  return name
}

function parseSplitPath(text: string): number[] {
  if (text.trim() === '') return []
  return text.split(',').map((s) => {
    if (!/^\d+$/.test(s.trim())) throw usageError(`failed to parse --split-path ${JSON.stringify(text)}: expected indices like 0,3`)
    return wholeNumber('--split-path', Number(s.trim()), 0, LIMITS.maxSplits - 1)
  })
}

function optional<T>(v: unknown, check: (v: unknown) => T): T | undefined {
  return v === undefined ? undefined : check(v)
}

/** A whole number in [min, max]; yargs turns "abc" into NaN and keeps 1e10 and Infinity as numbers. */
function wholeNumber(flag: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw usageError(`failed to accept ${flag} ${String(v)}: expected a whole number from ${min} to ${max}`)
  }
  return v
}

/** Seconds (fractions allowed) as milliseconds, up to LIMITS.maxSeconds: Node fires a longer timer at once. */
function seconds(flag: string, v: unknown, zeroOk: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (v === 0 && !zeroOk) || v > LIMITS.maxSeconds) {
    throw usageError(`failed to accept ${flag} ${String(v)}: expected seconds, ${zeroOk ? 'from 0' : 'above 0'} up to ${LIMITS.maxSeconds} (one day)`)
  }
  return Math.round(v * 1000)
}

/** Metaflow's own tag rules (tagging_util.py), checked before anything runs. */
function checkTags(tags: string[]): string[] {
  for (const tag of tags) {
    if (tag === '' || [...tag].length > LIMITS.maxTagChars) throw usageError(`failed to accept --tag of ${[...tag].length} characters: Metaflow takes tags of 1 to ${LIMITS.maxTagChars}`)
  }
  if (new Set(tags).size > LIMITS.maxTags) throw usageError(`failed to accept ${new Set(tags).size} tags: Metaflow takes at most ${LIMITS.maxTags}`)
  return tags
}

const BOOLEAN_FLAGS = new Set(['allow-insecure-http', 'keep-work-dir', 'help', 'version', 'wait', 'progress', 'production'])

/**
 * An empty value is always a mistake (an unset pipeline input, usually); yargs would read it as
 * 0, false or "not given". Only --split-path may be empty: it means "no enclosing foreach".
 * A boolean given as --flag=VALUE must say true or false; yargs takes anything else as true.
 */
function refuseEmptyOrOddValues(argv: readonly string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i] as string
    if (tok === '--') break
    if (!tok.startsWith('--')) continue
    const eq = tok.indexOf('=')
    const name = tok.slice(2, eq === -1 ? undefined : eq)
    const value = eq === -1 ? (BOOLEAN_FLAGS.has(name) ? undefined : argv[i + 1]) : tok.slice(eq + 1)
    if (value === '' && name !== 'split-path') throw usageError(`failed to accept --${name}: its value is empty`, 'give it a value, or leave the flag out')
    if (eq !== -1 && BOOLEAN_FLAGS.has(name) && !['true', 'false'].includes(value as string)) {
      throw usageError(`failed to accept --${name}=${value}: expected true or false`)
    }
  }
}

/** Text flags whose form can be checked before anything runs. */
function checkStrings(a: Record<string, unknown>): void {
  const sha = a.codeSha256 as string | undefined
  if (sha !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha)) throw usageError(`failed to accept --code-sha256 ${JSON.stringify(sha)}: expected 64 hex digits`, 'give the sha256 of the code, e.g. from sha256sum')
  const url = a.codeUrl as string | undefined
  if (url !== undefined) {
    let scheme: string | undefined
    try {
      scheme = new URL(url).protocol
    } catch {
      scheme = undefined
    }
    if (!scheme || !['https:', 'http:', 'file:', 's3:'].includes(scheme)) {
      throw usageError(`failed to accept --code-url ${JSON.stringify(redactUrl(url))}: ${scheme ? `${scheme.slice(0, -1)} is not a scheme the agent fetches` : 'not a URL'}`, 'give an https://, http://, file:// or s3:// URL')
    }
  }
  const flowFile = a.flowFile as string | undefined
  if (flowFile !== undefined && (flowFile.startsWith('/') || flowFile.split(/[\\/]/).includes('..'))) {
    throw usageError(`failed to accept --flow-file ${JSON.stringify(flowFile)}: it leaves the package`, 'give the flow file as a path inside the package, e.g. flows/my_flow.py')
  }
}

/** The options that may repeat; yargs turns any other option given twice into an array, which would be read as "a,b". */
const REPEATABLE = new Set(['_', 'tag', 'param', 'output', 'parent', 'parent-any'])

function refuseRepeats(a: Record<string, unknown>): void {
  for (const [key, v] of Object.entries(a)) {
    if (Array.isArray(v) && !REPEATABLE.has(key) && !/[A-Z]/.test(key)) {
      throw usageError(`failed to accept --${key}: it is given ${v.length} times`, 'give it once')
    }
  }
}
