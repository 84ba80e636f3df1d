// Reads a flow through Metaflow itself (one Python start): its graph, each step's decorators and the flow's parameters, for generate.
import { execFile } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { resolve } from 'node:path'
import { AgentError } from '../errors.js'
import { makeScratchDir } from '../make-dirs.js'

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
  /** str, int, float, bool, JSON, FilePath (an IncludeFile), or another type's name */
  type: string
  required: boolean
  /** whether the flow gives it a default (after Configs resolve): init needs a value only for a required one without */
  hasDefault: boolean
  /**
   * the default as generate evaluated it (a function default called now); JSON defaults as JSON
   * text; for an IncludeFile, Metaflow's descriptor of the file's content stored in the datastore;
   * null when none, or when only the parameters were read
   */
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
  /** @project: its name, and the branch Metaflow computes for the --branch/--production given (or the decorator's own) */
  project: { name: string; branch: string | null; production: boolean; branchName: string; projectFlowName: string } | null
  /** flow-level decorators by name, with their attributes */
  flowDecorators: { name: string; attributes: Record<string, unknown> }[]
  hasConfigs: boolean
}

// Runs with the user's interpreter: the flow file runs as Metaflow runs it, through its own CLI,
// with a harmless command, and the script reports the flow class the CLI prepared as one JSON
// document. The flow's own prints (and Metaflow's) go to stderr so stdout stays JSON. argv[4] is
// a JSON object of options: what to read (only the parameters, for a step's --param check, or
// everything, for generate), whether to store IncludeFile defaults in the datastore, values that
// replace them, and @project's --branch/--production.
export const FLOW_READER_PY = String.raw`
import json, os, sys
out = sys.stdout
sys.stdout = sys.stderr
path = os.path.abspath(sys.argv[1])
wanted = sys.argv[2] or None
ds_type = sys.argv[3]
opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
only_parameters = opts.get("only") == "parameters"
sys.path.insert(0, os.path.dirname(path))

def fail(kind, message):
    out.write(json.dumps({"error": kind, "message": message}))
    out.flush()
    sys.exit(3)

try:
    import types
    from metaflow import FlowSpec, current
    from metaflow import parameters as mf_parameters
except Exception as e:
    fail("metaflow", "%s: %s" % (type(e).__name__, e))

# Metaflow's own CLI reads the flow: it processes Configs, flow and step mutators, @project's
# branch and the parameters' kwargs exactly as for a run. Its output-raw command is swapped for
# one that keeps what the CLI built, so nothing runs and nothing is printed.
captured = {}
def _capture(*args, **kwargs):
    from metaflow._vendor import click
    captured["cls"] = click.get_current_context().obj.flow.__class__
    captured["graph"] = click.get_current_context().obj.graph
    captured["project"] = {k: getattr(current, k, None) for k in ("project_name", "branch_name", "project_flow_name", "is_production")}
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
# --branch and --production exist only for a flow with @project: Metaflow refuses them otherwise,
# and checks the branch name, as for a run.
top = (["--branch", opts["branch"]] if opts.get("branch") else []) + (["--production"] if opts.get("production") else [])
sys.argv = [path, "--quiet"] + top + ["output-raw"]
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
# The graph checks run and argo-workflows create make (output-raw skips them): a graph Metaflow
# would refuse to run must not become a pipeline.
if not only_parameters:
    from metaflow.lint import linter, LintWarn
    try:
        linter.run_checks(captured["graph"])
    except LintWarn as e:
        where = "line %s: " % e.line_no if getattr(e, "line_no", None) else ""
        fail("lint", "Metaflow's graph check refused it: %s%s" % (where, " ".join(str(getattr(e, "message", e)).split())))

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
# The datastore the pipeline's tasks use, which may not be the one Metaflow's CLI defaults to here:
# deploy-time functions see it, and IncludeFile stores its file with that datastore's client.
mf_parameters.context_proto = mf_parameters.context_proto._replace(ds_type=ds_type)

from metaflow.parameters import DeployTimeField, deploy_time_eval
from metaflow.includefile import FilePathClass, IncludeFile

def store_file(p, t, value):
    # What argo-workflows create does with an IncludeFile's default: Metaflow uploads the file to
    # its datastore and the parameter's value becomes the descriptor init resolves.
    if value is None:
        return None
    try:
        if isinstance(value, DeployTimeField):
            return deploy_time_eval(value)
        # a path given to generate with --param: stored as the flow's own default would be
        ctx = mf_parameters.context_proto._replace(parameter_name=p.name)
        return IncludeFile._eval_default(t._is_text, t._encoding, str(value))(ctx, True)
    except BaseException as e:
        fail("parameters", "parameter %s: failed to store its file in the datastore: %s: %s" % (p.name, type(e).__name__, e))

values = opts.get("values") or {}
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
    has_default = default is not None
    if only_parameters:
        default = None
    elif is_file:
        value = values.get(p.name, default)
        if value is not None and not opts.get("storeFiles"):
            fail("nostore", "parameter %s: an IncludeFile's file must be stored in the datastore, and there is none to store it in" % p.name)
        default = store_file(p, t, value)
    else:
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
        "name": p.name, "type": tname, "required": bool(p.kwargs.get("required", False)), "hasDefault": has_default,
        "default": default, "help": p.kwargs.get("help"), "isFile": is_file,
    })

if only_parameters:
    out.write(json.dumps({"flowName": cls.__name__, "file": path, "steps": [], "parameters": parameters, "project": None, "flowDecorators": [], "hasConfigs": has_configs}))
    out.flush()
    sys.exit(0)

from metaflow.plugins.timeout_decorator import get_run_time_limit_for_task

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
            seen = captured.get("project") or {}
            project = {
                "name": str(a.get("name")), "branch": a.get("branch") or opts.get("branch") or None,
                "production": bool(a.get("production") or opts.get("production")),
                "branchName": str(seen.get("branch_name")), "projectFlowName": str(seen.get("project_flow_name")),
            }

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
  /** where relative paths in the flow (IncludeFile defaults, Config files) resolve, as for python flow.py */
  cwd?: string | undefined
  timeoutMs?: number
  /** read only the parameters (names, types, required, whether they have a default), evaluating nothing: the step's --param check */
  onlyParameters?: boolean
  /**
   * Store each IncludeFile's file (its default, or the path in `values`) in the datastore that
   * these Metaflow settings name, as argo-workflows create does; its default becomes the descriptor.
   */
  storeFiles?: { env: Record<string, string> } | undefined
  /** values given at generate time (--param): only IncludeFile ones are used here, as paths */
  values?: Record<string, string> | undefined
  /** @project's --branch and --production, as the tasks will pass them */
  branch?: string | undefined
  production?: boolean | undefined
}

/** Starts `python -c SCRIPT FLOW` once and returns what Metaflow says about the flow. */
export async function readFlow(flowFile: string, o: ReadFlowOptions): Promise<FlowInfo> {
  const file = resolve(o.cwd ?? '.', flowFile)
  // Metaflow's CLI makes a local datastore folder (./.metaflow) when it finds none: give it a
  // throwaway one, so reading a flow leaves nothing behind.
  const scratch = await makeScratchDir(tmpdir(), 'metaflow-kfp-read-')
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
      ['-c', FLOW_READER_PY, file, o.flowName ?? '', o.datastore ?? 'local', JSON.stringify(scriptOptions(o))],
      {
        cwd: o.cwd,
        env: { ...o.env, ...(o.storeFiles?.env ?? {}), PYTHONDONTWRITEBYTECODE: '1', METAFLOW_USER: o.env.METAFLOW_USER ?? 'kfp-user', METAFLOW_DATASTORE_SYSROOT_LOCAL: scratch },
        maxBuffer: 64 << 20,
        timeout: o.timeoutMs ?? 120_000,
        killSignal: 'SIGKILL',
      },
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
      const option = /no such option: (--branch|--production)/.exec(last)?.[1]
      if (doc.error === 'refused' && option !== undefined) {
        throw new AgentError('usage', `failed to read the flow ${flowFile} with ${option}: the flow has no @project, the decorator that option belongs to`, { hint: `add @project(name=...) to the flow, or leave ${option} out` })
      }
      const hint = doc.error === 'metaflow' ? `install Metaflow for ${o.python}, or pass --python`
        : doc.error === 'flow' ? 'name the FlowSpec class with --flow-name'
        : doc.error === 'nostore' ? 'set --datastore-root s3://bucket/prefix or METAFLOW_DATASTORE_SYSROOT_S3'
        : doc.error === 'lint' ? 'fix the flow as it says; python FLOW.py check shows the same'
        : 'run python FLOW.py show to see what Metaflow says'
      throw new AgentError('usage', `failed to read the flow ${flowFile}: ${doc.message}`, { hint })
    }
    throw new AgentError('usage', `failed to read the flow ${flowFile}: ${o.python} exited with ${code ?? 'a signal'}${last ? `: ${last}` : ''}`, { hint: 'run python FLOW.py show to see what Metaflow says' })
  }
  return doc as FlowInfo
}

function scriptOptions(o: ReadFlowOptions): Record<string, unknown> {
  return {
    only: o.onlyParameters ? 'parameters' : 'all',
    storeFiles: o.storeFiles !== undefined,
    values: o.values ?? {},
    branch: o.branch ?? null,
    production: o.production ?? false,
  }
}
