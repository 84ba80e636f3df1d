// The entrypoint: parse, run, and map every outcome to an exit code in one place.
import { parseArgs } from './cli.js'
import { AgentError, ExitCode, describeError } from './errors.js'
import { runInit, runStep } from './step/run-step.js'
import { applySettings, describeSettings, resolveSettings } from './settings.js'
import type { Io } from './step/run-step.js'
import { lineWriter } from './std-streams.js'

/** `self` is the argv that starts this agent again (node and the bundle); run-local runs each task with it. */
export async function main(argv: readonly string[], io: Io, self: readonly string[] = [process.execPath, process.argv[1] ?? '']): Promise<number> {
  try {
    const parsed = parseArgs(argv)
    if (parsed.kind === 'printed') return 0
    if (parsed.kind === 'run-local') {
      // Loaded on demand so steps do not pay for the template parser.
      const { runLocal } = await import('./local/local-runner.js')
      return await runLocal(parsed.config, io, { agent: self })
    }
    if (parsed.kind === 'generate') {
      // Loaded on demand, like run-local: steps do not pay for the pipeline writers.
      const { runGenerate } = await import('./pipelines/generate.js')
      return await runGenerate(parsed.config, io)
    }
    const settings = resolveSettings(parsed.flags, io.env)
    if (parsed.kind === 'config') {
      for (const line of describeSettings(settings, io.env)) await io.stdout(Buffer.from(line))
      return 0
    }
    const cfg = applySettings(parsed.config, settings, io.env)
    return cfg.command === 'init' ? await runInit(cfg, io) : await runStep(cfg, io)
  } catch (err) {
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
  }
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code
    },
    (err) => {
      void stderrLines.line(`metaflow-kfp: error: ${describeError(err)}`)
      process.exitCode = ExitCode.internal
    },
  )
}
