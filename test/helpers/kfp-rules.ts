// Runs test/pipelines/kfp_rules.py, which holds KFP v2 pipelines (IR files) to KFP's run-time rules and to the kfp SDK's compile of the same shape.
import { execFile } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { promisify } from 'node:util'
import { PYTHON, REPO } from './paths'

const run = promisify(execFile)
export const KFP_RULES = resolve(REPO, 'test', 'pipelines', 'kfp_rules.py')

// kfp_rules.py imported as a module with one of its functions made a no-op, then run as the script would be.
const WITHOUT = `
import sys
sys.dont_write_bytecode = True  # no __pycache__ left in test/pipelines
sys.path.insert(0, sys.argv[1])
import kfp_rules
if not callable(getattr(kfp_rules, sys.argv[2], None)):
    sys.exit('kfp_rules.py has no function %r' % sys.argv[2])
setattr(kfp_rules, sys.argv[2], lambda *args, **kwargs: None)
sys.exit(kfp_rules.main(sys.argv[3:]))
`

/** Checks the IR files: code 0 and lines ['ok'], or code 1 and one line per violation ("<file>: task <path>: <rule>: …"). */
export async function kfpRules(paths: string[], flags: string[] = []): Promise<{ code: number; lines: string[] }> {
  return checked([KFP_RULES, ...flags, ...paths])
}

/** The same check with kfp_rules.py's function `fn` doing nothing: shows what that function's part of the check catches. */
export async function kfpRulesWithout(fn: string, paths: string[]): Promise<{ code: number; lines: string[] }> {
  return checked(['-c', WITHOUT, dirname(KFP_RULES), fn, ...paths])
}

async function checked(args: string[]): Promise<{ code: number; lines: string[] }> {
  try {
    const { stdout } = await run(PYTHON, args, { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, lines: stdout.trim().split('\n') }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    if (e.code !== 1) throw new Error(`kfp_rules.py failed (${String(e.code)}): ${e.stderr ?? ''}`)
    return { code: 1, lines: (e.stdout ?? '').trim().split('\n') }
  }
}
