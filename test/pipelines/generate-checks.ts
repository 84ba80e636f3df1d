// Runs generate as a real process; its output is checked with test/helpers/template-checks.
import { readFileSync } from 'node:fs'
import { agentEnv, runAgent } from '../helpers/agent-process'
import type { AgentRun } from '../helpers/agent-process'
import { PYTHON } from '../helpers/paths'

/**
 * `metaflow-kfp generate FLOW --python PYTHON ARGS` in a clean environment. Without --code-url
 * or --datastore-root it adds `--code-url file://FLOW`: otherwise generate would store a code
 * package in the datastore found from the test's folder (the repository).
 */
export function generate(flowFile: string, args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<AgentRun> {
  const code = args.includes('--code-url') || args.includes('--datastore-root') ? [] : ['--code-url', `file://${flowFile}`]
  return runAgent(['generate', flowFile, '--python', PYTHON, ...code, ...args], { cwd: opts.cwd, env: agentEnv(opts.env ?? {}) })
}

/** Generates into `out` and returns the text; fails the test with generate's own message otherwise. */
export async function generateFile(flowFile: string, out: string, args: readonly string[] = [], opts: { cwd?: string } = {}): Promise<string> {
  const r = await generate(flowFile, [...args, '--output', out], opts)
  if (r.code !== 0) throw new Error(`generate ${flowFile} exited ${r.code}: ${r.stderr}`)
  return readFileSync(out, 'utf8')
}
