// Makes sure the Python environment has the pinned Metaflow: one fast check, an install only when it is missing.
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { access, constants, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { delimiter, dirname, join, resolve } from 'node:path'
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
  /** what vouched for the pin: the image's runtime marker (a few stat calls) or a Python start */
  checkedBy?: 'marker' | 'python'
}

/**
 * Checks the pin with one Python start; when it does not match, installs it with uv when uv
 * is on PATH (much faster), else with pip, and checks again.
 */
export async function ensureRuntime(opts: RuntimeOptions): Promise<RuntimeResult> {
  const { python, requirement: req, env } = opts
  const names = [req.name, ...opts.alsoNeeds]
  const marked = await markerVersions(python, names, env)
  if ('versions' in marked && missingRequirements(req, opts.alsoNeeds, marked.versions).length === 0) {
    return { installed: false, version: marked.versions[req.name] as string, checkedBy: 'marker' }
  }
  if ('why' in marked) opts.log(`the runtime marker does not vouch for ${python}: ${marked.why}; checking with Python`)
  const before = await installedVersions(python, names, env, opts.signal)
  const missing = missingRequirements(req, opts.alsoNeeds, before)
  if (missing.length === 0) {
    if (env.METAFLOW_KFP_WRITE_RUNTIME_MARKER === '1') await writeMarker(python, [...names, ...MARKED_TOO], env, opts.log)
    return { installed: false, version: before[req.name] as string, checkedBy: 'python' }
  }

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
  return { installed: true, installer, version: after[req.name] as string, checkedBy: 'python' }
}

// The runtime marker: an image bakes the pin into a venv once, so each task need not start
// Python to find it there. At image build, a task run with METAFLOW_KFP_WRITE_RUNTIME_MARKER=1
// checks with Python and then writes `<venv>/metaflow-kfp-runtime.json`: the versions found and
// what decides them, the same things the Python check reads: the interpreter (its real path,
// size and mtime), pyvenv.cfg and every .pth file (their bytes), the names in every folder on
// sys.path (so any install, upgrade, removal or shadowing module shows), each package's
// dist-info RECORD and METADATA (size and mtime), and the variables that move sys.path. A task
// re-reads those, a few calls in parallel, and any difference sends it back to Python.
// Why not inodes and ctimes: a node that pulls the image unpacks its layers afresh, so those
// differ on every node; names, bytes, sizes and mtimes (whole seconds, as layer tars keep them) do not.

/** Packages the marker records whenever they are there, so an S3 task (which needs boto3) can use it too. */
const MARKED_TOO = ['boto3']
/** Variables that change what sys.path holds. */
const PATH_VARS = ['PYTHONPATH', 'PYTHONHOME', 'PYTHONUSERBASE', 'PYTHONNOUSERSITE', 'PYTHONPLATLIBDIR', 'PYTHONSAFEPATH'] as const
const MARKER_FORMAT = 1

type Watched = [kind: 'file' | 'names' | 'bytes', path: string, id: string]

interface Marker {
  format: number
  python: string
  /** the interpreter's real path */
  executable: string
  env: Record<string, string | null>
  packages: Record<string, string>
  watched: Watched[]
  /** modules the prestarted Python imports early (read by warm-python.py only) */
  warm?: string[]
}

/** Where the marker for an interpreter lives: the venv's own folder, above bin/. */
export function markerPath(pythonPath: string): string {
  return join(dirname(dirname(pythonPath)), 'metaflow-kfp-runtime.json')
}

/**
 * --python as the step starts it: a path is taken from `cwd` (the step runs in the code folder,
 * not the agent's), a bare name stays one for PATH.
 */
export function interpreterArg(python: string, cwd: string): string {
  return python.includes('/') ? resolve(cwd, python) : python
}

/** The interpreter's path: as given when it names a path, else the first on PATH. */
export async function pythonPath(python: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return python.includes('/') ? python : findOnPath(python, env.PATH ?? '')
}

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex').slice(0, 32)

/** What the marker compares for a path: a file's size and whole-second mtime, a folder's sorted names, or a file's bytes. */
// Why synchronous: the whole check is well under a millisecond of work, and queued behind the code
// download's calls on libuv's four threads each call waited several ms on a busy machine.
function identity(kind: Watched[0], path: string): string {
  try {
    if (kind === 'names') return sha(readdirSync(path).sort().join('\n'))
    if (kind === 'bytes') return sha(readFileSync(path))
    const st = statSync(path, { bigint: true })
    return `${st.size}:${st.mtimeNs / 1_000_000_000n}`
  } catch {
    return 'absent'
  }
}

const envOf = (env: NodeJS.ProcessEnv, user: string | null): Record<string, string | null> => ({
  ...Object.fromEntries(PATH_VARS.map((k) => [k, env[k] ?? null])),
  // Only when Python reads a user site-packages does HOME decide what it loads.
  ...(user === null ? {} : { HOME: env.HOME ?? null }),
})

/** The versions the marker vouches for, or why it does not; {} when there is no marker (nothing to say). */
async function markerVersions(python: string, names: readonly string[], env: NodeJS.ProcessEnv): Promise<{ versions: Record<string, string | null> } | { why: string } | Record<string, never>> {
  const path = await pythonPath(python, env)
  if (!path) return {}
  let m: Marker
  const file = markerPath(path)
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Marker
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return {}
    return { why: `${file} cannot be read (${(err as Error).message})` }
  }
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v)
  const wellFormed =
    isObject(m) && m.format === MARKER_FORMAT && typeof m.python === 'string' && typeof m.executable === 'string' && isObject(m.packages) && isObject(m.env) &&
    Array.isArray(m.watched) && m.watched.every((w) => Array.isArray(w) && w.length === 3 && w.every((x) => typeof x === 'string'))
  if (!wellFormed) return { why: `${file} is not a marker this agent reads` }
  // python and python3 of one venv's bin/ are the same interpreter in the same venv: the real path below decides.
  if (dirname(m.python) !== dirname(path)) return { why: `${file} was made for ${m.python}` }
  let real: string | undefined
  try {
    real = realpathSync(path)
  } catch {
    // missing: the marker cannot vouch for it
  }
  if (real !== m.executable) return { why: `${path} is now ${real ?? 'missing'}, not ${m.executable}` }
  for (const [k, v] of Object.entries(m.env)) if ((env[k] ?? null) !== v) return { why: `${k} is not what it was when the marker was made` }
  for (const k of PATH_VARS) if (!(k in m.env) && env[k] !== undefined) return { why: `${k} is set` }
  const unlisted = names.find((n) => !(n in m.packages))
  if (unlisted) return { why: `it does not list ${unlisted}` }
  const now = m.watched.map(([kind, p]) => identity(kind, p))
  const changed = m.watched.find((w, i) => now[i] !== w[2])
  if (changed !== undefined) return { why: `${changed[1]} changed since it was made` }
  return { versions: Object.fromEntries(names.map((n) => [n, m.packages[n] ?? null])) }
}

// What the prestarted Python (warm-python.py) imports early: what importing Metaflow brings in,
// but not Metaflow's own modules. Run after whatever the script imported for itself.
const WARM_MODULES = [
  'before = set(sys.modules)',
  'sys.path = [d for d in sys.path if d]',
  'try:',
  '    import metaflow',
  '    warm = [m for m, mod in list(sys.modules.items()) if m not in before and m.partition(".")[0] not in ("metaflow", "metaflow_extensions") and getattr(mod, "__spec__", None) is not None]',
  'except Exception:',
  '    warm = []',
]

/** A Python script that prints, as a JSON list, the modules the prestarted Python imports early. */
export const WARM_MODULES_SCRIPT = ['import json, sys', ...WARM_MODULES, 'print(json.dumps(warm))'].join('\n')

// Where each package's dist-info is, and what decides sys.path; the same search as CHECK.
const DESCRIBE = [
  'import json, os, site, sys',
  'norm = lambda n: n.lower().replace("-", "_").replace(".", "_")',
  'want = {norm(n): n for n in sys.argv[1:]}',
  'found = {}',
  'dirs = [os.path.abspath(d) for d in sys.path if d]',
  'for d in dirs:',
  '    try: entries = os.listdir(d)',
  '    except OSError: continue',
  '    for e in entries:',
  '        if e.endswith(".dist-info"):',
  '            name, _, ver = e[:-10].rpartition("-")',
  '            n = want.get(norm(name))',
  '            if n and n not in found: found[n] = [ver, os.path.join(d, e)]',
  'user = site.getusersitepackages() if site.ENABLE_USER_SITE else None',
  ...WARM_MODULES,
  'print(json.dumps({"executable": os.path.realpath(sys.executable), "prefix": sys.prefix, "dirs": dirs, "user": user, "found": found, "warm": warm}))',
].join('\n')

async function writeMarker(python: string, names: readonly string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  const path = await pythonPath(python, env)
  const fail = (cause: unknown) => new AgentError('runtime', `failed to write the runtime marker for ${python}`, { cause, hint: 'unset METAFLOW_KFP_WRITE_RUNTIME_MARKER, or run the image build as a user that may write into the venv' })
  if (!path) throw fail('it is not on PATH')
  let d: { executable: string; prefix: string; dirs: string[]; user: string | null; found: Record<string, [string, string]>; warm: string[] }
  try {
    d = JSON.parse((await runCommand(path, ['-c', DESCRIBE, ...names], { env, timeoutMs: 60_000 })).stdout)
  } catch (err) {
    throw fail(err)
  }
  const dirs = [...new Set([...d.dirs, ...(d.user ? [d.user] : [])])]
  const watch: [Watched[0], string][] = [['file', d.executable], ['bytes', join(d.prefix, 'pyvenv.cfg')], ...dirs.map((p): [Watched[0], string] => ['names', p])]
  // site reads every .pth file in a site folder, and one line of one can put anything first on sys.path.
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[])
    for (const n of names.filter((x) => x.endsWith('.pth')).sort()) watch.push(['bytes', join(dir, n)])
  }
  const packages: Record<string, string> = {}
  for (const [name, [version, distInfo]] of Object.entries(d.found)) {
    packages[name] = version
    watch.push(['file', join(distInfo, 'RECORD')], ['file', join(distInfo, 'METADATA')])
  }
  const ids = watch.map(([kind, p]) => identity(kind, p))
  const marker: Marker = {
    format: MARKER_FORMAT,
    python: path,
    executable: d.executable,
    env: envOf(env, d.user),
    packages,
    watched: watch.map(([kind, p], i): Watched => [kind, p, ids[i] as string]),
    warm: d.warm,
  }
  const file = markerPath(path)
  const tmp = `${file}.${process.pid}.tmp`
  try {
    await writeFile(tmp, `${JSON.stringify(marker, null, 1)}\n`)
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw fail(err)
  }
  log(`wrote the runtime marker ${file} (${Object.entries(packages).map(([n, v]) => `${n} ${v}`).join(', ')}; ${watch.length} paths)`)
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
