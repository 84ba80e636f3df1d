// Runs test/pipelines/kfp_rules.py, which holds KFP v2 pipelines (IR files) to KFP's run-time rules and to the kfp SDK's compile of the same shape.
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { PYTHON, REPO } from './paths'

const run = promisify(execFile)
export const KFP_RULES = resolve(REPO, 'test', 'pipelines', 'kfp_rules.py')

/** Checks the IR files: code 0 and lines ['ok'], or code 1 and one line per violation ("<file>: task <path>: <rule>: …"). */
export async function kfpRules(paths: string[], flags: string[] = []): Promise<{ code: number; lines: string[] }> {
  try {
    const { stdout } = await run(PYTHON, [KFP_RULES, ...flags, ...paths], { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, lines: stdout.trim().split('\n') }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    if (e.code !== 1) throw new Error(`kfp_rules.py failed (${String(e.code)}): ${e.stderr ?? ''}`)
    return { code: 1, lines: (e.stdout ?? '').trim().split('\n') }
  }
}
