// Creates a folder and its missing parents with a bounded number of system calls, and says which ones it made.
import { mkdirSync, rmdirSync, statSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { AgentError } from './errors.js'

/**
 * Like `mkdir -p`, but it always ends. Why not `mkdir(dir, { recursive: true })`: on Node 20
 * it retries forever when mkdir fails with ENOENT under a parent that exists (e.g. anywhere
 * under /proc), spinning a core after the step already succeeded. Here each missing folder
 * gets exactly one mkdir, so the number of calls is bounded by the path's depth.
 * Returns the folders it created, outermost first, so a caller can undo them.
 * Why synchronous calls: a few metadata calls on a local disk, and a step's end waits for them;
 * through libuv's thread pool each was a round trip of up to a millisecond on a busy machine.
 */
export async function makeDirs(dir: string): Promise<string[]> {
  const missing: string[] = []
  for (let cur = resolve(dir); ; cur = dirname(cur)) {
    try {
      const s = statSync(cur)
      if (!s.isDirectory()) throw Object.assign(new Error(`${cur} is not a folder`), { code: 'ENOTDIR' })
      break
    } catch (err) {
      const parent = dirname(cur)
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === cur) throw err
      missing.push(cur)
    }
  }
  const made: string[] = []
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d)
      made.push(d)
    } catch (err) {
      // Another writer may have made it meanwhile; anything else ends here.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && isFolder(d)) continue
      await removeDirs(made)
      throw err
    }
  }
  return made
}

/** Removes folders that makeDirs made, innermost first, if they are still empty. */
export async function removeDirs(made: readonly string[]): Promise<void> {
  for (const d of [...made].reverse()) {
    try {
      rmdirSync(d)
    } catch {
      // not empty, or gone: leave it
    }
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * A fresh folder under `parent` for the agent's own scratch files. Why not bare mkdtemp: in a
 * read-only container without a writable /tmp its EROFS was an internal error (exit 70); it is
 * the user's set-up, so it gets one usage line saying what to change.
 */
export async function makeScratchDir(parent: string, prefix: string): Promise<string> {
  try {
    return await mkdtemp(join(parent, prefix))
  } catch (err) {
    throw new AgentError('usage', `failed to make a scratch folder in ${parent}`, {
      cause: err,
      hint: 'point TMPDIR at a writable folder (with docker run --read-only, add --tmpfs /tmp)',
    })
  }
}
