// Vitest global set-up: refuses to start under a stray .metaflow folder, and fails the run if a test left one in the temp dir.
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

/**
 * Why: Metaflow's local datastore is the nearest .metaflow above the working folder. One left in
 * /tmp (by a run started there without a datastore root) catches every later test's run made in a
 * temp folder, and Metaflow's client then finds no run where the test looks.
 */
function strayAbove(dir: string): string | undefined {
  for (let cur = resolve(dir); ; cur = dirname(cur)) {
    if (existsSync(join(cur, '.metaflow'))) return join(cur, '.metaflow')
    if (dirname(cur) === cur) return undefined
  }
}

export function setup(): () => void {
  const stray = strayAbove(tmpdir())
  if (stray) throw new Error(`failed to start the tests: ${stray} would take the runs the tests make in temp folders (remove it, or set TMPDIR to a folder with no .metaflow above it)`)
  return () => {
    const left = strayAbove(tmpdir())
    if (left) throw new Error(`a test left ${left}: some Metaflow run started in the temp dir without a datastore root of its own`)
  }
}
