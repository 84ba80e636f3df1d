"""A loopback stand-in for KFP's REST API (v2beta1) that holds every request to KFP's published contract.

Usage: python kfp-standin.py CONFIG.json   (prints "listening <port>" on stdout, then serves until killed)

No KFP API server can run here (it needs Kubernetes), so the tests talk to this. It is not shaped by
our client: each body is checked against the models `kfp-server-api` generates from KFP's OpenAPI
files (unknown fields and wrong types are refused with 400, as KFP's gateway does with
DiscardUnknown false; proto names and lowerCamelCase JSON names and enums as names or numbers
are accepted, as protojson does), a pipeline spec must parse as the IR proto and load in the kfp
SDK, and the server's own rules apply: multi-user namespaces, the filter decoded twice, runtime
parameters checked against the pipeline's declared inputs, terminal states that never change.
Errors come back in KFP's shape, a google.rpc.Status: {"code", "message", "details"}.

CONFIG (JSON): multi_user (bool), credentials (list of {"token"|"token_file"|"cookie", "namespaces"}),
outcome ("SUCCEEDED" or "FAILED"), page_size_cap (int), experiments (list of {display_name, namespace}).
Test controls (not KFP's): GET /_standin/log, /_standin/runs, /_standin/pipelines, POST /_standin/faults with
[{"method", "path", "status"|"reset": true|"delay": seconds, "count", "after": true}] ("after": the request takes effect,
then the fault is answered), POST /_standin/config to merge keys into CONFIG.
"""
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
import kfp.components
import kfp_server_api.models as models

from kfp_standin_common import HTTP_OF, ApiError, authorize, field, go_query_unescape, matches, multipart, now, public
import kfp_standin_common as common

TERMINAL = {'SUCCEEDED', 'SKIPPED', 'FAILED', 'CANCELED'}
FILTER_OPS = models.V2beta1PredicateOperation.allowable_values


def check(value, typ, where):
    """Holds one JSON value to a kfp-server-api 2.x model type, in protojson's words (DiscardUnknown false)."""
    common.check(value, typ, where, models, unknown=lambda key, t: f'proto: (line 1:1): unknown field "{key}"',
                 invalid=lambda t, w, what: f'proto: syntax error: invalid value for {t} field {w}: {what}')


class State:
    def __init__(self, config):
        self.lock = threading.Lock()
        self.config = config
        self.experiments = []
        self.runs = {}
        self.pipelines = {}
        self.versions = {}
        self.log = []
        self.faults = []
        for e in config.get('experiments', []):
            self.new_experiment(e['display_name'], e.get('namespace', ''))

    def new_experiment(self, name, namespace):
        exp = {'experiment_id': str(uuid.uuid4()), 'display_name': name, 'description': '', 'namespace': namespace,
               'created_at': now(), 'storage_state': 'AVAILABLE'}
        self.experiments.append(exp)
        return exp


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    state: State = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_any('GET')

    def do_POST(self):
        self.handle_any('POST')

    def do_DELETE(self):
        self.handle_any('DELETE')

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        st = self.state
        url = urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        # parse_qs is the gateway's first decoding (url.ParseQuery).
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path.startswith('/_standin/'):
            return self.control(method, url.path, raw)
        entry = {'method': method, 'path': url.path, 'query': query, 'authorization': self.headers.get('Authorization'),
                 'cookie': self.headers.get('Cookie'), 'body': raw.decode(errors='replace')}
        with st.lock:
            st.log.append(entry)
            fault = None
            for f in st.faults:
                if f['count'] > 0 and f['method'] == method and re.search(f['path'], url.path):
                    f['count'] -= 1
                    fault = f
                    break
        if fault and fault.get('delay'):
            time.sleep(fault['delay'])  # a slow answer, then the normal one
            fault = None
        if fault and not fault.get('after'):
            return self.fail(fault)
        try:
            ctype = self.headers.get('Content-Type') or ''
            body = multipart(raw, ctype) if ctype.startswith('multipart/') else (json.loads(raw) if raw else None)
            with st.lock:
                status, obj = route(st, method, url.path, query, body, self.headers)
        except json.JSONDecodeError as e:
            status, obj = 400, {'code': 3, 'message': f'proto: syntax error: {e}', 'details': []}
        except ApiError as e:
            status, obj = HTTP_OF.get(e.code, 500), {'code': e.code, 'message': e.message, 'details': []}
        except Exception as e:  # a bug in the stand-in: answered as KFP answers an internal error, and visible in the test
            status, obj = 500, {'code': 13, 'message': f'stand-in bug: {e!r}', 'details': []}
        if fault:
            return self.fail(fault)
        entry['status'] = status
        self.reply(status, obj)

    def fail(self, fault):
        if fault.get('reset'):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        status = fault['status']
        code = {500: 13, 503: 14, 409: 10, 404: 5}.get(status, 2)
        self.reply(status, {'code': code, 'message': fault.get('message', 'stand-in fault'), 'details': []})

    def control(self, method, path, raw):
        st = self.state
        with st.lock:
            if path == '/_standin/log':
                return self.reply(200, st.log)
            if path == '/_standin/faults':
                st.faults.extend(json.loads(raw))
                return self.reply(200, {})
            if path == '/_standin/config':
                st.config.update(json.loads(raw))
                return self.reply(200, {})
            if path == '/_standin/runs':
                return self.reply(200, list(st.runs.values()))
            if path == '/_standin/pipelines':
                return self.reply(200, {'pipelines': list(st.pipelines.values()), 'versions': [{k: v for k, v in x.items() if k != 'pipeline_spec'} for x in st.versions.values()]})
        self.reply(404, {})


def parse_filter(text):
    """The filter as KFP reads it: the gateway decoded the query once, KFP decodes it again, then protojson."""
    if not text:
        return []
    decoded = go_query_unescape(text)
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as e:
        raise ApiError(3, f'Invalid input error: failed to parse valid filter from {decoded!r}: {e}')
    check(obj, 'V2beta1Filter', 'filter')
    preds = []
    for p in field(obj, 'predicates', []):
        op = p.get('operation')
        op = FILTER_OPS[op] if isinstance(op, int) else op
        preds.append((p.get('key'), op, field(p, 'string_value')))
    return preds


def page(st, items, query, key):
    return common.page(st.config, items, query, key, 20)


PIPELINE_NAME = re.compile(r'^[a-z0-9][a-z0-9-]{0,127}$')


def uploaded_spec(body):
    """The pipeline file of an upload, as KFP reads it: field uploadfile, a .yaml/.yml/.json name, IR that parses."""
    if not isinstance(body, dict) or 'uploadfile' not in body:
        raise ApiError(3, 'Invalid input error: Failed to read pipeline from file: http: no such file')
    filename, data = body['uploadfile']
    if not (filename or '').endswith(('.yaml', '.yml', '.json')):
        raise ApiError(3, 'Invalid input error: Unexpected pipeline file format. Support .zip, .tar.gz, .json or YAML.')
    docs = [d for d in yaml.safe_load_all(data) if d is not None]
    spec = docs[0] if len(docs) == 1 else {'pipeline_spec': docs[0], 'platform_spec': docs[1]}
    ir = check_spec(spec)
    if not PIPELINE_NAME.fullmatch(ir['pipelineInfo']['name']):
        raise ApiError(3, f"Invalid input error: pipeline's name must contain only lowercase alphanumeric characters or '-' and must start with alphanumeric characters: {ir['pipelineInfo']['name']}")
    return spec


def new_version(st, pipeline, name, spec):
    if any(v['pipeline_id'] == pipeline['pipeline_id'] and v['name'] == name for v in st.versions.values()):
        raise ApiError(6, f'Failed to create a pipeline version: Already exist error: Pipeline version with name {name} already exists')
    v = {'pipeline_id': pipeline['pipeline_id'], 'pipeline_version_id': str(uuid.uuid4()), 'name': name, 'display_name': name,
         'created_at': now(), 'pipeline_spec': spec}
    st.versions[v['pipeline_version_id']] = v
    return v


def pipelines_route(st, method, path, query, body, headers, multi):
    ns = query.get('namespace', '') if multi else ''
    m = re.fullmatch(r'/apis/v2beta1/pipelines/names/([^/]+)', path)
    if m and method == 'GET':
        authorize(st.config, headers, ns or None if multi else None)
        p = next((p for p in st.pipelines.values() if p['name'] == m.group(1) and p['namespace'] == ns), None)
        if p is None:
            raise ApiError(5, f'Failed to get a pipeline by name: ResourceNotFoundError: Pipeline {m.group(1)} not found')
        return 200, p
    if path == '/apis/v2beta1/pipelines/upload' and method == 'POST':
        authorize(st.config, headers, ns or None if multi else None)
        spec = uploaded_spec(body)
        name = query.get('name') or check_spec(spec)['pipelineInfo']['name']
        if not PIPELINE_NAME.fullmatch(name):
            raise ApiError(3, f"Invalid input error: pipeline's name must contain only lowercase alphanumeric characters or '-': {name}")
        if any(p['name'] == name and p['namespace'] == ns for p in st.pipelines.values()):
            raise ApiError(6, f'Failed to create a pipeline: Already exist error: Pipeline with name {name} already exists')
        p = {'pipeline_id': str(uuid.uuid4()), 'name': name, 'display_name': query.get('display_name') or name, 'namespace': ns, 'created_at': now()}
        st.pipelines[p['pipeline_id']] = p
        new_version(st, p, name, spec)
        return 200, p
    if path == '/apis/v2beta1/pipelines/upload_version' and method == 'POST':
        p = st.pipelines.get(query.get('pipelineid', ''))
        if p is None:
            raise ApiError(5, f"Failed to create a pipeline version: ResourceNotFoundError: Pipeline {query.get('pipelineid')} not found")
        authorize(st.config, headers, p['namespace'] or None if multi else None)
        spec = uploaded_spec(body)
        name = query.get('name') or check_spec(spec)['pipelineInfo']['name']
        if not PIPELINE_NAME.fullmatch(name):
            raise ApiError(3, f"Invalid input error: pipeline version's name must contain only lowercase alphanumeric characters or '-': {name}")
        return 200, new_version(st, p, name, spec)
    m = re.fullmatch(r'/apis/v2beta1/pipelines/([^/]+)/versions', path)
    if m and method == 'GET':
        p = st.pipelines.get(m.group(1))
        if p is None:
            raise ApiError(5, f'Pipeline {m.group(1)} not found')
        authorize(st.config, headers, p['namespace'] or None if multi else None)
        preds = parse_filter(query.get('filter'))
        items = [v for v in st.versions.values() if v['pipeline_id'] == p['pipeline_id'] and matches(v, preds)]
        return 200, page(st, items, query, 'pipeline_versions')
    raise ApiError(5, 'Not Found')


def route(st, method, path, query, body, headers):
    multi = bool(st.config.get('multi_user'))
    if path.startswith('/apis/v2beta1/pipelines'):
        return pipelines_route(st, method, path, query, body, headers, multi)
    m = re.fullmatch(r'/apis/v2beta1/(healthz|experiments|runs)(?:/([^/:]+))?(?::(terminate))?', path)
    if not m:
        raise ApiError(5, 'Not Found')
    what, ident, verb = m.groups()
    if what == 'healthz' and method == 'GET':
        return 200, {'multi_user': multi, 'pipeline_store': 'database'}
    if what == 'experiments' and method == 'GET' and ident is None:
        ns = query.get('namespace', '')
        if multi and not ns:
            raise ApiError(3, 'Invalid input error: ListExperiments must filter by resource reference in multi-user mode.')
        authorize(st.config, headers, ns if multi else None)
        preds = parse_filter(query.get('filter'))
        items = [e for e in st.experiments if (not multi or e['namespace'] == ns) and matches(e, preds)]
        return 200, page(st, items, query, 'experiments')
    if what == 'experiments' and method == 'POST' and ident is None:
        check(body, 'V2beta1Experiment', 'experiment')
        name = field(body, 'display_name', '')
        ns = field(body, 'namespace', '') if multi else ''
        if not name:
            raise ApiError(3, 'Invalid input error: Experiment name is empty. Please specify a valid experiment name')
        if multi and not ns:
            raise ApiError(3, 'Invalid input error: An experiment cannot have an empty namespace in multi-user mode')
        authorize(st.config, headers, ns if multi else None)
        if any(e['display_name'] == name and e['namespace'] == ns for e in st.experiments):
            raise ApiError(6, f'Failed to create a new experiment: Already exist error: Experiment with name {name} already exists')
        return 200, st.new_experiment(name, ns)
    if what == 'experiments' and method == 'GET':
        exp = next((e for e in st.experiments if e['experiment_id'] == ident), None)
        if exp is None:
            raise ApiError(5, f'Failed to get experiment: ResourceNotFoundError: Experiment {ident} not found')
        authorize(st.config, headers, exp['namespace'] if multi else None)
        return 200, exp
    if what == 'runs' and method == 'POST' and ident is None:
        return 200, create_run(st, body, headers, multi)
    if what == 'runs' and method == 'GET' and ident is None:
        ns = query.get('namespace', '')
        exp_id = query.get('experiment_id', '')
        if multi and not ns and not exp_id:
            raise ApiError(3, 'Invalid input error: ListRuns must filter by resource reference in multi-user mode.')
        exp = next((e for e in st.experiments if e['experiment_id'] == exp_id), None)
        authorize(st.config, headers, (exp['namespace'] if exp else ns) if multi else None)
        preds = parse_filter(query.get('filter'))
        items = [public(r) for r in st.runs.values() if (not exp_id or r['experiment_id'] == exp_id) and matches(r, preds)]
        return 200, page(st, items, query, 'runs')
    if what == 'runs' and ident is not None:
        run = st.runs.get(ident)
        if run is None:
            raise ApiError(5, f'Failed to get a run: ResourceNotFoundError: Run {ident} not found')
        authorize(st.config, headers, run['_namespace'] if multi else None)
        if method == 'POST' and verb == 'terminate':
            if run['state'] not in TERMINAL:
                run['state'] = 'CANCELING'
                run['_terminated'] = True
            return 200, {}
        if method == 'GET' and verb is None:
            advance(st, run)
            return 200, public(run)
    raise ApiError(5, 'Not Found')


def create_run(st, body, headers, multi):
    check(body, 'V2beta1Run', 'run')
    if not field(body, 'display_name'):
        raise ApiError(3, 'Invalid input error: The run name is empty. Please specify a valid name')
    spec = field(body, 'pipeline_spec')
    ref = field(body, 'pipeline_version_reference')
    if spec is None and ref is None:
        raise ApiError(3, 'Invalid input error: Failed to create a run due to missing pipeline spec and pipeline version reference')
    if spec is None:
        version = st.versions.get(field(ref, 'pipeline_version_id', ''))
        if version is None or version['pipeline_id'] != field(ref, 'pipeline_id', version and version['pipeline_id']):
            raise ApiError(5, f'Failed to create a run: ResourceNotFoundError: PipelineVersion {field(ref, "pipeline_version_id")} not found')
        spec = version['pipeline_spec']
    spec = check_spec(spec)
    rc = field(body, 'runtime_config') or {}
    declared = spec.get('root', {}).get('inputDefinitions', {}).get('parameters', {})
    return finish_run(st, body, headers, multi, spec, rc, declared)


def check_spec(spec):
    """The IR of a pipeline_spec (bare, or with a platform spec), held to the proto and the kfp SDK's loader."""
    if not isinstance(spec, dict):
        raise ApiError(3, 'Invalid input error: pipeline_spec must be an object')
    platform = None
    if 'pipeline_spec' in spec and 'platform_spec' in spec and set(spec) <= {'pipeline_spec', 'platform_spec'}:
        spec, platform = spec['pipeline_spec'], spec['platform_spec']
    ir = pipeline_spec_pb2.PipelineSpec()
    try:
        json_format.ParseDict(spec, ir)
        if platform is not None:
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as e:
        raise ApiError(3, f'Invalid input error: Failed to parse the pipeline spec: {e}')
    if not ir.pipeline_info.name or not ir.HasField('root'):
        raise ApiError(3, 'Invalid input error: unknown template format: pipeline spec is invalid')
    try:
        kfp.components.load_component_from_text(yaml.safe_dump(spec))
    except Exception as e:  # the SDK's own loader is the judge
        raise ApiError(3, f'Invalid input error: the kfp SDK cannot load the pipeline spec: {e}')
    return spec


def finish_run(st, body, headers, multi, spec, rc, declared):
    for name, value in (field(rc, 'parameters') or {}).items():
        if name not in declared:
            raise ApiError(3, f'Invalid input error: parameter input {name} is not declared by the pipeline; its inputs are {sorted(declared)}')
        want = declared[name].get('parameterType')
        ok = {'STRING': isinstance(value, str), 'BOOLEAN': isinstance(value, bool),
              'NUMBER_INTEGER': isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer(),
              'NUMBER_DOUBLE': isinstance(value, (int, float)) and not isinstance(value, bool),
              'LIST': isinstance(value, list), 'STRUCT': isinstance(value, dict)}.get(want, True)
        if not ok:
            raise ApiError(3, f'Invalid input error: input parameter {name} requires type {want}, but got {json.dumps(value)}')
    exp_id = field(body, 'experiment_id', '')
    if multi and not exp_id:
        raise ApiError(3, 'Invalid input error: Experiment id can not be empty in multi-user mode')
    if exp_id:
        exp = next((e for e in st.experiments if e['experiment_id'] == exp_id), None)
        if exp is None:
            raise ApiError(5, f'Failed to create a run: ResourceNotFoundError: Experiment {exp_id} not found')
    else:
        exp = next((e for e in st.experiments if e['display_name'] == 'Default'), None) or st.new_experiment('Default', '')
    authorize(st.config, headers, exp['namespace'] if multi else None)
    tasks = list(spec.get('root', {}).get('dag', {}).get('tasks', {}).keys())
    run = {'run_id': str(uuid.uuid4()), 'experiment_id': exp['experiment_id'], 'display_name': field(body, 'display_name'),
           'description': field(body, 'description', ''), 'storage_state': 'AVAILABLE', 'pipeline_spec': field(body, 'pipeline_spec'),
           'pipeline_version_reference': field(body, 'pipeline_version_reference'),
           'runtime_config': rc, 'created_at': now(), 'state': 'PENDING', '_namespace': exp['namespace'], '_tasks': tasks,
           '_tick': 0, '_outcome': st.config.get('outcome', 'SUCCEEDED')}
    st.runs[run['run_id']] = run
    return public(run)


def advance(st, run):
    """Each GET moves the run one task on: PENDING, each task RUNNING then SUCCEEDED, then the outcome."""
    if run['state'] in TERMINAL:
        return
    if run.get('_terminated'):
        run['state'] = 'CANCELED'
        run['finished_at'] = now()
        return
    run['_tick'] += 1
    n = len(run['_tasks'])
    k = run['_tick']
    details = []
    for i, t in enumerate(run['_tasks']):
        if i < k - 1:
            s = 'SUCCEEDED'
        elif i == k - 1:
            s = 'RUNNING'
        else:
            continue
        if k > n and i == n - 1:
            s = run['_outcome']
        details.append({'run_id': run['run_id'], 'task_id': f'{run["run_id"][:8]}-{i}', 'display_name': t, 'state': s, 'create_time': now()})
    run['run_details'] = {'task_details': details}
    if k > n:
        run['state'] = run['_outcome']
        run['finished_at'] = now()
        if run['_outcome'] == 'FAILED':
            run['error'] = {'code': 13, 'message': f'task {run["_tasks"][-1] if n else "?"} failed', 'details': []}
    else:
        run['state'] = 'RUNNING'


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    Handler.state = State(config)
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    print(f'listening {server.server_address[1]}', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
