// Makes sure the Python environment has the pinned Metaflow: one fast check, an install only when it is missing.
import { spawn } from 'node:child_process'
import { access, constants, mkdtemp } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { AgentError } from '../errors.js'

interface RunOptions {
  env: NodeJS.ProcessEnv
  timeoutMs: number
  /** output kept per stream; more is dropped from the front */
  maxBuffer?: number
  signal?: AbortSignal | undefined
}

/** How long a stopped installer's group gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 2000

/**
 * Runs a command (argv, no shell) as the leader of its own process group and collects its
 * output. Why not execFile: on a timeout or an abort it kills only the child, and pip or uv
 * leave their own children (build backends, resolvers) running; here the whole group gets
 * SIGTERM, then SIGKILL, and the promise settles only once the child is gone.
 */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason)
    const max = opts.maxBuffer ?? 1 << 20
    const out: Buffer[] = []
    const err: Buffer[] = []
    const keep = (list: Buffer[]) => {
      let total = 0
      return (d: Buffer) => {
        list.push(d)
        total += d.length
        while (total > max && list.length > 1) total -= (list.shift() as Buffer).length
      }
    }
    const child = spawn(cmd, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    child.stdout.on('data', keep(out))
    child.stderr.on('data', keep(err))
    let stopped: unknown
    let killTimer: NodeJS.Timeout | undefined
    const stop = (why: unknown) => {
      if (stopped !== undefined || child.pid === undefined) return
      stopped = why
      signalGroup(child.pid, 'SIGTERM')
      const pid = child.pid
      killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), STOP_GRACE_MS)
    }
    const onAbort = () => stop(opts.signal?.reason)
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    const timer = setTimeout(() => stop(new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s`)), opts.timeoutMs)
    const finish = () => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
    }
    child.once('error', (e) => {
      finish()
      reject(e)
    })
    child.once('close', (code, sig) => {
      finish()
      // The leader is gone; anything left in its group gets no grace.
      if (stopped !== undefined && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL')
      if (killTimer) clearTimeout(killTimer)
      const stdout = Buffer.concat(out).toString()
      const stderr = Buffer.concat(err).toString()
      if (stopped !== undefined) return reject(stopped)
      if (code === 0) return resolve({ stdout, stderr })
      reject(Object.assign(new Error(`${cmd} exited with ${code ?? sig}`), { stdout, stderr }))
    })
  })
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig)
  } catch {
    // the group is already gone
  }
}

export interface Requirement {
  name: string
  version: string
}

/** Parses `name==version`, the only form the runtime check can verify without pip. */
export function parseRequirement(text: string): Requirement {
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*([A-Za-z0-9.+!_-]+)\s*$/.exec(text)
  if (!m) {
    throw new AgentError('usage', `failed to parse --runtime ${JSON.stringify(text)}: not of the form name==version`, {
      hint: 'pin an exact release, e.g. --runtime metaflow==2.19.38',
    })
  }
  return { name: m[1] as string, version: m[2] as string }
}

// Looks for each package's `<name>-<version>.dist-info` folder on sys.path: one interpreter
// start and no imports beyond os, about 4x cheaper than importlib.metadata. Packages not
// found that way (egg-info, editable installs) fall back to importlib.metadata.
const CHECK = [
  'import json, os, sys',
  'norm = lambda n: n.lower().replace("-", "_").replace(".", "_")',
  'want = {norm(n): n for n in sys.argv[1:]}',
  'found = {}',
  'for d in sys.path:',
  '    try: entries = os.listdir(d or ".")',
  '    except OSError: continue',
  '    for e in entries:',
  '        if e.endswith(".dist-info"):',
  '            name, _, ver = e[:-10].rpartition("-")',
  '            n = want.get(norm(name))',
  '            if n and n not in found: found[n] = ver',
  'for n in want.values():',
  '    if n not in found:',
  '        from importlib import metadata',
  '        try: found[n] = metadata.version(n)',
  '        except metadata.PackageNotFoundError: found[n] = None',
  'print(json.dumps(found))',
].join('\n')

export async function installedVersions(
  python: string,
  names: readonly string[],
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<Record<string, string | null>> {
  let stdout: string
  try {
    ;({ stdout } = await runCommand(python, ['-c', CHECK, ...names], { env, timeoutMs: 60_000, signal }))
  } catch (err) {
    if (signal?.aborted) throw signal.reason
    throw new AgentError('runtime', `failed to start ${python} to check the Metaflow runtime`, {
      cause: err,
      hint: 'point --python at a Python 3 interpreter (the image bakes one in)',
    })
  }
  return JSON.parse(stdout) as Record<string, string | null>
}

export interface RuntimeOptions {
  python: string
  requirement: Requirement
  /** other packages the step needs at any version (boto3 for S3) */
  alsoNeeds: readonly string[]
  env: NodeJS.ProcessEnv
  log: (line: string) => void
  /** stops the check or the install (its whole process group); the signal's reason is thrown */
  signal?: AbortSignal | undefined
  /**
   * A folder the caller removes: the installer's TMPDIR goes inside it, because pip killed by
   * SIGTERM leaves its pip-install-*, pip-build-tracker-* folders behind in TMPDIR.
   */
  scratchDir?: string | undefined
}

export interface RuntimeResult {
  installed: boolean
  installer?: 'uv' | 'pip'
  version: string
}

/**
 * Checks the pin with one Python start; when it does not match, installs it with uv when uv
 * is on PATH (much faster), else with pip, and checks again.
 */
export async function ensureRuntime(opts: RuntimeOptions): Promise<RuntimeResult> {
  const { python, requirement: req, env } = opts
  const names = [req.name, ...opts.alsoNeeds]
  const before = await installedVersions(python, names, env, opts.signal)
  const missing = missingRequirements(req, opts.alsoNeeds, before)
  if (missing.length === 0) return { installed: false, version: before[req.name] as string }

  const uv = await findOnPath('uv', env.PATH ?? '')
  const installer = uv ? 'uv' : 'pip'
  opts.log(`installing ${missing.join(' ')} into ${python} with ${installer} (found ${req.name} ${before[req.name] ?? 'absent'})`)
  const [cmd, args] = uv
    ? [uv, ['pip', 'install', '--quiet', '--python', python, ...missing]]
    : [python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...missing]]
  const tmp = opts.scratchDir ? await mkdtemp(join(opts.scratchDir, 'installer-tmp-')) : undefined
  const installEnv = tmp ? { ...env, TMPDIR: tmp, TMP: tmp, TEMP: tmp } : env
  try {
    await runCommand(cmd, args, { env: installEnv, timeoutMs: 15 * 60_000, maxBuffer: 1 << 20, signal: opts.signal })
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-3).join(' | ')
    throw new AgentError('runtime', `failed to install ${missing.join(' ')} with ${installer}`, {
      cause: stderr || err,
      hint: 'use an image that bakes this pin (image/runtime-pin.txt), or point --python at an environment the agent may install into',
    })
  }
  const after = await installedVersions(python, names, env, opts.signal)
  const still = missingRequirements(req, opts.alsoNeeds, after)
  if (still.length > 0) {
    throw new AgentError('runtime', `failed to verify ${still.join(' ')} after installing with ${installer}`, {
      cause: `found ${req.name} ${after[req.name] ?? 'absent'}`,
      hint: `check that ${python} is the interpreter the installer wrote to`,
    })
  }
  return { installed: true, installer, version: after[req.name] as string }
}

function missingRequirements(req: Requirement, alsoNeeds: readonly string[], found: Record<string, string | null>): string[] {
  const missing: string[] = []
  if (found[req.name] !== req.version) missing.push(`${req.name}==${req.version}`)
  for (const n of alsoNeeds) if (!found[n]) missing.push(n)
  return missing
}

/** The first executable file named `name` on PATH, without a shell. */
export async function findOnPath(name: string, path: string): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}
