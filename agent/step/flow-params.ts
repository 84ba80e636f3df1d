// Asks Metaflow itself what a flow declares (its Parameters), by loading the flow file with the step's interpreter.
import { execFile } from 'node:child_process'
import { dirname } from 'node:path'

export interface FlowParameter {
  /** the name as the flow gives it to Parameter(...) */
  name: string
  /** true when Metaflow will refuse to start without a value */
  required: boolean
}

export interface FlowInfo {
  flow: string
  parameters: FlowParameter[]
}

/** Marks the one line of the script's answer, so whatever the flow prints while it loads cannot be taken for it. */
const MARK = '@@metaflow-kfp-flow-info@@'

// Loaded under a name other than __main__, so the flow's `if __name__ == "__main__"` does not run
// it; stdout is stderr while it loads, so its prints stay out of the answer. Metaflow's own
// _get_parameters is what `init` reads parameters from; Config objects are not init parameters.
const SCRIPT = `
import contextlib, json, runpy, sys
path, name = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
sys.argv = [path]
with contextlib.redirect_stdout(sys.stderr):
    from metaflow import FlowSpec
    scope = runpy.run_path(path, run_name="__metaflow_kfp_inspect__")
    cls = scope.get(name)
    if not (isinstance(cls, type) and issubclass(cls, FlowSpec)):
        sys.stderr.write("%s is not a FlowSpec class in %s\\n" % (name, path))
        sys.exit(3)
    params = []
    for _, p in cls._get_parameters():
        if getattr(p, "IS_CONFIG_PARAMETER", False):
            continue
        kw = dict(getattr(p, "kwargs", {}) or {})
        kw.update({k: v for k, v in (getattr(p, "_override_kwargs", {}) or {}).items() if v is not None})
        params.append({"name": p.name, "required": kw.get("required") is True and kw.get("default") is None})
print("${MARK}" + json.dumps({"flow": name, "parameters": params}))
`

export interface FlowInfoOptions {
  python: string
  flowPath: string
  flowName: string
  env: NodeJS.ProcessEnv
  /** how long loading the flow may take */
  timeoutMs?: number
}

/** Loads the flow through Metaflow and lists its parameters; rejects with the loader's last stderr line when it cannot. */
export function readFlowInfo(o: FlowInfoOptions): Promise<FlowInfo> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      o.python,
      ['-c', SCRIPT, o.flowPath, o.flowName, dirname(o.flowPath)],
      { cwd: dirname(o.flowPath), env: o.env, timeout: o.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith(MARK))
        if (err || line === undefined) {
          const last = stderr.trim().split('\n').at(-1) ?? ''
          const why = err && 'killed' in err && err.killed ? `it took more than ${(o.timeoutMs ?? 120_000) / 1000} s` : last || (err?.message ?? 'it printed no answer')
          reject(new Error(`failed to load ${o.flowName} from ${o.flowPath} with ${o.python}: ${why}`))
          return
        }
        try {
          resolvePromise(JSON.parse(line.slice(MARK.length)) as FlowInfo)
        } catch (e) {
          reject(new Error(`failed to read the flow's parameters: ${(e as Error).message}`))
        }
      },
    )
  })
}
