"""Holds a KFP v2 pipeline (IR YAML) to the rules KFP's driver, launcher and Argo apply only at run time.

Usage: python kfp_rules.py [--static-only] PIPELINE.yaml ...
Prints one line per violation, "<file>: task <path>: <rule>: <what> (<what to do>)", and exits 1,
or prints "ok" and exits 0. Two parts:
  static    what KFP resolves only at run time (placeholders, output keys, iterators, retries, types),
            each rule citing the KFP / Argo code that applies it;
  sdk       the kfp SDK's dsl compiles a pipeline of the same shape, built from this IR's own
            structure, and what matters at run time (retry and backoff fields, iterator items,
            placeholders, parameter types, wiring, container env and resources) must agree with it.
Why both: the SDK's strict parse, KFP's upload validation and its Argo compiler all accept IR
that then misbehaves at run time (a retry policy without backoffMaxDuration never retries).
"""
import inspect
import re
import sys
import tempfile
from typing import List

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

NUMBER_TYPES = {'NUMBER_INTEGER', 'NUMBER_DOUBLE'}
# The whole-string runtimeValue constants KFP's driver replaces (driver/resolve.go, a switch on the whole string).
RUNTIME_CONSTANTS = {
    '{{$.pipeline_job_name}}', '{{$.pipeline_job_resource_name}}', '{{$.pipeline_job_uuid}}',
    '{{$.pipeline_task_name}}', '{{$.pipeline_task_uuid}}', '{{$.pipeline_job_create_time_utc}}',
    '{{$.pipeline_job_schedule_time_utc}}',
}
PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}")
INPUT_PARAM = re.compile(r"^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$")
OUTPUT_FILE = re.compile(r"^\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}$")
ARTIFACT = re.compile(r"^\{\{\$\.(inputs|outputs)\.artifacts\['([^']+)'\]\.(uri|path)\}\}$")


def load(path):
    """The IR as the canonical proto-JSON dict (so 2 and 2.0, or omitted defaults, compare equal)."""
    with open(path) as f:
        # The pipeline is the first document; a PlatformSpec may follow it (generate writes @timeout there).
        doc = next(d for d in yaml.safe_load_all(f) if d is not None)
    spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    return json_format.MessageToDict(spec)


def seconds(duration):
    """Proto-JSON duration text ('259200s', '0.5s') to float seconds."""
    return float(duration[:-1]) if duration else 0.0


# ---------------------------------------------------------------- the IR's structure

def walk(ir):
    """Yields (path, task key, task, the DAG component it sits in, its parent-scope input types) for every task.

    Tasks are reached from root through DAG components (loops), so a path names where a task runs,
    e.g. for-loop-explore/explore.
    """
    comps = ir.get('components', {})

    def visit(prefix, dag_comp, scope_inputs, seen):
        for key, task in (dag_comp.get('dag', {}).get('tasks') or {}).items():
            path = prefix + key
            yield path, key, task, dag_comp, scope_inputs
            ref = task.get('componentRef', {}).get('name')
            child = comps.get(ref)
            if child is not None and 'dag' in child and ref not in seen:
                yield from visit(path + '/', child, child.get('inputDefinitions', {}).get('parameters', {}), seen | {ref})

    root = ir.get('root', {})
    yield from visit('', root, root.get('inputDefinitions', {}).get('parameters', {}), frozenset())


def executor_of(ir, comp):
    label = comp.get('executorLabel')
    return ir.get('deploymentSpec', {}).get('executors', {}).get(label) if label else None


# ---------------------------------------------------------------- static rules

def static_violations(ir):
    """(task path, rule, message) for every run-time rule the IR breaks."""
    out = []
    comps = ir.get('components', {})

    def bad(path, rule, msg):
        out.append((path, rule, msg))

    for path, key, task, dag_comp, scope in walk(ir):
        ref = task.get('componentRef', {}).get('name')
        comp = comps.get(ref)
        if comp is None:
            bad(path, 'component-ref', f'componentRef {ref!r} names no component (name one under components)')
            continue
        siblings = dag_comp.get('dag', {}).get('tasks', {})
        declared_in = comp.get('inputDefinitions', {}).get('parameters', {})
        declared_out_of = lambda c: c.get('outputDefinitions', {}).get('parameters', {})
        inputs = task.get('inputs', {}).get('parameters', {})
        iterator = task.get('parameterIterator')
        is_dag = 'dag' in comp

        for dep in task.get('dependentTasks', []):
            if dep not in siblings or dep == key:
                bad(path, 'dependent-task', f'dependentTasks names {dep!r}, which is not another task of the same DAG (Argo cannot order on it)')

        # Inputs: where each value comes from (driver/resolve.go resolveInputParameter) and its type
        # (resolveInputs' type check: a string never passes for a number, list or struct input).
        for name, spec in inputs.items():
            want = declared_in.get(name, {}).get('parameterType')
            if name not in declared_in:
                bad(path, 'input-declared', f'input {name!r} is not declared by component {ref} (the driver drops it; declare it or fix the name)')
            have = None
            if 'componentInputParameter' in spec:
                src = spec['componentInputParameter']
                if src not in scope:
                    bad(path, 'component-input', f'componentInputParameter {src!r} is not an input of the enclosing DAG ("parent DAG does not have input parameter"; pass it into the loop component or fix the name)')
                else:
                    have = scope[src].get('parameterType')
            elif 'taskOutputParameter' in spec:
                producer = spec['taskOutputParameter'].get('producerTask')
                okey = spec['taskOutputParameter'].get('outputParameterKey')
                if producer not in siblings:
                    bad(path, 'producer-task', f'input {name!r} reads producerTask {producer!r}, which is not a task of the same DAG (the driver cannot find it; pass it through a loop input)')
                else:
                    pcomp = comps.get(siblings[producer].get('componentRef', {}).get('name'), {})
                    if okey not in declared_out_of(pcomp):
                        bad(path, 'output-key', f'input {name!r} reads outputParameterKey {okey!r}, which task {producer} does not declare (it declares {sorted(declared_out_of(pcomp))}; fix the key)')
                    else:
                        have = declared_out_of(pcomp)[okey].get('parameterType')
                    if producer not in task.get('dependentTasks', []):
                        bad(path, 'producer-dependency', f'input {name!r} reads task {producer} but dependentTasks does not name it (the task may start before the value exists; add it)')
            elif 'runtimeValue' in spec:
                const = spec['runtimeValue'].get('constant')
                if isinstance(const, str):
                    have = 'STRING'
                    if '{{$' in const and const not in RUNTIME_CONSTANTS and '{{$.workspace_path}}' not in const:
                        bad(path, 'runtime-constant', f'input {name!r} is the constant {const!r}: KFP resolves a runtimeValue placeholder only as the whole string, one of {sorted(RUNTIME_CONSTANTS)} (make it exactly one, and add text in the args)')
                elif isinstance(const, bool):
                    have = 'BOOLEAN'
                elif isinstance(const, (int, float)):
                    have = 'NUMBER_DOUBLE'
                elif isinstance(const, list):
                    have = 'LIST'
                elif isinstance(const, dict):
                    have = 'STRUCT'
            if want and have and not compatible(have, want):
                bad(path, 'input-type', f'input {name!r} is {want} but gets a {have} value (the driver fails with "type mismatch"; declare matching types)')

        # A condition (driver/dag.go, container.go: expression.Condition) is CEL over the task's own resolved
        # inputs: each inputs.parameter_values['x'] it reads must be an input the task passes and its
        # component declares, and CEL has no == between a string and a number ("no such overload").
        condition = task.get('triggerPolicy', {}).get('condition')
        if condition:
            if condition.count('(') != condition.count(')') or condition.count("'") % 2:
                bad(path, 'condition-syntax', f'triggerPolicy.condition {condition!r} has unbalanced parentheses or quotes (KFP\'s driver fails to compile it; write it as the kfp SDK does)')
            for m in CONDITION_INPUT.finditer(condition):
                name = m.group(2)
                if name not in inputs or name not in declared_in:
                    bad(path, 'condition-input', f"triggerPolicy.condition reads inputs.parameter_values['{name}'], which the task does not {'pass' if name not in inputs else 'declare'} (the driver evaluates it over the task's own inputs and fails with no such key; pass and declare it)")
                    continue
                ptype = declared_in[name].get('parameterType')
                literal = m.group(3)
                if literal is not None and m.group(1) is None:
                    is_text = literal[0] in '\'"'
                    if (ptype in NUMBER_TYPES and is_text) or (ptype == 'STRING' and not is_text):
                        bad(path, 'condition-type', f"triggerPolicy.condition compares the {ptype} input {name!r} with {literal} (CEL has no such overload, so the driver fails the task; compare it with a {'number' if ptype in NUMBER_TYPES else 'quoted string'})")
        for dep in task.get('dependentTasks', []):
            if dep in siblings and dep != key and siblings[dep].get('triggerPolicy', {}).get('condition'):
                bad(path, 'condition-dependency', f'dependentTasks names {dep!r}, which has a triggerPolicy.condition: when it is false KFP skips {dep} and every task that depends on it (Argo omits it), so this one never runs (depend on the condition-branches group and read its dsl.OneOf output)')

        # Every declared input without a default must get a value (resolveInputs: "neither value nor default value").
        for name, d in declared_in.items():
            if iterator and name == iterator.get('itemInput'):
                continue
            if name not in inputs and not d.get('isOptional') and 'defaultValue' not in d:
                bad(path, 'input-missing', f'component {ref} input {name!r} gets no value and has no default (the driver fails the task; pass it)')

        # Iterators (driver/dag.go: items must be an input of the loop task; resolve.go: itemInput feeds each iteration).
        if iterator:
            items = iterator.get('items', {})
            item_input = iterator.get('itemInput')
            if not is_dag:
                bad(path, 'iterator-component', f'parameterIterator on a task whose component {ref} is not a DAG (loop over a DAG component)')
            if 'inputParameter' in items:
                src = items['inputParameter']
                if src not in inputs:
                    bad(path, 'iterator-items', f'parameterIterator.items.inputParameter {src!r} is not an input of the loop task ("cannot find input parameter"; name one of {sorted(inputs)})')
                elif src not in declared_in:
                    bad(path, 'iterator-items', f'parameterIterator.items.inputParameter {src!r} is not declared by component {ref} (declare it as LIST)')
                elif declared_in[src].get('parameterType') not in ('LIST', 'STRING'):
                    bad(path, 'iterator-items', f'parameterIterator.items.inputParameter {src!r} is {declared_in[src].get("parameterType")}, not a LIST (the driver cannot iterate it)')
            elif 'raw' not in items:
                bad(path, 'iterator-items', 'parameterIterator has no items (give items.inputParameter)')
            if not item_input or item_input not in declared_in:
                bad(path, 'iterator-item-input', f'parameterIterator.itemInput {item_input!r} is not declared by component {ref} (the iterations get the item under that name; declare it)')
            elif item_input in inputs:
                bad(path, 'iterator-item-input', f'itemInput {item_input!r} is also given a value by the loop task (each iteration sets it; remove that input)')

        # Retries (compiler/argocompiler/container.go getTaskRetryParametersWithValues, Argo's processNodeRetries).
        retry = task.get('retryPolicy')
        if retry is not None:
            count = retry.get('maxRetryCount', 0)
            if is_dag:
                bad(path, 'retry-dag', f'retryPolicy on a DAG task is never compiled into an Argo retryStrategy (only container tasks retry; put it on the tasks inside {ref})')
            elif count > 0:
                max_d = retry.get('backoffMaxDuration')
                if max_d is None or seconds(max_d) < 1:
                    bad(path, 'retry-max-duration', f'retryPolicy has backoffMaxDuration {max_d or "unset"}: KFP >= 2.14 passes whole seconds to Argo, which get maxDuration "0" and fail the task after its first attempt ("Max duration limit exceeded"), so it never retries (set backoffMaxDuration to cover the longest step times {count + 1} attempts)')
                factor = retry.get('backoffFactor', 0)
                if factor != int(factor):
                    bad(path, 'retry-factor', f'retryPolicy.backoffFactor {factor} is not a whole number: KFP passes "{factor}" and Argo parses the factor as an integer, so the retry node errors (use a whole number)')
                first = seconds(retry.get('backoffDuration'))
                waits = sum(first * (int(factor) ** k if int(factor) > 0 else 1) for k in range(count))
                if max_d is not None and seconds(max_d) >= 1 and waits >= seconds(max_d):
                    bad(path, 'retry-backoff', f'the backoff waits of {count} retries ({waits:g}s) reach backoffMaxDuration ({max_d}): Argo fails with "Backoff would exceed max duration limit" (raise backoffMaxDuration)')

        # The container (driver/driver.go hands command+args to the launcher; component/launcher_v2.go
        # compileCmdAndArgs substitutes placeholders and collectOutputParameters reads every declared output).
        if not is_dag:
            ex = executor_of(ir, comp)
            if ex is None or 'container' not in ex:
                bad(path, 'executor', f'component {ref} has no container executor (executorLabel {comp.get("executorLabel")!r}; add it under deploymentSpec.executors)')
                continue
            c = ex['container']
            command, args = c.get('command', []), c.get('args', [])
            if command and PLACEHOLDER.search(command[0]) and command[0] != '{{$}}':
                bad(path, 'placeholder-command', f'command[0] {command[0]!r} holds a placeholder, which the launcher never substitutes in the executable (use a fixed path)')
            outs = comp.get('outputDefinitions', {}).get('parameters', {})
            in_arts = comp.get('inputDefinitions', {}).get('artifacts', {})
            out_arts = comp.get('outputDefinitions', {}).get('artifacts', {})
            written = set()
            whole_executor_input = False
            for arg in list(command[1:]) + list(args):
                if arg.lstrip().startswith('{"Concat"'):
                    bad(path, 'placeholder-concat', f'argument {arg!r} is a Concat placeholder, which KFP\'s backend never resolves (write the placeholder inline in one string)')
                for ph in PLACEHOLDER.findall(arg):
                    if ph == '{{$}}':
                        whole_executor_input = True
                        continue
                    m_in, m_out, m_art = INPUT_PARAM.match(ph), OUTPUT_FILE.match(ph), ARTIFACT.match(ph)
                    if m_in:
                        if m_in.group(1) not in declared_in:
                            bad(path, 'placeholder-input', f'argument {arg!r} names input {m_in.group(1)!r}, which component {ref} does not declare (KFP >= 2.17 fails the task, older ones pass the text as is; declare it or fix the name)')
                    elif m_out:
                        if m_out.group(1) not in outs:
                            bad(path, 'placeholder-output', f'argument {arg!r} names output {m_out.group(1)!r}, which component {ref} does not declare (the launcher passes the text as is; declare it or fix the name)')
                        written.add(m_out.group(1))
                    elif m_art:
                        table = in_arts if m_art.group(1) == 'inputs' else out_arts
                        if m_art.group(2) not in table:
                            bad(path, 'placeholder-artifact', f'argument {arg!r} names artifact {m_art.group(2)!r}, which component {ref} does not declare (declare it or fix the name)')
                    else:
                        bad(path, 'placeholder-unknown', f'argument {arg!r} holds {ph}, which the launcher does not substitute in arguments (pass run values as runtimeValue task inputs)')
            if not whole_executor_input:
                for name in sorted(set(outs) - written):
                    bad(path, 'output-unwritten', f'output {name!r} of component {ref} has no {{{{$.outputs.parameters[\'{name}\'].output_file}}}} argument, so the command cannot write it and the launcher fails the task (pass its output_file)')
    # A DAG's outputs (driver/resolve.go resolveUpstreamParameters): each selector names a task of the DAG
    # and an output it declares; a dsl.OneOf needs at least two branches to choose from.
    for comp_name, comp in comps.items():
        dag = comp.get('dag')
        if not dag:
            continue
        declared_out = comp.get('outputDefinitions', {}).get('parameters', {})
        for name, spec in dag.get('outputs', {}).get('parameters', {}).items():
            if name not in declared_out:
                bad(comp_name, 'dag-output', f'dag output {name!r} is not in outputDefinitions (a task reading it gets nothing; declare it)')
            selectors = [spec['valueFromParameter']] if 'valueFromParameter' in spec else spec.get('valueFromOneof', {}).get('parameterSelectors', [])
            for sel in selectors:
                producer, okey = sel.get('producerSubtask'), sel.get('outputParameterKey')
                ptask = dag.get('tasks', {}).get(producer)
                if ptask is None:
                    bad(comp_name, 'dag-output', f'dag output {name!r} reads producerSubtask {producer!r}, which is not a task of that DAG (name one of its tasks)')
                elif okey not in comps.get(ptask.get('componentRef', {}).get('name'), {}).get('outputDefinitions', {}).get('parameters', {}):
                    bad(comp_name, 'dag-output', f'dag output {name!r} reads output {okey!r}, which task {producer} does not declare (fix the key)')
    return out


# inputs.parameter_values['x'] (group 2), a call around it such as int(...) (group 1), and the literal it is compared with (group 3).
CONDITION_INPUT = re.compile(r"(?:(int|double|string)\()?inputs\.parameter_values\['([^']+)'\]\)?(?:\s*(?:==|!=)\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\d+(?:\.\d+)?|true|false))?")


def compatible(have, want):
    """What resolveInputs' type check lets through (a STRING input takes any value as text)."""
    if want == 'STRING' or have == want:
        return True
    return have in NUMBER_TYPES and want in NUMBER_TYPES


# ---------------------------------------------------------------- the kfp SDK's reference pipeline

PY_TYPES = {'STRING': str, 'NUMBER_INTEGER': int, 'NUMBER_DOUBLE': float, 'BOOLEAN': bool, 'LIST': list, 'STRUCT': dict}
ELEMENT_TYPES = {'STRING': List[str], 'NUMBER_INTEGER': List[int], 'NUMBER_DOUBLE': List[float], 'BOOLEAN': List[bool], 'STRUCT': List[dict]}


class CannotBuild(Exception):
    pass


def reference_ir(ir):
    """Compiles, with the kfp SDK's dsl, a pipeline of the same shape as `ir`; returns its canonical dict.

    Built from the IR's structure: one container component per executor component (same inputs,
    outputs, image, command, and arguments made from the SDK's own placeholder objects), tasks in
    dependency order, the same env and resources through set_env_variable, set_cpu_/memory_request
    and _limit, set_accelerator_type and _limit, dsl.ParallelFor over the same values, set_retry with the same count (and the
    backoff fields we give, the SDK's defaults for those we omit), the same caching and the same
    runtimeValue placeholders. Names follow ours, so both compile to comparable IR.
    """
    from kfp import compiler, dsl

    comps = ir.get('components', {})
    # A LIST output's element type: what the loops iterating over it declare their item as.
    list_elements = {}
    for _, _, task, dag_comp, _ in walk(ir):
        it = task.get('parameterIterator')
        src = it and task.get('inputs', {}).get('parameters', {}).get(it.get('items', {}).get('inputParameter'), {}).get('taskOutputParameter')
        if src:
            producer = dag_comp['dag']['tasks'].get(src['producerTask'], {}).get('componentRef', {}).get('name')
            loop = comps.get(task['componentRef']['name'], {})
            item_type = loop.get('inputDefinitions', {}).get('parameters', {}).get(it.get('itemInput'), {}).get('parameterType')
            if item_type in ELEMENT_TYPES:
                list_elements[(producer, src['outputParameterKey'])] = ELEMENT_TYPES[item_type]

    def python_name(name):
        ident = name.replace('-', '_')
        if not ident.isidentifier():
            raise CannotBuild(f'name {name!r} cannot be a Python parameter or function name')
        return ident

    def container_component(ref):
        comp = comps[ref]
        ex = executor_of(ir, comp)
        if ex is None or 'container' not in ex:
            raise CannotBuild(f'component {ref} has no container executor')
        c = ex['container']
        params = []
        for name, d in comp.get('inputDefinitions', {}).get('parameters', {}).items():
            kw = {'annotation': PY_TYPES[d.get('parameterType', 'STRING')]}
            if 'defaultValue' in d:
                kw['default'] = d['defaultValue']
            params.append(inspect.Parameter(python_name(name), inspect.Parameter.POSITIONAL_OR_KEYWORD, **kw))
        for name, d in comp.get('outputDefinitions', {}).get('parameters', {}).items():
            t = d.get('parameterType', 'STRING')
            elem = list_elements.get((ref, name)) if t == 'LIST' else None
            params.append(inspect.Parameter(python_name(name), inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dsl.OutputPath(elem or PY_TYPES[t])))
        params.sort(key=lambda p: p.default is not inspect.Parameter.empty)

        def body(*values):
            by_name = {p.name: v for p, v in zip(params, values)}

            def arg(text):
                # Each of our placeholders becomes the SDK's own placeholder object; an embedded one an f-string.
                parts, last = [], 0
                for m in PLACEHOLDER.finditer(text):
                    parts.append(text[last:m.start()])
                    ph = m.group(0)
                    m_in, m_out = INPUT_PARAM.match(ph), OUTPUT_FILE.match(ph)
                    name = (m_in or m_out).group(1) if (m_in or m_out) else None
                    if name is None or python_name(name) not in by_name:
                        raise CannotBuild(f'component {ref}: argument {text!r} holds {ph}, which names nothing the component declares')
                    parts.append(by_name[python_name(name)])
                    last = m.end()
                parts.append(text[last:])
                parts = [p for p in parts if not (isinstance(p, str) and p == '')]
                if len(parts) == 1:
                    return parts[0]
                return ''.join(str(p) for p in parts)

            return dsl.ContainerSpec(image=c.get('image'), command=[arg(a) for a in c.get('command', [])] or None, args=[arg(a) for a in c.get('args', [])] or None)

        body.__name__ = python_name(ref[5:] if ref.startswith('comp-') else ref)
        body.__signature__ = inspect.Signature(params)
        return dsl.container_component(body)

    built = {}

    def component_fn(ref):
        if ref not in built:
            built[ref] = container_component(ref)
        return built[ref]

    def order(tasks):
        deps = {}
        for key, t in tasks.items():
            d = set(t.get('dependentTasks', []))
            for spec in t.get('inputs', {}).get('parameters', {}).values():
                if 'taskOutputParameter' in spec:
                    d.add(spec['taskOutputParameter'].get('producerTask'))
            deps[key] = d & set(tasks)
        done, out = set(), []
        while len(out) < len(tasks):
            ready = [k for k in tasks if k not in done and deps[k] <= done]
            if not ready:
                raise CannotBuild(f'tasks {sorted(set(tasks) - done)} depend on each other in a cycle')
            for k in ready:
                done.add(k)
                out.append(k)
        return out

    def first_container_task(made, key):
        v = made[key]
        return v if not isinstance(v, dict) else v['first']

    def build_dag(dag_comp, env):
        """Creates the tasks of one DAG; env maps the DAG's input names to SDK values. Returns {key: task}."""
        tasks = dag_comp.get('dag', {}).get('tasks', {})
        made = {}

        def value(spec):
            if 'componentInputParameter' in spec:
                name = spec['componentInputParameter']
                if name not in env:
                    raise CannotBuild(f'componentInputParameter {name!r} is not an input of the enclosing DAG')
                return env[name]
            if 'taskOutputParameter' in spec:
                p = spec['taskOutputParameter']
                producer = made.get(p.get('producerTask'))
                if isinstance(producer, dict) and p.get('outputParameterKey') in producer.get('outputs', {}):
                    return producer['outputs'][p['outputParameterKey']]
                if producer is None or isinstance(producer, dict):
                    raise CannotBuild(f'producerTask {p.get("producerTask")!r} is not a container task of the same DAG')
                if p.get('outputParameterKey') not in producer.outputs:
                    raise CannotBuild(f'task {p.get("producerTask")} has no output {p.get("outputParameterKey")!r}')
                return producer.outputs[p['outputParameterKey']]
            if 'runtimeValue' in spec:
                const = spec['runtimeValue'].get('constant')
                return dsl.PIPELINE_JOB_ID_PLACEHOLDER if const == '{{$.pipeline_job_uuid}}' else const
            raise CannotBuild(f'input kind {sorted(spec)} is not built')

        for key in order(tasks):
            t = tasks[key]
            ref = t.get('componentRef', {}).get('name')
            comp = comps.get(ref)
            if comp is None:
                raise CannotBuild(f'task {key}: componentRef {ref!r} names no component')
            ins = t.get('inputs', {}).get('parameters', {})
            if 'dag' in comp:
                it = t.get('parameterIterator')
                if not it:
                    made[key] = build_branches(key, t, comp, {name: value(spec) for name, spec in ins.items()})
                    continue
                items_name = it.get('items', {}).get('inputParameter')
                if items_name not in ins:
                    raise CannotBuild(f'task {key}: the iterator items {items_name!r} is not an input of the loop task')
                items = value(ins[items_name])
                limit = t.get('iteratorPolicy', {}).get('parallelismLimit', 0)
                with dsl.ParallelFor(items, parallelism=limit) as item:
                    inner_env = {name: value(spec) for name, spec in ins.items()}
                    inner_env[it.get('itemInput')] = item
                    inner = build_dag(comp, inner_env)
                inside = [v for v in inner.values() if not isinstance(v, dict)] + [v['first'] for v in inner.values() if isinstance(v, dict)]
                made[key] = {'first': inside[0]}
                # The SDK lifts a dependency of a task inside a loop onto the loop task, as ours states it.
                after = [first_container_task(made, d) for d in t.get('dependentTasks', []) if d in made]
                if after:
                    inside[0].after(*after)
                continue
            kwargs = {python_name(name): value(spec) for name, spec in ins.items()}
            try:
                task = component_fn(ref)(**kwargs)
            except CannotBuild:
                raise
            except Exception as e:  # the SDK's own refusal, e.g. an argument of the wrong type or a missing input
                raise CannotBuild(f'task {key}: the kfp SDK refuses it: {e}') from e
            task.set_caching_options(bool(t.get('cachingOptions', {}).get('enableCache', False)))
            set_env_and_resources(task, key, (executor_of(ir, comp) or {}).get('container', {}))
            r = t.get('retryPolicy')
            if r is not None:
                task.set_retry(
                    num_retries=r.get('maxRetryCount', 0),
                    backoff_duration=r.get('backoffDuration'),
                    backoff_factor=r.get('backoffFactor'),
                    backoff_max_duration=r.get('backoffMaxDuration'),
                )
            after = []
            for d in t.get('dependentTasks', []):
                if isinstance(made.get(d), dict) and 'outputs' in made[d]:
                    # The SDK orders a task after a dsl.If/Else group only through its dsl.OneOf output.
                    if not any(spec.get('taskOutputParameter', {}).get('producerTask') == d for spec in ins.values()):
                        raise CannotBuild(f'task {key} waits for the condition group {d} without reading its dsl.OneOf output (the SDK refuses .after() across a dsl.If)')
                elif d in made:
                    after.append(first_container_task(made, d))
            if after:
                task.after(*after)
            made[key] = task
        return made

    def build_branches(key, t, comp, env):
        """A condition-branches group: dsl.If / dsl.Elif ... / dsl.Else over its condition tasks, each a DAG of its own.

        The branches' order comes from their conditions (dsl.Elif's negates every earlier branch), the
        value each compares from the group's inputs; the SDK then writes its own conditions to compare.
        """
        branches = comp['dag'].get('tasks', {})
        if not branches or any('condition' not in b.get('triggerPolicy', {}) for b in branches.values()):
            raise CannotBuild(f'task {key}: a sub-DAG without an iterator that is not a group of condition branches is not built')
        ordered = sorted(branches, key=lambda k: branches[k]['triggerPolicy']['condition'].count('!('))
        outputs_of, first = {}, None
        for i, bkey in enumerate(ordered):
            b = branches[bkey]
            bcomp = comps.get(b.get('componentRef', {}).get('name'))
            if bcomp is None or 'dag' not in bcomp:
                raise CannotBuild(f'task {key}: condition branch {bkey} is not a DAG component')
            benv = {}
            for name, spec in b.get('inputs', {}).get('parameters', {}).items():
                src = spec.get('componentInputParameter')
                if src not in env:
                    raise CannotBuild(f'condition branch {bkey}: input {name!r} does not come from the group\'s inputs')
                benv[name] = env[src]
            cond = b['triggerPolicy']['condition']
            positive = re.search(r"(?<!!\()inputs\.parameter_values\['([^']+)'\] (==|!=) '([^']*)'(?!\))", cond)
            if positive is None and i == len(ordered) - 1 and i > 0:
                context = dsl.Else()
            elif positive is not None:
                channel = benv.get(positive.group(1))
                if channel is None:
                    raise CannotBuild(f'condition branch {bkey}: its condition reads {positive.group(1)!r}, which it is not given')
                test = channel == positive.group(3) if positive.group(2) == '==' else channel != positive.group(3)
                context = dsl.If(test) if i == 0 else dsl.Elif(test)
            else:
                raise CannotBuild(f'condition branch {bkey}: the condition {cond!r} is neither a comparison of a string input nor the negation of every earlier branch')
            with context:
                inner = build_dag(bcomp, benv)
            first = first or next(iter([v if not isinstance(v, dict) else v['first'] for v in inner.values()]), None)
            outs = {}
            for name, spec in bcomp['dag'].get('outputs', {}).get('parameters', {}).items():
                sel = spec.get('valueFromParameter', {})
                producer = inner.get(sel.get('producerSubtask'))
                if producer is None:
                    raise CannotBuild(f'condition branch {bkey}: output {name!r} reads no task of the branch')
                outs[name] = producer['outputs'][sel['outputParameterKey']] if isinstance(producer, dict) else producer.outputs[sel.get('outputParameterKey')]
            outputs_of[bkey] = outs
        group_outputs = {}
        for name, spec in comp['dag'].get('outputs', {}).get('parameters', {}).items():
            sels = spec.get('valueFromOneof', {}).get('parameterSelectors', [])
            try:
                group_outputs[name] = dsl.OneOf(*[outputs_of[sel['producerSubtask']][sel['outputParameterKey']] for sel in sels])
            except KeyError as e:
                raise CannotBuild(f'task {key}: output {name!r} selects {e}, which no branch outputs') from e
            except Exception as e:  # noqa: BLE001 - the SDK's own refusal of the OneOf
                raise CannotBuild(f'task {key}: the kfp SDK refuses the dsl.OneOf of output {name!r}: {e}') from e
        return {'first': first, 'outputs': group_outputs}

    root_params = []
    for name, d in ir.get('root', {}).get('inputDefinitions', {}).get('parameters', {}).items():
        kw = {'annotation': PY_TYPES[d.get('parameterType', 'STRING')]}
        if 'defaultValue' in d:
            kw['default'] = d['defaultValue']
        root_params.append(inspect.Parameter(python_name(name), inspect.Parameter.POSITIONAL_OR_KEYWORD, **kw))
    root_params.sort(key=lambda p: p.default is not inspect.Parameter.empty)

    def pipeline_body(*values):
        env = {p.name: v for p, v in zip(root_params, values)}
        build_dag(ir.get('root', {}), env)

    pipeline_body.__name__ = 'reference'
    pipeline_body.__signature__ = inspect.Signature(root_params)
    pipeline = dsl.pipeline(name=ir.get('pipelineInfo', {}).get('name', 'reference'))(pipeline_body)
    with tempfile.NamedTemporaryFile(suffix='.yaml') as f:
        compiler.Compiler().compile(pipeline, f.name)
        return load(f.name)


# Our resource field -> the SDK's setter given its value. Only the resource_* text fields are read:
# the SDK derives the deprecated numeric ones (cpuLimit, memoryLimit, accelerator.count) from them,
# so ours must agree with what it derives.
RESOURCE_SETTERS = (
    ('resourceCpuRequest', 'set_cpu_request'), ('resourceCpuLimit', 'set_cpu_limit'),
    ('resourceMemoryRequest', 'set_memory_request'), ('resourceMemoryLimit', 'set_memory_limit'),
)


def set_env_and_resources(task, key, container):
    """Gives the SDK task our container's env and resources through the SDK's own setters.

    A value the SDK refuses (a memory of '512MB', a cpu of '2 cores') is one CannotBuild line; a value
    it takes but writes differently shows up as an sdk-container difference.
    """
    try:
        for e in container.get('env', []):
            task.set_env_variable(e.get('name', ''), e.get('value', ''))
        res = container.get('resources', {})
        for field, setter in RESOURCE_SETTERS:
            if field in res:
                getattr(task, setter)(res[field])
        acc = res.get('accelerator', {})
        if 'resourceType' in acc:
            task.set_accelerator_type(acc['resourceType'])
        if 'resourceCount' in acc:
            task.set_accelerator_limit(acc['resourceCount'])
    except Exception as e:  # noqa: BLE001 - the SDK's validators raise ValueError; one line either way
        raise CannotBuild(f'task {key}: the kfp SDK refuses its env or resources: {e}') from e


def projection(ir):
    """What matters at run time for each container task, independent of how loops and channels are named.

    Per task: its component's parameter types and defaults, its executor (image, command, args, env, resources),
    retry policy, caching, where each input comes from (traced through loop inputs to a root input,
    a task output, a loop item or a runtime constant), the container tasks it waits for, and its
    enclosing loops (what they iterate over, their item type and parallelism).
    """
    comps = ir.get('components', {})
    result = {}

    def expand(dag_comp, key):
        """The container tasks a dependency on `key` waits for."""
        t = dag_comp['dag']['tasks'][key]
        c = comps.get(t.get('componentRef', {}).get('name'), {})
        if 'dag' not in c:
            return {key}
        return set().union(*[expand(c, k) for k in c['dag'].get('tasks', {})] or [set()])

    def dag_output(comp, name):
        """A condition group's output traced to the container task outputs it selects from, whatever the groups are named."""
        spec = comp.get('dag', {}).get('outputs', {}).get('parameters', {}).get(name, {})
        tasks = comp.get('dag', {}).get('tasks', {})

        def one(sel):
            c = comps.get(tasks.get(sel.get('producerSubtask'), {}).get('componentRef', {}).get('name'), {})
            return dag_output(c, sel.get('outputParameterKey')) if 'dag' in c else ('output', sel.get('producerSubtask'), sel.get('outputParameterKey'))

        if 'valueFromParameter' in spec:
            return one(spec['valueFromParameter'])
        if 'valueFromOneof' in spec:
            return ('oneof',) + tuple(sorted(repr(one(sel)) for sel in spec['valueFromOneof'].get('parameterSelectors', [])))
        return ('no such dag output', name)

    def visit(dag_comp, trace_env, loops, waits, conditions=()):
        tasks = dag_comp.get('dag', {}).get('tasks', {})

        def source(spec):
            if 'componentInputParameter' in spec:
                return trace_env.get(spec['componentInputParameter'], ('missing', spec['componentInputParameter']))
            if 'taskOutputParameter' in spec:
                p = spec['taskOutputParameter']
                prod = tasks.get(p.get('producerTask'), {})
                pc = comps.get(prod.get('componentRef', {}).get('name'), {})
                if 'dag' in pc and 'parameterIterator' not in prod:
                    return dag_output(pc, p.get('outputParameterKey'))
                return ('output', p.get('producerTask') if 'dag' not in pc else ('dag', p.get('producerTask')), p.get('outputParameterKey'))
            if 'runtimeValue' in spec:
                return ('constant', repr(spec['runtimeValue'].get('constant')))
            return ('other', repr(sorted(spec)))

        for key, t in tasks.items():
            comp = comps.get(t.get('componentRef', {}).get('name'), {})
            ins = t.get('inputs', {}).get('parameters', {})
            my_waits = waits | set().union(*[expand(dag_comp, d) for d in t.get('dependentTasks', []) if d in tasks] or [set()])
            if 'dag' in comp and 'parameterIterator' not in t:
                # A condition group: its condition, with each input it reads named by where that input comes from.
                cond = t.get('triggerPolicy', {}).get('condition')
                here = conditions
                if cond:
                    here = conditions + (re.sub(r"inputs\.parameter_values\['([^']+)'\]", lambda m: repr(source(ins.get(m.group(1), {}))), cond),)
                visit(comp, {name: source(spec) for name, spec in ins.items()}, loops, frozenset(my_waits), here)
                continue
            if 'dag' in comp:
                it = t.get('parameterIterator', {})
                items = source(ins.get(it.get('items', {}).get('inputParameter'), {}))
                item_type = comp.get('inputDefinitions', {}).get('parameters', {}).get(it.get('itemInput'), {}).get('parameterType')
                env = {name: source(spec) for name, spec in ins.items()}
                declared = comp.get('inputDefinitions', {}).get('parameters', {})
                # The loop component's inputs by what feeds them (the SDK names them itself): their types must agree.
                channel_types = sorted((repr(env.get(n, ('item of', items))), d.get('parameterType')) for n, d in declared.items())
                loop = (items, item_type, t.get('iteratorPolicy', {}).get('parallelismLimit', 0), channel_types)
                env[it.get('itemInput')] = ('item of', items)
                visit(comp, env, loops + (loop,), frozenset(my_waits), conditions)
                continue
            ex = executor_of(ir, comp) or {}
            # Keyed by the task's own name; loop tasks are left out, as the SDK names them for-loop-N.
            while key in result:
                key += '#'
            result[key] = {
                'inputs': {n: (d.get('parameterType'), repr(d.get('defaultValue')), d.get('isOptional', False)) for n, d in comp.get('inputDefinitions', {}).get('parameters', {}).items()},
                'outputs': {n: d.get('parameterType') for n, d in comp.get('outputDefinitions', {}).get('parameters', {}).items()},
                # env and resources apart from the rest of the container, so a difference in one is a short line.
                'container': {k: v for k, v in (ex.get('container') or {}).items() if k not in ('env', 'resources')},
                'env': [(e.get('name'), e.get('value')) for e in (ex.get('container') or {}).get('env', [])],
                'resources': (ex.get('container') or {}).get('resources', {}),
                'retryPolicy': t.get('retryPolicy'),
                'cachingOptions': t.get('cachingOptions', {}),
                # Not built into the reference: a condition shows up as a difference rather than passing unchecked.
                'triggerPolicy': t.get('triggerPolicy', {}),
                # The conditions of the dsl.If/Elif/Else groups it sits in, outermost first.
                'conditions': list(conditions),
                'sources': {n: source(s) for n, s in ins.items()},
                'waits for': sorted(my_waits),
                'loops': list(loops),
            }

    root = ir.get('root', {})
    visit(root, {n: ('root input', n) for n in root.get('inputDefinitions', {}).get('parameters', {})}, (), frozenset())
    return result


def sdk_violations(ir):
    try:
        ref = reference_ir(ir)
    except CannotBuild as e:
        return [('-', 'sdk-build', f'the kfp SDK cannot build a pipeline of the same shape: {e} (fix the IR)')]
    except Exception as e:  # noqa: BLE001 - the SDK's compiler refusing what we gave it, e.g. a duration it cannot read
        return [('-', 'sdk-build', f'the kfp SDK fails to compile a pipeline of the same shape: {type(e).__name__}: {e} (fix the IR)')]
    ours, theirs = projection(ir), projection(ref)
    out = []
    for key in sorted(set(ours) | set(theirs)):
        if key not in theirs or key not in ours:
            out.append((key, 'sdk-tasks', "task is %s (the tasks must be the same)" % ("ours only" if key in ours else "the SDK's only")))
            continue
        for field in ours[key]:
            a, b = ours[key][field], theirs[key][field]
            if field == 'inputs':
                # The SDK marks an input with a default as optional; KFP resolves both alike (a default wins).
                a = {n: v[:2] for n, v in a.items()}
                b = {n: v[:2] for n, v in b.items()}
            if field == 'resources':
                # Only the fields that differ (the SDK writes each value twice, as text and as a number).
                a, b = ({k: v for k, v in x.items() if a.get(k) != b.get(k)} for x in (a, b))
            if a != b:
                out.append((key, f'sdk-{field.replace(" ", "-")}', f'ours is {a}, the kfp SDK\'s dsl compiles {b} (make them agree)'))
    # The pipeline's own inputs: same names, types and defaults.
    a = {n: (d.get('parameterType'), repr(d.get('defaultValue'))) for n, d in ir.get('root', {}).get('inputDefinitions', {}).get('parameters', {}).items()}
    b = {n: (d.get('parameterType'), repr(d.get('defaultValue'))) for n, d in ref.get('root', {}).get('inputDefinitions', {}).get('parameters', {}).items()}
    if a != b:
        out.append(('root', 'sdk-root-inputs', f'ours is {a}, the kfp SDK\'s dsl compiles {b} (make them agree)'))
    return out


def check(path, sdk=True):
    try:
        ir = load(path)
    except Exception as e:  # noqa: BLE001 - one line for any parse failure
        return [one_line(f'{path}: task -: parse: {e} (write a valid PipelineSpec)')]
    if ir.get('schemaVersion') != '2.1.0':
        return [f'{path}: task -: schema: schemaVersion is {ir.get("schemaVersion")!r}, not 2.1.0 (write 2.1.0)']
    found = static_violations(ir)
    if sdk:
        found += sdk_violations(ir)
    return [one_line(f'{path}: task {t}: {rule}: {msg}') for t, rule, msg in found]


def one_line(text):
    return ' '.join(text.split())


def main(argv):
    sdk = '--static-only' not in argv
    paths = [a for a in argv if not a.startswith('--')]
    if not paths:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 64
    lines = [line for p in paths for line in check(p, sdk=sdk)]
    print('\n'.join(lines) if lines else 'ok')
    return 1 if lines else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
