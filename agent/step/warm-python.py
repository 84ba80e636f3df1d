# The prestarted Python of a step: imports what Metaflow's own import needs, then runs the step the agent sends, as `python flow.py ...` would.
#
# The agent's loader starts this (`python -c <this>`) as the first thing it does, so Python's start
# and most of its imports overlap Node's start, the code download and the runtime check. Protocol:
# fd 0 carries one JSON line {"argv": [flow.py, ...], "env": {...}, "cwd": "..."}; fd 3 answers one
# line, "ok" (the step runs here now) or "no <why>" (this process exits and the agent starts Python
# afresh). EOF on fd 0 means "not needed": exit quietly.
#
# What makes running here the same as a fresh `python flow.py`:
# - only modules that Metaflow's import pulls in anyway are imported early: the list the image's
#   runtime marker recorded, or run-local's (a file named by the first argument); stdlib and
#   third-party, never metaflow itself, whose config reads the environment when imported;
# - every environment key read (through os.environ) while importing them is recorded; the step
#   runs here only if each such key, and every PYTHON* key (read by the interpreter's start), has
#   the same value in the step's environment;
# - the flow's folder may not hold a module or package named like one imported early (it would
#   have shadowed it);
# - then the environment, the working folder, sys.argv and sys.path[0] become the step's, and the
#   flow runs in the real __main__ module.


def _prestart():
    import json
    import os
    import sys

    if sys.path and sys.path[0] == "":
        # -c puts the agent's working folder first; `python flow.py` puts the flow's folder there.
        del sys.path[0]
    real_environ = os.environ
    read = set()

    class Watched(type(real_environ)):
        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

        def __iter__(self):
            read.add(None)
            return super().__iter__()

    os.environ = Watched(real_environ._data, real_environ.encodekey, real_environ.decodekey, real_environ.encodevalue, real_environ.decodevalue)
    try:
        import importlib

        try:
            if len(sys.argv) > 1:
                # run-local's list, made by one Python of its own (warm-pool.ts)
                with open(sys.argv[1], "rb") as f:
                    warm = json.load(f)
            else:
                with open(os.path.join(sys.prefix, "metaflow-kfp-runtime.json"), "rb") as f:
                    warm = json.load(f).get("warm")
            if not isinstance(warm, list):
                warm = []
        except (OSError, ValueError, AttributeError):
            warm = []
        for name in warm:
            if isinstance(name, str) and not name.startswith("metaflow"):
                try:
                    importlib.import_module(name)
                except BaseException:
                    pass
    finally:
        os.environ = real_environ

    answer = os.fdopen(3, "w")

    def refuse(why):
        answer.write("no %s\n" % why)
        answer.close()
        os._exit(0)

    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            os._exit(0)
        line += chunk
    try:
        cmd = json.loads(line)
        argv, env, cwd = cmd["argv"], cmd["env"], cmd["cwd"]
    except (ValueError, KeyError, TypeError):
        refuse("the command is not one this Python reads")

    before = dict(real_environ)

    # The agent has checked these against the environment this Python started with (warm-python.ts).
    def startup(k):
        return k.startswith("PYTHON") or k in ("LC_ALL", "LC_CTYPE", "LANG")

    keys = {k for k in set(before) | set(env) if not startup(k)}
    differs = sorted(k for k in (keys if None in read else keys & read) if before.get(k) != env.get(k))
    if differs:
        refuse("the step's environment differs in %s, which Python read when it started" % differs[0])
    flow_dir = os.path.dirname(os.path.realpath(os.path.join(cwd, argv[0])))
    try:
        entries = os.listdir(flow_dir)
    except OSError as e:
        refuse("cannot list %s: %s" % (flow_dir, e))
    early = {m.partition(".")[0] for m in sys.modules}
    for entry in entries:
        stem = entry.partition(".")[0]
        if stem in early and stem not in sys.builtin_module_names and (entry.endswith((".py", ".pyc", ".so", ".pth")) or os.path.isdir(os.path.join(flow_dir, entry))):
            refuse("the flow's folder holds %s, which would shadow the module %s" % (entry, stem))

    for k in set(before) - set(env):
        if not startup(k):
            del real_environ[k]
    for k, v in env.items():
        if before.get(k) != v and not startup(k):
            real_environ[k] = v
    os.chdir(cwd)
    sys.argv = list(argv)
    sys.path.insert(0, flow_dir)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    answer.write("ok\n")
    answer.close()
    return argv[0]


def _run():
    flow = _prestart()
    with open(flow, "rb") as f:
        code = compile(f.read(), flow, "exec")
    import importlib.machinery

    g = globals()
    builtins = g["__builtins__"]
    g.clear()
    g.update(__name__="__main__", __doc__=None, __package__=None, __spec__=None, __builtins__=builtins, __file__=flow, __cached__=None, __loader__=importlib.machinery.SourceFileLoader("__main__", flow))
    exec(code, g)


_run()
