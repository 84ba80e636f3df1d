// The entrypoint: parse, run, and map every outcome to an exit code in one place.
import { getEventListeners } from 'node:events'
import { constants as osConstants } from 'node:os'
import { parseArgs } from './cli.js'
import { AgentError, ExitCode, Interrupted, describeError } from './errors.js'
import type { Io } from './step/run-step.js'
import { staged, stageTimes } from './step/stage-times.js'
import { lineWriter } from './std-streams.js'
import { takeWarmPython } from './step/warm-python.js'
import type { StartWarmPython, WarmPython } from './step/warm-python.js'

/** `self` is the argv that starts this agent again (node and the bundle); run-local runs each task with it. */
export async function main(argv: readonly string[], io: Io, self: readonly string[] = [process.execPath, process.argv[1] ?? '']): Promise<number> {
  try {
    const parsed = io.timings ? await io.timings.time('args', Promise.resolve().then(() => parseArgs(argv))) : parseArgs(argv)
    if (parsed.kind === 'printed') return 0
    if (parsed.kind === 'run-local') {
      // Loaded on demand so steps do not pay for the template parser.
      const { runLocal } = await import('./local/local-runner.js')
      // Tasks run through main() itself, in this process: no Node start and bundle load per task.
      return await runLocal(parsed.config, io, { agent: self, inProcess: main, startWarmPython: io.startWarmPython })
    }
    if (parsed.kind === 'generate') {
      // Loaded on demand, like run-local: steps do not pay for the pipeline writers.
      const { runGenerate } = await import('./pipelines/generate.js')
      return await runGenerate(parsed.config, io)
    }
    if (parsed.kind === 'kfp') {
      // Loaded on demand, like run-local: steps do not pay for the KFP client.
      const { runKfp } = await import('./kfp-api/submit.js')
      return await runKfp(parsed.config, io)
    }
    // Loaded here, not at the top: --version and --help then start no faster than the modules
    // they need (the step's modules pull in crypto, http, zlib, child_process and streams).
    const { applySettings, describeSettings, resolveSettings } = await staged(io.timings, 'modules', import('./settings.js'))
    const settingsStart = performance.now()
    const settings = resolveSettings(parsed.flags, io.env)
    io.timings?.add('settings', settingsStart, performance.now() - settingsStart)
    if (parsed.kind === 'config') {
      for (const line of describeSettings(settings, io.env)) await io.stdout(Buffer.from(line))
      return 0
    }
    const cfg = applySettings(parsed.config, settings, io.env)
    const { runInit, runStep } = await staged(io.timings, 'modules', import('./step/run-step.js'))
    return cfg.command === 'init' ? await runInit(cfg, io) : await runStep(cfg, io)
  } catch (err) {
    // Stopped before the step existed or while it finished: what failed, failed because of the signal.
    if (io.signal?.aborted && io.signal.reason instanceof Interrupted) {
      const sig = io.signal.reason.signal
      io.log(`error: failed to finish the task: ${io.signal.reason.message} (what it had started was stopped and its work folder removed)`)
      return 128 + osConstants.signals[sig]
    }
    const agentErr = err instanceof AgentError ? err : new AgentError('internal', 'failed unexpectedly', { cause: err, hint: 'please report this with the log above' })
    const cause = agentErr.cause === undefined ? '' : `: ${describeError(agentErr.cause)}`
    const hint = agentErr.hint ? ` (${agentErr.hint})` : ''
    io.log(`error: ${agentErr.message}${cause}${hint}`.replace(/\s*\n\s*/g, ' '))
    return agentErr.exitCode
  }
}

if (require.main === module) {
  // The SDK reads this from process.env itself, not from io.env.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
  // A closed stdout or stderr (EPIPE) drops the agent's copy of the lines, never the step's result or its task log.
  const stdoutLines = lineWriter(process.stdout)
  const stderrLines = lineWriter(process.stderr)
  const io: Io = {
    log: (line) => void stderrLines.line(`metaflow-kfp: ${line}`),
    stdout: (line) => stdoutLines.line(line),
    stderr: (line) => stderrLines.line(line),
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    cwd: process.cwd(),
    timings: stageTimes(process.env),
    // Started by the loader (scripts/warm-python-loader.mjs) for `step` when the image asks for it.
    warmPython: takeWarmPython(module as { warmPython?: WarmPython }),
    startWarmPython: (module as { startWarmPython?: StartWarmPython }).startWarmPython,
  }
  // Set by the code-cache loader (scripts/code-cache-loader.mjs) around the bundle.
  io.timings?.note('code-cache', String((module as { codeCache?: string }).codeCache ?? 'none'))
  ;(module as { timings?: unknown }).timings = io.timings // the loader notes in it each lazy group's cache (scripts/code-cache-loader.mjs)
  if (io.warmPython?.at !== undefined) io.timings?.note('prestart', io.warmPython.at.toFixed(1))
  // SIGTERM/SIGINT/SIGHUP stop a task that is still fetching, installing or starting: its
  // signal aborts, it cancels what it started and removes its work folder, and main() exits
  // 128+N. Once the step runs, step-process forwards the signal to the step's group (and the
  // agent waits for it). A command with no task listening (config, run-local) keeps Node's
  // default: death by the signal.
  const stop = new AbortController()
  io.signal = stop.signal
  const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']
  const onStop = (sig: NodeJS.Signals) => {
    if (getEventListeners(stop.signal, 'abort').length === 0) {
      for (const s of STOP_SIGNALS) process.off(s, onStop)
      process.kill(process.pid, sig)
      return
    }
    if (!stop.signal.aborted) stop.abort(new Interrupted(sig))
  }
  for (const s of STOP_SIGNALS) process.on(s, onStop)
  main(process.argv.slice(2), io).then(
    (code) => {
      if (io.timings) io.log(io.timings.line())
      process.exitCode = code
      // After a stop, a request given up on (a stalled upload) must not hold the process open.
      if (stop.signal.aborted) process.exit(code)
    },
    (err) => {
      void stderrLines.line(`metaflow-kfp: error: ${describeError(err)}`)
      process.exitCode = ExitCode.internal
    },
  )
}
