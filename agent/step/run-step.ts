// The recipe of one task: role, fetch, runtime, credentials, init, step, outputs, logs; the "always" work sits in finally.
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { openAws } from '../aws/aws-task.js'
import type { AwsTask } from '../aws/aws-task.js'
import { fetchCode } from '../code/code-fetch.js'
import type { FetchedCode } from '../code/code-fetch.js'
import { DEFAULTS, METAFLOW_MAX_ATTEMPTS } from '../config.js'
import type { InitConfig, StepConfig, TaskConfig } from '../config.js'
import { isTaskDone, readTaskRecord } from '../datastore/datastore.js'
import type { ObjectStore, TaskRef } from '../datastore/datastore.js'
import { cardSetup, openStore, resolveDatastoreRoot } from '../datastore/datastore-root.js'
import { AgentError, describeError } from '../errors.js'
import { findFlowName } from './flow-file.js'
import { initArgs, initParamEnv, initParamVar, paramKey, stepArgs, stepEnv } from './metaflow-command.js'
import { readFlow } from '../pipelines/flow-reader.js'
import type { FlowInfo } from '../pipelines/flow-reader.js'
import type { TopLevel } from './metaflow-command.js'
import { outputValues, wantsSwitchStep, writeOutputs } from './outputs.js'
import type { OutputValues } from './outputs.js'
import { placementInputPaths } from './placement.js'
import { ensureRuntime, interpreterArg, parseRequirement, pythonPath } from './runtime.js'
import { runProcess } from './step-process.js'
import type { ProcessResult } from './step-process.js'
import { TaskLogs } from './task-logs.js'
import { discard, handOver, isSameInterpreter } from './warm-python.js'
import type { StartWarmPython, WarmPython } from './warm-python.js'
import { staged } from './stage-times.js'
import type { StageTimes } from './stage-times.js'
import { PARAMS_TASK_ID, badIdReason, badIdentifierReason, badInputPathsReason, badStepNameReason, isStartPlacement, positionOf, taskIdFor } from './task-ids.js'
import { planAttempt } from './attempts.js'
import type { AttemptPlan } from './attempts.js'
import { compressInputPaths, decompressInputPaths } from './input-paths.js'
import type { Placement } from './task-ids.js'

export interface Io {
  /** the agent's own progress lines */
  log: (line: string) => void
  /** the step's output, passed through */
  stdout: (line: Buffer) => void | Promise<void>
  stderr: (line: Buffer) => void | Promise<void>
  env: NodeJS.ProcessEnv
  cwd: string
  /** aborted (with an Interrupted reason) when the agent is told to stop before its step runs */
  signal?: AbortSignal | undefined
  /** the task's stage times, given when METAFLOW_KFP_TIMINGS=1 (main prints them) */
  timings?: StageTimes | undefined
  /**
   * Given only by run-local, whose tasks share one Python environment: the runtime check (or
   * install) runs once per key for the whole run and the other tasks await its answer. A task
   * on its own, as in a pod, checks every time.
   */
  shareRuntimeCheck?: (<T>(key: string, check: () => Promise<T>) => Promise<T>) | undefined
  /** the Python the loader prestarted for this step (warm-python.ts); the step runs in it when it may */
  warmPython?: WarmPython | undefined
  /** the loader's way to prestart more (run-local keeps a few ready for its tasks) */
  startWarmPython?: StartWarmPython | undefined
}

/** Everything a task needs once its code and runtime are in place. */
interface Prepared {
  code: FetchedCode
  flow: string
  store: ObjectStore
  top: TopLevel
  env: NodeJS.ProcessEnv
  aws: AwsTask
  /** the interpreter, absolute when given as a path: the step runs in the code folder, not the agent's cwd */
  python: string
  /** the runtime check found the pin without installing: a Python prestarted before it saw the same venv */
  vouched: boolean
}

/** Runs one Metaflow step; returns the step's exit code (128+N after signal N). */
export async function runStep(cfg: StepConfig, io: Io): Promise<number> {
  const placement = placementOf(cfg)
  const taskId = cfg.taskId ?? taskIdFor(cfg.step, positionOf(placement))
  checkId('--task-id', taskId)
  const work = await staged(io.timings, 'workdir', makeWorkDir(cfg, io))
  let logs: { logs: TaskLogs; store: ObjectStore; task: TaskRef } | undefined
  let aws: AwsTask | undefined
  let metadataSaved = false
  let logSave: Promise<void> | undefined
  try {
    aws = await staged(io.timings, 'aws', openAws(cfg, io, { runId: cfg.runId, name: taskId }))
    const p = await prepare(cfg, work, io, aws)
    const plan = await staged(io.timings, 'attempts', attemptFor(cfg, p, taskId, io))
    if (plan.kind === 'done') {
      // Before the logs are set up: the finished attempt keeps its own logs and metadata.
      await publishOutputs(cfg, p.store, { flow: p.flow, runId: cfg.runId, step: cfg.step, taskId, attempt: plan.attempt })
      return 0
    }
    // init before the task's logs exist: a refused or failed init leaves nothing under the start task.
    if (cfg.inputPaths === undefined && isStartPlacement(placement)) {
      const init = await staged(io.timings, 'init', initIfNeeded(cfg, p, PARAMS_TASK_ID, io))
      if (init.exitCode !== 0) return init.exitCode
    }

    // Before the task's logs exist: a placement whose candidate parents did not run leaves nothing under the task.
    const inputs = cfg.inputPaths ?? compressInputPaths(await placementInputPaths(placement, p.store, p.flow))
    const task: TaskRef = { flow: p.flow, runId: cfg.runId, step: cfg.step, taskId, attempt: plan.attempt }
    logs = { logs: new TaskLogs(work), store: p.store, task }
    const taskLog = logs.logs

    let inputPaths: { inline: string } | { file: string } = { inline: inputs }
    if (inputs.length > DEFAULTS.inputPathsInlineMax) {
      io.log(`input paths of ${inputs.length} bytes go to Metaflow through --input-paths-filename`)
      inputPaths = { file: await writeInputPathsFile(work, inputs) }
    }
    io.log(`running ${p.flow}/${cfg.runId}/${cfg.step}/${taskId} attempt ${task.attempt}`)
    // A pod killed mid-step still leaves the logs up to a few seconds before; saveLogs stores them complete.
    taskLog.saveWhileRunning(p.store, task, { log: io.log })
    const args = stepArgs(p.top, {
      step: cfg.step,
      runId: cfg.runId,
      taskId,
      inputPaths,
      splitIndex: cfg.splitIndex,
      retryCount: task.attempt,
      maxUserCodeRetries: cfg.maxUserCodeRetries,
      tags: cfg.tags,
    })
    const adopt = await staged(io.timings, 'handover', warmStep(io, p, args))
    const started = Date.now()
    const result = await staged(io.timings, 'step', runProcess(p.python, args, {
      cwd: p.code.codeDir,
      env: p.env,
      graceMs: cfg.graceMs,
      signal: io.signal,
      adopt,
      stdout: (line) => chain(io.stdout(line), taskLog.write('stdout', line)),
      stderr: (line) => chain(io.stderr(line), taskLog.write('stderr', line)),
    }))
    io.log(`step ${cfg.step} ${describeExit(result)} after ${Date.now() - started} ms`)
    if (result.exitCode !== 0) return result.exitCode

    // The log save runs beside the metadata and the outputs instead of after them: neither waits for it.
    logSave = staged(io.timings, 'logs', saveLogs(logs, io))
    // The task's record is read beside the metadata save (they touch different things); the
    // outputs are written only once the metadata is safe, so a pipeline never moves on from an
    // invisible task.
    const values = staged(io.timings, 'record', outputsOf(cfg, p.store, task))
    values.catch(() => undefined) // a failed metadata save is the error reported; this one is awaited below
    await unlessStopped(staged(io.timings, 'metadata', p.aws.syncMetadata(task)), io, 0)
    metadataSaved = true
    await unlessStopped(staged(io.timings, 'outputs', values.then((v) => writeTaskOutputs(cfg, v))), io, 0)
    return 0
  } finally {
    // A prestarted Python the step did not take must not outlive the task.
    if (io.warmPython) discard(io.warmPython)
    let cut = false
    if (logs) cut = !(await boundedAfterStop(logSave ?? staged(io.timings, 'logs', saveLogs(logs, io)), io))
    // After a failed step the metadata is still worth keeping, but its loss must not mask the failure.
    if (aws && logs && !metadataSaved) {
      const saving = aws.syncMetadata(logs.task).catch((err: unknown) => io.log(`warning: ${describeError(err)}`))
      cut = !(await boundedAfterStop(saving, io)) || cut
    }
    await aws?.close()
    await staged(io.timings, 'cleanup', removeWorkDir(cfg, work, io))
    // A stop that cut the finishing work short ends the task as stopped, whatever the step did.
    if (cut) throw io.signal?.reason
  }
}

/**
 * The prestarted Python running this step, when the loader (or run-local) made one and the step
 * may run in it: the interpreter the runtime check found the pin in without installing, and the
 * Python's own checks (warm-python.py) pass. Otherwise undefined, with the prestarted Python gone,
 * and the step starts a fresh one.
 */
async function warmStep(io: Io, p: Prepared, args: readonly string[]): Promise<ChildProcess | undefined> {
  const warm = io.warmPython
  if (!warm) return undefined
  io.warmPython = undefined
  const python = await pythonPath(p.python, p.env)
  const why = !p.vouched
    ? 'the runtime check installed into the interpreter after it started'
    : python === undefined || !isSameInterpreter(python, warm) ? `the step runs ${p.python}, not ${warm.python}` : undefined
  const taken = why === undefined ? await handOver(warm, { args, env: p.env, cwd: p.code.codeDir }) : (discard(warm), { why })
  if ('why' in taken) {
    io.log(`starting Python afresh: the prestarted one cannot run this step (${taken.why})`)
    return undefined
  }
  io.log('the step runs in the prestarted Python')
  return taken
}

/** Runs `init` for the run's parameters task; returns its exit code. */
export async function runInit(cfg: InitConfig, io: Io): Promise<number> {
  checkNames(cfg)
  const taskId = cfg.taskId ?? PARAMS_TASK_ID
  checkId('--task-id', taskId)
  const work = await makeWorkDir(cfg, io)
  let aws: AwsTask | undefined
  try {
    aws = await openAws(cfg, io, { runId: cfg.runId, name: taskId })
    const p = await prepare(cfg, work, io, aws)
    const result = await initIfNeeded(cfg, p, taskId, io)
    if (result.exitCode !== 0) return result.exitCode
    await publishOutputs(cfg, p.store, { flow: p.flow, runId: cfg.runId, step: '_parameters', taskId, attempt: 0 })
    return 0
  } finally {
    await aws?.close()
    await removeWorkDir(cfg, work, io)
  }
}

/** Every name that becomes a path component in the datastore, checked before anything is written. */
function placementOf(cfg: StepConfig): Placement {
  checkNames(cfg)
  checkName('step', cfg.step, badStepNameReason)
  for (const parent of cfg.parents) checkName('--parent', parent, badStepNameReason)
  const parentAny = cfg.parentAny.map((text) => stepList('--parent-any', text))
  const joinSteps = cfg.joinForeach === undefined ? undefined : stepList('--join-foreach', cfg.joinForeach)
  if (cfg.inputPaths !== undefined) checkInputPaths(cfg.inputPaths)
  if (cfg.retryCount < 0 || cfg.retryCount >= METAFLOW_MAX_ATTEMPTS) {
    throw new AgentError('usage', `failed to accept --retry-count ${cfg.retryCount}: Metaflow allows 0 to ${METAFLOW_MAX_ATTEMPTS - 1}`, {
      hint: `keep the template's retry limit below ${METAFLOW_MAX_ATTEMPTS}`,
    })
  }
  if (cfg.joinForeach !== undefined && (cfg.parents.length > 0 || parentAny.length > 0)) {
    throw new AgentError('usage', `failed to place the step: --join-foreach and ${cfg.parents.length > 0 ? '--parent' : '--parent-any'} exclude each other`, {
      hint: 'a foreach join names only the step it joins',
    })
  }
  const twice = twiceNamed([...cfg.parents, ...parentAny.flat()])
  if (twice !== undefined) {
    throw new AgentError('usage', `failed to place the step: ${twice} is named twice among --parent and --parent-any`, {
      hint: 'name each parent step once: with --parent when it always runs, in one --parent-any group when it may not',
    })
  }
  if ((cfg.joinForeach === undefined) !== (cfg.numSplits === undefined)) {
    throw new AgentError('usage', 'failed to place the step: --join-foreach needs --num-splits and the other way round', {
      hint: "pass the foreach step's split_count output as --num-splits",
    })
  }
  return {
    runId: cfg.runId,
    step: cfg.step,
    splitPath: cfg.splitPath,
    splitIndex: cfg.splitIndex,
    parents: cfg.parents,
    parentAny,
    joinForeach: joinSteps === undefined ? undefined : { steps: joinSteps, numSplits: cfg.numSplits as number },
  }
}

/** A comma list of step names (--parent-any, --join-foreach): each a step name, none empty or repeated. */
function stepList(flag: string, text: string): string[] {
  const names = text.split(',')
  const fail = (why: string) => new AgentError('usage', `failed to accept ${flag} ${JSON.stringify(text)}: ${why}`, { hint: 'give step names separated by commas, e.g. case_a,case_b' })
  if (names.some((n) => n === '')) throw fail('it holds an empty name')
  const twice = twiceNamed(names)
  if (twice !== undefined) throw fail(`it names ${twice} twice`)
  for (const name of names) checkName(flag, name, badStepNameReason)
  return names
}

function twiceNamed(names: readonly string[]): string | undefined {
  return names.find((n, i) => names.indexOf(n) !== i)
}

function checkNames(cfg: TaskConfig): void {
  checkId('--run-id', cfg.runId)
  if (cfg.flowName !== undefined) checkName('--flow-name', cfg.flowName, badIdentifierReason)
}

function checkId(flag: string, id: string): void {
  const reason = badIdReason(id)
  if (!reason) return
  const hint = id.includes('{{') ? 'on KFP 2.4 or older, pass a run id the pipeline makes itself, e.g. from {{workflow.uid}}, or upgrade KFP' : 'use letters, digits, - and _'
  throw new AgentError('usage', `failed to accept ${flag} ${JSON.stringify(id)}: ${reason}`, { hint })
}

function checkName(what: string, name: string, why: (name: string) => string | undefined): void {
  const reason = why(name)
  const hint = what === '--flow-name' ? 'name the FlowSpec class as the flow file does' : 'name a step of the flow as its method is named'
  if (reason) throw new AgentError('usage', `failed to accept ${what} ${JSON.stringify(name)}: ${reason}`, { hint })
}

function checkInputPaths(text: string): void {
  let reason: string | undefined
  try {
    reason = badInputPathsReason(decompressInputPaths(text))
  } catch (err) {
    reason = describeError(err)
  }
  if (reason) throw new AgentError('usage', `failed to accept --input-paths: ${reason}`, { hint: "give parents as RUN/STEP/TASK in Metaflow's syntax, or leave --input-paths out" })
}

/** The attempt this run of the task is (attempts.ts says why it is not always --retry-count). */
async function attemptFor(cfg: StepConfig, p: Prepared, taskId: string, io: Io): Promise<Exclude<AttemptPlan, { kind: 'exhausted' }>> {
  const task = { flow: p.flow, runId: cfg.runId, step: cfg.step, taskId }
  const path = `${cfg.runId}/${cfg.step}/${taskId}`
  let plan: AttemptPlan
  try {
    plan = await planAttempt(p.store, task, cfg.retryCount)
  } catch (err) {
    throw new AgentError('outputs', `failed to read the earlier attempts of ${path} from ${p.store.root}`, { cause: err, hint: 'check the datastore root and access to it' })
  }
  if (plan.kind === 'exhausted') {
    throw new AgentError('usage', `failed to run ${path}: its attempts 0 to ${plan.latest} ran and the last did not succeed; Metaflow allows ${METAFLOW_MAX_ATTEMPTS}`, {
      hint: 'start a new run with a new --run-id',
    })
  }
  if (plan.kind === 'done') io.log(`${path} attempt ${plan.attempt} already succeeded; publishing its outputs without running the step again`)
  else if (plan.attempt !== cfg.retryCount) io.log(`attempt ${cfg.retryCount} was asked for, but attempts up to ${plan.attempt - 1} exist; running as attempt ${plan.attempt}, as a retry would`)
  return plan
}

/** While a task owns a work folder it listens on io.signal: main() sees the listener and lets the task clean up. */
const stopListeners = new Map<string, () => void>()

/**
 * The task's own folder: a fresh one under --work-dir (or the temp dir), never the folder
 * itself, so that cleaning up can only remove what this task made.
 */
async function makeWorkDir(cfg: TaskConfig, io: Io): Promise<string> {
  const work = await newWorkDir(cfg, io)
  const onStop = () => io.log(`${(io.signal?.reason as Error).message}: stopping what the task started and removing its work folder`)
  io.signal?.addEventListener('abort', onStop, { once: true })
  stopListeners.set(work, () => io.signal?.removeEventListener('abort', onStop))
  return work
}

async function newWorkDir(cfg: TaskConfig, io: Io): Promise<string> {
  if (!cfg.workDir) return mkdtemp(join(tmpdir(), 'metaflow-kfp-'))
  const parent = resolve(io.cwd, cfg.workDir)
  try {
    // One level only: a recursive mkdir spins forever on Node 20 under e.g. /proc.
    await mkdir(parent).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err
    })
    return await mkdtemp(join(parent, 'metaflow-kfp-'))
  } catch (err) {
    throw new AgentError('usage', `failed to create a work folder in --work-dir ${parent}`, { cause: err, hint: 'point --work-dir at a writable folder' })
  }
}

/** After a stop, how long saving the logs and the metadata may still take: a stalled upload must not hold a stopped agent. */
const FINISH_AFTER_STOP_MS = 5000

/**
 * Resolves true when `work` settles, or false once the task has been stopped for `afterStopMs`
 * (counted from the stop, or from now when it came earlier). `work` itself is not cancelled;
 * main() exits without waiting for it.
 */
function boundedAfterStop(work: Promise<unknown>, io: Io, afterStopMs = FINISH_AFTER_STOP_MS): Promise<boolean> {
  const signal = io.signal
  if (!signal) return work.then(() => true)
  return new Promise<boolean>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    const giveUp = () => {
      timer = setTimeout(() => resolve(false), afterStopMs)
    }
    if (signal.aborted) giveUp()
    else signal.addEventListener('abort', giveUp, { once: true })
    work.then(
      () => resolve(true),
      (err: unknown) => reject(err),
    ).finally(() => {
      clearTimeout(timer)
      signal.removeEventListener('abort', giveUp)
    })
  })
}

/** Awaits `work`, or throws the stop's reason once the task has been stopped for `afterStopMs`. */
async function unlessStopped<T>(work: Promise<T>, io: Io, afterStopMs: number): Promise<T> {
  let value: T | undefined
  const done = await boundedAfterStop(work.then((v) => { value = v }), io, afterStopMs)
  if (!done) throw io.signal?.reason
  return value as T
}

/** Removes the task's own folder unless --keep-work-dir asks to keep it. */
async function removeWorkDir(cfg: TaskConfig, work: string, io: Io): Promise<void> {
  stopListeners.get(work)?.()
  stopListeners.delete(work)
  if (cfg.keepWorkDir) io.log(`kept the work folder ${work}`)
  // Synchronous: a handful of files, and the task's end waits for it.
  else rmSync(work, { recursive: true, force: true })
}

/** Fetch the code, make sure the runtime is there, serve the credentials, and learn the flow's name and datastore. */
async function prepare(cfg: TaskConfig, work: string, io: Io, aws: AwsTask): Promise<Prepared> {
  const env = stepEnv(io.env, cfg.user)
  const python = interpreterArg(cfg.python, io.cwd)
  // The runtime check is one Python start; it overlaps the download instead of following it.
  // When either half fails (or the agent is stopped), the other is cancelled and awaited, so
  // no installer outlives the error line and nothing is left writing into the work dir.
  const halves = new AbortController()
  const signal = io.signal ? AbortSignal.any([io.signal, halves.signal]) : halves.signal
  const fetching = staged(io.timings, 'fetch', fetchCode({ ...cfg.code, workDir: work, minDelayMs: 1000, maxDelayMs: 30_000, openers: aws.openers, log: io.log, signal }))
  const alsoNeeds = cfg.datastore === 's3' ? ['boto3'] : []
  const check = () => ensureRuntime({
    python,
    requirement: parseRequirement(cfg.runtime),
    alsoNeeds,
    env,
    log: io.log,
    signal,
    scratchDir: work,
  })
  const checking = staged(io.timings, 'runtime', timed(() => io.shareRuntimeCheck ? io.shareRuntimeCheck(JSON.stringify([python, cfg.runtime, alsoNeeds]), check) : check()))
  let code: FetchedCode
  let runtime: Awaited<typeof checking>
  try {
    ;[code, runtime] = await Promise.all([fetching, checking])
  } catch (err) {
    halves.abort(err)
    await Promise.allSettled([fetching, checking])
    if (io.signal?.aborted) throw io.signal.reason
    throw err
  }
  io.log(`fetched ${code.bytes} bytes, sha256 ${code.sha256}`)
  io.log(runtime.value.installed
    ? `installed metaflow ${runtime.value.version} with ${runtime.value.installer} in ${runtime.ms} ms`
    : `runtime check: metaflow ${runtime.value.version} is there${runtime.value.checkedBy === 'marker' ? " (the image's runtime marker)" : ''} (${runtime.ms} ms)`)

  const flow = cfg.flowName ?? findFlowName(await readFile(code.flowPath, 'utf8'))
  if (!flow) {
    throw new AgentError('usage', `failed to find the FlowSpec class in ${code.flowPath}`, {
      hint: 'name it with --flow-name',
    })
  }
  const datastoreRoot = resolveDatastoreRoot(cfg, io)
  return {
    code,
    flow,
    store: openStore(cfg.datastore, datastoreRoot, aws.store),
    top: { flowPath: code.flowPath, datastore: cfg.datastore, datastoreRoot, metadata: cfg.metadata, branch: cfg.branch, production: cfg.production },
    // The credentials stage: from here on the step gets the role from the agent's endpoint.
    // cardSetup makes @card write under the datastore root, not in the work dir.
    env: { ...(await staged(io.timings, 'credentials', aws.stepEnv(env, work))), ...(await staged(io.timings, 'cards', cardSetup(cfg.datastore, datastoreRoot, code.codeDir, io.env))) },
    aws,
    python,
    vouched: !runtime.value.installed,
  }
}

/** `init` runs only when the parameters task has no DONE lock yet, so a retried start does not redo it. */
async function initIfNeeded(cfg: TaskConfig, p: Prepared, taskId: string, io: Io): Promise<ProcessResult> {
  const params: TaskRef = { flow: p.flow, runId: cfg.runId, step: '_parameters', taskId, attempt: 0 }
  if (await readDone(p.store, params)) {
    io.log(`parameters task ${cfg.runId}/_parameters/${taskId} exists; not running init again`)
    return { exitCode: 0 }
  }
  // Only here, with parameters given: a step that is not the start, or a retried start, pays nothing.
  if (Object.keys(cfg.params).length > 0) await checkParamNames(cfg, p, io)
  io.log(`initialising run ${cfg.runId} with ${Object.keys(cfg.params).length} parameter(s)`)
  const result = await runProcess(p.python, initArgs(p.top, cfg.runId, taskId, cfg.tags), {
    cwd: p.code.codeDir,
    env: { ...p.env, ...initParamEnv(cfg.params) },
    graceMs: cfg.graceMs,
    signal: io.signal,
    stdout: io.stdout,
    stderr: io.stderr,
  })
  if (result.exitCode !== 0) io.log(`init ${describeExit(result)}`)
  else await p.aws.syncMetadata(params)
  return result
}

/**
 * Refuses a parameter the flow does not declare (click would ignore its METAFLOW_INIT_ variable
 * and the run would silently take the default) and a required one left out. The flow's
 * parameters come from Metaflow itself; if it cannot load the flow, init reports why.
 */
async function checkParamNames(cfg: TaskConfig, p: Prepared, io: Io): Promise<void> {
  let info: FlowInfo
  try {
    // generate's reader, asked for the parameters only: one Python start, through Metaflow's CLI, so
    // Configs resolve into defaults and required-ness as init will see them.
    info = await readFlow(p.code.flowPath, {
      python: p.python,
      flowName: cfg.flowName,
      datastore: cfg.datastore,
      env: p.env,
      cwd: p.code.codeDir,
      onlyParameters: true,
      branch: cfg.branch,
      production: cfg.production,
    })
  } catch (err) {
    io.log(`warning: could not list the flow's parameters, so init checks them itself: ${describeError(err)}`)
    return
  }
  const names = info.parameters.map((q) => q.name)
  const known = new Set(names.map(paramKey))
  const hint = 'check the spelling, Metaflow matches names case-insensitively, or leave it out'
  for (const name of Object.keys(cfg.params)) {
    if (known.has(paramKey(name))) continue
    const has = names.length > 0 ? `its parameters are ${names.join(', ')}` : 'it has no parameters'
    throw new AgentError('usage', `failed to accept parameter ${name}: ${p.flow} has no parameter of that name; ${has}`, { hint })
  }
  const given = new Set(Object.keys(cfg.params).map(paramKey))
  // click asks for a required option only when it has no default (a function default counts).
  const missing = info.parameters.filter((q) => q.required && !q.hasDefault && !given.has(paramKey(q.name)) && !p.env[initParamVar(q.name)]).map((q) => q.name)
  if (missing.length > 0) {
    throw new AgentError('usage', `failed to initialise run ${cfg.runId}: ${p.flow} requires ${missing.join(', ')}`, { hint: 'pass each as --param NAME=VALUE' })
  }
}

async function readDone(store: ObjectStore, t: TaskRef): Promise<boolean> {
  try {
    return await isTaskDone(store, t)
  } catch (err) {
    throw new AgentError('outputs', `failed to read the parameters task from ${store.root}`, { cause: err, hint: 'check the datastore root and access to it' })
  }
}

/** Reads the finished task from the datastore and writes its output parameters. */
async function publishOutputs(cfg: Pick<TaskConfig, 'outputDir' | 'outputs'>, store: ObjectStore, task: TaskRef): Promise<void> {
  await writeTaskOutputs(cfg, await outputsOf(cfg, store, task))
}

/** The output parameters' values, from the task's record in the datastore; none when no output is asked for. */
async function outputsOf(cfg: Pick<TaskConfig, 'outputDir' | 'outputs'>, store: ObjectStore, task: TaskRef): Promise<OutputValues | undefined> {
  const targets = { dir: cfg.outputDir, paths: cfg.outputs }
  if (!targets.dir && targets.paths.length === 0) return undefined
  try {
    // The graph and the switch taken are read only when an output needs them.
    const record = await readTaskRecord(store, task, { switchStep: wantsSwitchStep(targets) })
    if (!record.taskOk) throw new Error('the task exited 0 but its _task_ok artifact is False')
    return outputValues(task.taskId, record.numSplits, record.switchStep)
  } catch (err) {
    throw new AgentError('outputs', `failed to read task ${task.runId}/${task.step}/${task.taskId} from ${store.root}`, {
      cause: err,
      hint: 'check that --datastore and --datastore-root match where the step wrote',
    })
  }
}

async function writeTaskOutputs(cfg: Pick<TaskConfig, 'outputDir' | 'outputs'>, values: OutputValues | undefined): Promise<void> {
  if (!values) return
  try {
    await writeOutputs(values, { dir: cfg.outputDir, paths: cfg.outputs })
  } catch (err) {
    throw new AgentError('outputs', 'failed to write the output parameters', { cause: err, hint: 'check that the output paths are writable' })
  }
}

async function saveLogs(l: { logs: TaskLogs; store: ObjectStore; task: TaskRef }, io: Io): Promise<void> {
  try {
    await l.logs.save(l.store, l.task)
  } catch (err) {
    // Losing the log copy must not change the step's result; the lines were already streamed.
    io.log(`warning: failed to save the task logs to ${l.store.root}: ${(err as Error).message}`)
  }
}

async function writeInputPathsFile(work: string, text: string): Promise<string> {
  const path = join(work, 'input-paths')
  await writeFile(path, text)
  return path
}

async function timed<T>(action: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  const value = await action()
  return { value, ms: Date.now() - started }
}

function chain(a: void | Promise<void>, b: void | Promise<void>): void | Promise<void> {
  if (a === undefined && b === undefined) return
  return Promise.all([a, b]).then(() => undefined)
}

function describeExit(r: ProcessResult): string {
  if (r.signal) return `was killed by ${r.signal} (exit ${r.exitCode})`
  return r.exitCode === 0 ? 'succeeded' : `failed with exit code ${r.exitCode}`
}
