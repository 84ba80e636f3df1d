// Reads a flow through Metaflow itself (one Python start): its graph, each step's decorators and the flow's parameters, for generate.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { AgentError } from '../errors.js'

/** One step as Metaflow's FlowGraph sees it, with what its decorators decide at deploy time. */
export interface FlowStep {
  name: string
  /** Metaflow's node type: start, linear, split, foreach, join, end, split-switch */
  type: string
  next: string[]
  parents: string[]
  matchingJoin: string | null
  foreachParam: string | null
  /** @parallel, or a foreach over num_parallel */
  parallel: boolean
  switchCases: Record<string, string>
  decorators: { name: string; attributes: Record<string, unknown> }[]
  /** @retry's user-code retries and the fallback retries @catch adds, as Metaflow's step_task_retry_count reports them */
  userCodeRetries: number
  errorRetries: number
  minutesBetweenRetries: number
  /** @timeout's limit in seconds, or null without @timeout */
  timeoutSeconds: number | null
  env: Record<string, string>
  resources: { cpu: string | null; memory: string | null; gpu: string | null } | null
}

export interface FlowParameter {
  name: string
  /** str, int, float, bool, JSON, or another type's name */
  type: string
  required: boolean
  /** the default as generate evaluated it (a function default called now); JSON defaults as JSON text; null when none */
  default: string | number | boolean | null
  help: string | null
  /** IncludeFile and other file parameters */
  isFile: boolean
}

export interface FlowInfo {
  flowName: string
  file: string
  steps: FlowStep[]
  parameters: FlowParameter[]
  project: { name: string; branch: string | null; production: boolean } | null
  /** flow-level decorators by name, with their attributes */
  flowDecorators: { name: string; attributes: Record<string, unknown> }[]
  hasConfigs: boolean
}

// Runs with the user's interpreter: the flow file runs as Metaflow runs it, through its own CLI,
// with a harmless command, and the script reports the flow class the CLI prepared as one JSON
// document. The flow's own prints (and Metaflow's) go to stderr so stdout stays JSON.
export const FLOW_READER_PY = String.raw`
import json, os, sys
out = sys.stdout
sys.stdout = sys.stderr
path = os.path.abspath(sys.argv[1])
wanted = sys.argv[2] or None
ds_type = sys.argv[3]
sys.path.insert(0, os.path.dirname(path))

def fail(kind, message):
    out.write(json.dumps({"error": kind, "message": message}))
    out.flush()
    sys.exit(3)

try:
    import types
    from metaflow import FlowSpec
    from metaflow import parameters as mf_parameters
except Exception as e:
    fail("metaflow", "%s: %s" % (type(e).__name__, e))

# Metaflow's own CLI reads the flow: it processes Configs, flow and step mutators and the
# parameters' kwargs exactly as for a run. Its output-raw command is swapped for one that keeps
# what the CLI built, so nothing runs and nothing is printed.
captured = {}
def _capture(*args, **kwargs):
    from metaflow._vendor import click
    captured["cls"] = click.get_current_context().obj.flow.__class__
_flowspec_init = FlowSpec.__init__
def _init(self, use_cli=True):
    if use_cli:
        # Imported inside the flow's context, as FlowSpec.__init__ imports it: metaflow.cli builds
        # its Config options from the flow class when it is first imported.
        with mf_parameters.flow_context(self.__class__):
            import metaflow.cli as mf_cli
        command = mf_cli.cli.commands.get("output-raw")
        if command is None:
            fail("metaflow", "this Metaflow has no output-raw command to read the flow through")
        command.callback = _capture
    _flowspec_init(self, use_cli)
FlowSpec.__init__ = _init
sys.argv = [path, "--quiet", "output-raw"]
try:
    # A real __main__ module, as python FLOW.py has: Config expressions and FlowGraph's source
    # lookups go through sys.modules[cls.__module__].
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    exec(code, main.__dict__)
except SystemExit as e:
    if "cls" not in captured:
        fail("refused", "Metaflow refused it (exit %s)" % e.code)
except BaseException as e:
    fail("import", "%s: %s" % (type(e).__name__, e))
if "cls" not in captured:
    fail("flow", "the file did not start Metaflow: it needs if __name__ == '__main__': MyFlow()")
cls = captured["cls"]
if wanted and cls.__name__ != wanted:
    fail("flow", "the file runs %s, not %s" % (cls.__name__, wanted))

def pod(v):
    try:
        return json.loads(json.dumps(v))
    except (TypeError, ValueError):
        if isinstance(v, dict):
            return {str(k): pod(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [pod(x) for x in v]
        return repr(v)

has_configs = any(p.IS_CONFIG_PARAMETER for _, p in cls._get_parameters())
if mf_parameters.context_proto is None:
    class _Datastore(object):
        TYPE = ds_type
    mf_parameters.set_parameter_context(cls.__name__, lambda *a, **k: None, _Datastore, {})

from metaflow.parameters import deploy_time_eval
from metaflow.includefile import FilePathClass
from metaflow.plugins.timeout_decorator import get_run_time_limit_for_task

parameters = []
for var, p in cls._get_parameters():
    if p.IS_CONFIG_PARAMETER:
        continue
    t = p.kwargs.get("type")
    is_file = isinstance(t, FilePathClass)
    if is_file or getattr(t, "name", None) == "JSON":
        tname = str(t.name)
    else:
        tname = getattr(t, "__name__", str(t))
    default = p.kwargs.get("default")
    if not is_file:
        try:
            default = deploy_time_eval(default)
        except BaseException as e:
            fail("parameters", "parameter %s: its default failed: %s: %s" % (p.name, type(e).__name__, e))
    if default is not None and not is_file:
        try:
            if tname == "int":
                default = int(default)
            elif tname == "float":
                default = float(default)
            elif tname == "bool":
                default = default if isinstance(default, bool) else str(default).lower() in ("1", "true", "yes", "y")
            elif tname == "JSON":
                default = default if isinstance(default, str) else json.dumps(default)
            elif not isinstance(default, (str, int, float, bool)):
                default = str(default)
        except (TypeError, ValueError) as e:
            fail("parameters", "parameter %s: default %r is not a %s" % (p.name, default, tname))
    parameters.append({
        "name": p.name, "type": tname, "required": bool(p.kwargs.get("required", False)),
        "default": None if is_file else default, "help": p.kwargs.get("help"), "isFile": is_file,
    })

steps = []
for node in cls._graph:
    decos = list(node.decorators)
    for d in decos:
        try:
            d.external_init()
        except BaseException as e:
            fail("decorators", "step %s: @%s: %s: %s" % (node.name, d.name, type(e).__name__, e))
    user, error, minutes = 0, 0, 2
    for d in decos:
        u, e = d.step_task_retry_count()
        user, error = max(user, u), max(error, e)
        if d.name == "retry":
            minutes = d.attributes.get("minutes_between_retries", minutes)
    env = {}
    resources = None
    for d in decos:
        if d.name == "environment":
            env.update({str(k): str(v) for k, v in (d.attributes.get("vars") or {}).items()})
        if d.name == "resources":
            a = d.attributes
            resources = {k: (None if a.get(k) in (None, "", 0, "0") else str(a.get(k))) for k in ("cpu", "memory", "gpu")}
    has_timeout = any(d.name == "timeout" for d in decos)
    steps.append({
        "name": node.name, "type": node.type, "next": list(node.out_funcs), "parents": sorted(node.in_funcs),
        "matchingJoin": node.matching_join, "foreachParam": node.foreach_param,
        "parallel": bool(node.parallel_foreach or node.parallel_step),
        "switchCases": pod(dict(node.switch_cases or {})),
        "decorators": [{"name": d.name, "attributes": pod(dict(d.attributes))} for d in decos if not d.name.startswith("_")],
        "userCodeRetries": int(user), "errorRetries": int(error), "minutesBetweenRetries": float(minutes),
        "timeoutSeconds": int(get_run_time_limit_for_task(decos)) if has_timeout else None,
        "env": env, "resources": resources,
    })

flow_decos = []
try:
    from metaflow.flowspec import FlowStateItems
    deco_map = cls._flow_state[FlowStateItems.FLOW_DECORATORS]
except Exception:
    deco_map = {}
project = None
for name, ds in deco_map.items():
    for d in ds:
        flow_decos.append({"name": name, "attributes": pod(dict(d.attributes))})
        if name == "project":
            a = d.attributes
            project = {"name": str(a.get("name")), "branch": a.get("branch"), "production": bool(a.get("production"))}

out.write(json.dumps({
    "flowName": cls.__name__, "file": path, "steps": steps, "parameters": parameters,
    "project": project, "flowDecorators": flow_decos, "hasConfigs": has_configs,
}))
out.flush()
`

export interface ReadFlowOptions {
  python: string
  /** the FlowSpec class, when the file has several */
  flowName?: string | undefined
  /** Metaflow's datastore type, for deploy-time default functions that look at it */
  datastore?: string | undefined
  env: NodeJS.ProcessEnv
  timeoutMs?: number
}

/** Starts `python -c SCRIPT FLOW` once and returns what Metaflow says about the flow. */
export async function readFlow(flowFile: string, o: ReadFlowOptions): Promise<FlowInfo> {
  const file = resolve(flowFile)
  // Metaflow's CLI makes a local datastore folder (./.metaflow) when it finds none: give it a
  // throwaway one, so reading a flow leaves nothing behind.
  const scratch = await mkdtemp(join(tmpdir(), 'metaflow-kfp-read-'))
  try {
    return await readWith(file, flowFile, o, scratch)
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
}

async function readWith(file: string, flowFile: string, o: ReadFlowOptions, scratch: string): Promise<FlowInfo> {
  const { code, stdout, stderr, spawnError } = await new Promise<{ code: number | null; stdout: string; stderr: string; spawnError?: NodeJS.ErrnoException }>((done) => {
    execFile(
      o.python,
      ['-c', FLOW_READER_PY, file, o.flowName ?? '', o.datastore ?? 'local'],
      { env: { ...o.env, PYTHONDONTWRITEBYTECODE: '1', METAFLOW_USER: o.env.METAFLOW_USER ?? 'kfp-user', METAFLOW_DATASTORE_SYSROOT_LOCAL: scratch }, maxBuffer: 64 << 20, timeout: o.timeoutMs ?? 120_000, killSignal: 'SIGKILL' },
      (err, out, errOut) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null
        if (e && typeof e.code === 'string') return done({ code: null, stdout: out, stderr: errOut, spawnError: e })
        done({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: out, stderr: errOut })
      },
    )
  })
  if (spawnError) {
    throw new AgentError('usage', `failed to start ${o.python} to read the flow`, { cause: spawnError, hint: 'pass --python with an interpreter that has Metaflow' })
  }
  let doc: (FlowInfo & { error?: undefined }) | { error: string; message: string } | undefined
  try {
    doc = JSON.parse(stdout) as typeof doc
  } catch {
    doc = undefined
  }
  if (doc === undefined || code !== 0) {
    const last = (stderr.trim().split('\n').slice(-1)[0] ?? '').trim()
    if (doc && doc.error !== undefined) {
      // Metaflow's CLI printed why it refused the flow (a lint error, a Config it cannot read): its last line says it.
      if (doc.error === 'refused' && last) doc.message = `${doc.message}: ${last}`
      const hint = doc.error === 'metaflow' ? `install Metaflow for ${o.python}, or pass --python` : doc.error === 'flow' ? 'name the FlowSpec class with --flow-name' : 'run python FLOW.py show to see what Metaflow says'
      throw new AgentError('usage', `failed to read the flow ${flowFile}: ${doc.message}`, { hint })
    }
    throw new AgentError('usage', `failed to read the flow ${flowFile}: ${o.python} exited with ${code ?? 'a signal'}${last ? `: ${last}` : ''}`, { hint: 'run python FLOW.py show to see what Metaflow says' })
  }
  return doc as FlowInfo
}
