"""A loopback stand-in for KFP 1.8's REST API (v1beta1) that holds every request to KFP 1.8's published contract.

Usage: .venv-kfp1/bin/python kfp-standin-v1.py CONFIG.json   (prints "listening <port>", then serves until killed)

No KFP API server can run here (it needs Kubernetes), so the tests talk to this. It runs in the second venv
(.venv-kfp1, `make kfp1-venv`), whose kfp-server-api 1.8.5 carries the v1beta1 models generated from KFP
1.8's OpenAPI files: each body is checked against them (wrong types are refused with 400; proto names and lowerCamelCase
names, enums as names or numbers, are accepted as jsonpb does; an unknown field is dropped, as KFP 1.8's
grpc-gateway v1 does with its default marshaler, and logged as unknown_fields so a test can hold a client
to none; the filter, which KFP decodes itself with jsonpb, refuses one), and
KFP 1.8's server rules apply: workflow_manifest is a JSON string of an argoproj.io/v1alpha1 Workflow,
parameters are name/value strings (names the workflow does not declare are dropped, as KFP's
OverrideParameters does), at most 10000 bytes of them; experiments by `name`, owned by a NAMESPACE
reference in multi-user mode, where listings must name a namespace (or, for runs, an experiment) and a
run must name its EXPERIMENT; the filter (v1's `op`) is decoded twice; run.status is the Argo phase, and a
finished run is never changed (terminating one is refused). Errors come back as KFP 1.8's grpc-gateway
writes them: {"error", "code", "message", "details"}. There is no /apis/v2beta1 here: Go's plain 404.

CONFIG (JSON): multi_user (bool), credentials (list of {"token"|"token_file"|"cookie", "namespaces"}), outcome
("Succeeded" or "Failed"), page_size_cap (int), v2_healthz (bool: answer /apis/v2beta1/healthz as a KFP 2.x
that still serves v1beta1 does), block_v1 (bool: refuse Argo Workflows as KFP 2.16.1+ with BLOCK_V1_PIPELINES).
Test controls (not KFP's): GET /_standin/log, /_standin/runs, /_standin/pipelines, POST /_standin/faults with
[{"method", "path", "status"|"reset": true, "count", "after": true}], POST /_standin/config to merge keys into CONFIG.
"""
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml
import kfp_server_api.models as models

from kfp_standin_common import HTTP_OF, ApiError, authorize, camel, field, go_query_unescape, matches, multipart, now, public
import kfp_standin_common as common

# v1's run.status is the Argo Workflow's phase; these never change once reached.
FINAL = {'Succeeded', 'Failed', 'Error', 'Skipped'}
# PredicateOp (filter.proto): GREATER_THAN_EQUALS is 5, not 4.
PREDICATE_OPS = {'UNKNOWN': 0, 'EQUALS': 1, 'NOT_EQUALS': 2, 'GREATER_THAN': 3, 'GREATER_THAN_EQUALS': 5,
                 'LESS_THAN': 6, 'LESS_THAN_EQUALS': 7, 'IN': 8, 'IS_SUBSTRING': 9}
OPS_BY_NUMBER = {v: k for k, v in PREDICATE_OPS.items()}
# filter.proto's Predicate, which kfp-server-api 1.8.5 does not generate (the SDK sends the filter as text).
PREDICATE_FIELDS = {'op': 'op', 'key': 'str', 'int_value': 'int', 'long_value': 'int', 'string_value': 'str',
                    'timestamp_value': 'datetime', 'int_values': 'values', 'long_values': 'values', 'string_values': 'values'}
MAX_PARAMETER_BYTES = 10000


# The fields of the request being answered that KFP 1.8 dropped (see check).
request = threading.local()


def check(value, typ, where):
    """Holds one JSON body to a kfp-server-api 1.8.5 model type, in jsonpb's words (the gateway's error: no KFP
    detail). KFP 1.8's gateway (grpc-gateway v1, default marshaler) drops an unknown field rather than refusing
    it: so does the stand-in, and it logs the field (unknown_fields), for tests to hold a client to none."""
    try:
        common.check(value, typ, where, models, invalid=lambda t, w, what: f'json: cannot unmarshal {what} into Go value of type {t} ({w})',
                     dropped=lambda path: request.dropped.append(path))
    except ApiError as e:
        e.gateway = True
        raise


def enum_name(value, typ):
    allowed = getattr(models, typ).allowable_values
    return allowed[value] if isinstance(value, int) else value


def parse_filter(text):
    """The filter as KFP 1.8 reads it (list_request_util.go): decoded again after the gateway, then jsonpb."""
    if not text:
        return []
    decoded = go_query_unescape(text)
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as e:
        raise ApiError(3, f'Invalid input error: failed to parse valid filter from {decoded!r}: {e}')
    if not isinstance(obj, dict) or set(obj) - {'predicates'}:
        raise ApiError(3, f'Invalid input error: failed to parse valid filter from {decoded!r}: unknown field')
    preds = []
    for p in obj.get('predicates') or []:
        for k, v in p.items():
            name = k if k in PREDICATE_FIELDS else next((f for f in PREDICATE_FIELDS if camel(f) == k), None)
            if name is None:
                raise ApiError(3, f'Invalid input error: failed to parse valid filter from {decoded!r}: unknown field "{k}" in api.Predicate')
            t = PREDICATE_FIELDS[name]
            if t == 'op':
                if not ((isinstance(v, str) and v in PREDICATE_OPS) or (isinstance(v, int) and v in OPS_BY_NUMBER)):
                    raise ApiError(3, f'Invalid input error: failed to parse valid filter from {decoded!r}: unknown value {json.dumps(v)} for enum api.Predicate_Op')
            elif t != 'values':
                check(v, t, f'filter.{k}')
        op = field(p, 'op', 'UNKNOWN')
        op = OPS_BY_NUMBER[op] if isinstance(op, int) else op
        if op not in ('EQUALS', 'IS_SUBSTRING'):
            raise ApiError(3, f'Invalid input error: the stand-in implements only EQUALS and IS_SUBSTRING, not {op}')
        preds.append((p.get('key'), op, field(p, 'string_value')))
    return preds


def ns_ref(ns):
    return {'key': {'type': 'NAMESPACE', 'id': ns}, 'relationship': 'OWNER'}


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

    def new_experiment(self, name, namespace):
        exp = {'id': str(uuid.uuid4()), 'name': name, 'description': '', 'created_at': now(), 'storage_state': 'STORAGESTATE_AVAILABLE',
               '_namespace': namespace}
        if namespace:
            exp['resource_references'] = [ns_ref(namespace)]
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

    def reply(self, status, obj, ctype='application/json'):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        st = self.state
        url = urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path.startswith('/_standin/'):
            return self.control(url.path, raw)
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
        if fault and not fault.get('after'):
            return self.fail(fault)
        if url.path == '/apis/v2beta1/healthz' and st.config.get('v2_healthz'):
            status, obj = 200, {'multi_user': bool(st.config.get('multi_user')), 'pipeline_store': 'database'}
        elif not url.path.startswith('/apis/v1beta1/'):
            # KFP's HTTP server hands only /apis/v1beta1/ to the gateway: anything else is Go's own 404.
            entry['status'] = 404
            return self.reply(404, b'404 page not found\n', 'text/plain; charset=utf-8')
        else:
            try:
                ctype = self.headers.get('Content-Type') or ''
                body = multipart(raw, ctype) if ctype.startswith('multipart/') else (json.loads(raw) if raw else None)
                request.dropped = entry['unknown_fields'] = []
                with st.lock:
                    status, obj = route(st, method, url.path, query, body, self.headers)
            except json.JSONDecodeError as e:
                status, obj = 400, error_body(3, f'invalid character in request body: {e}', True)
            except ApiError as e:
                status, obj = HTTP_OF.get(e.code, 500), error_body(e.code, e.message, getattr(e, 'gateway', False))
            except Exception as e:  # a bug in the stand-in: answered as KFP answers an internal error, and visible in the test
                status, obj = 500, error_body(13, f'stand-in bug: {e!r}')
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
        self.reply(status, error_body(code, fault.get('message', 'stand-in fault')))

    def control(self, path, raw):
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
                return self.reply(200, [dict(public(r), _parameters=r['_parameters'], _workflow=r['_workflow']) for r in st.runs.values()])
            if path == '/_standin/pipelines':
                return self.reply(200, {'pipelines': list(st.pipelines.values()), 'versions': [public(v) for v in st.versions.values()]})
        self.reply(404, {})


def error_body(code, message, gateway=False):
    """grpc-gateway v1's error body; KFP's own errors carry its api.Error detail, the gateway's decoding errors none."""
    details = [] if gateway else [{'@type': 'type.googleapis.com/api.Error', 'error_message': message.split(': ')[-1], 'error_details': message}]
    return {'error': message, 'code': code, 'message': message, 'details': details}


def page(st, items, query, key):
    return common.page(st.config, items, query, key, 10)


def validate_workflow(wf, st):
    """KFP 1.8's check of a workflow (util.ValidateWorkflow): an argoproj.io/v1alpha1 Workflow that Argo can run."""
    if not isinstance(wf, dict):
        raise ApiError(3, 'Invalid input error: Failed to parse the workflow template.')
    if wf.get('apiVersion') != 'argoproj.io/v1alpha1':
        raise ApiError(3, f"Invalid input error: Unsupported argo version. Expected: argoproj.io/v1alpha1. Received: {wf.get('apiVersion')}")
    if wf.get('kind') != 'Workflow':
        raise ApiError(3, f"Invalid input error: Unexpected resource type. Expected: Workflow. Received: {wf.get('kind')}")
    spec = wf.get('spec') or {}
    names = [t.get('name') for t in spec.get('templates') or [] if isinstance(t, dict)]
    if not names or spec.get('entrypoint') not in names:
        raise ApiError(3, f"Invalid input error: Failed to validate the workflow: spec.entrypoint {spec.get('entrypoint')!r} names no template of {names}")
    if st.config.get('block_v1'):
        raise ApiError(3, 'Invalid input error: V1 pipeline specs are not allowed. Please migrate to using KFP V2 pipelines.')
    return wf


def workflow_parameters(wf):
    return [p for p in (wf.get('spec', {}).get('arguments', {}) or {}).get('parameters') or [] if isinstance(p, dict)]


def route(st, method, path, query, body, headers):
    multi = bool(st.config.get('multi_user'))
    ref_type = query.get('resource_reference_key.type', '')
    ref_id = query.get('resource_reference_key.id', '')
    if path == '/apis/v1beta1/healthz' and method == 'GET':
        return 200, {'multi_user': multi}
    if path == '/apis/v1beta1/experiments' and method == 'GET':
        if multi and (ref_type != 'NAMESPACE' or not ref_id):
            raise ApiError(3, 'Invalid input error: Invalid resource references for experiment. ListExperiment requires filtering by namespace.')
        authorize(st.config, headers, ref_id if multi else None)
        preds = parse_filter(query.get('filter'))
        items = [e for e in st.experiments if (not multi or e['_namespace'] == ref_id) and matches(e, preds)]
        return 200, page(st, items, query, 'experiments')
    if path == '/apis/v1beta1/experiments' and method == 'POST':
        check(body, 'ApiExperiment', 'experiment')
        name = field(body, 'name', '')
        if not name:
            raise ApiError(3, 'Validate experiment request failed.: Invalid input error: Experiment name is empty. Please specify a valid experiment name.')
        refs = field(body, 'resource_references') or []
        ns = ''
        # KFP 1.8's ValidateCreateExperimentRequest: exactly one NAMESPACE/OWNER reference in multi-user mode, none otherwise.
        invalid = 'Validate experiment request failed.: Invalid input error: '
        if multi:
            key = (field(refs[0], 'key') or {}) if len(refs) == 1 else {}
            if len(refs) != 1 or enum_name(field(key, 'type'), 'ApiResourceType') != 'NAMESPACE' or enum_name(field(refs[0], 'relationship'), 'ApiRelationship') != 'OWNER':
                raise ApiError(3, f'{invalid}Invalid resource references for experiment. Expect one namespace type with owner relationship. Got: {json.dumps(refs)}')
            ns = field(key, 'id', '')
            if not ns:
                raise ApiError(3, f'{invalid}Invalid resource references for experiment. Namespace is empty.')
        elif refs:
            raise ApiError(3, f"{invalid}In single-user mode, CreateExperimentRequest shouldn't contain resource references.")
        authorize(st.config, headers, ns if multi else None)
        if any(e['name'] == name and e['_namespace'] == ns for e in st.experiments):
            raise ApiError(6, f'Already exist error: Failed to create a new experiment. The name {name} already exist. Please specify a new name.')
        return 200, public(st.new_experiment(name, ns))
    m = re.fullmatch(r'/apis/v1beta1/experiments/([^/]+)', path)
    if m and method == 'GET':
        exp = next((e for e in st.experiments if e['id'] == m.group(1)), None)
        if exp is None:
            raise ApiError(5, f'Failed to get experiment: ResourceNotFoundError: Experiment {m.group(1)} not found.')
        authorize(st.config, headers, exp['_namespace'] if multi else None)
        return 200, public(exp)
    if path == '/apis/v1beta1/runs' and method == 'POST':
        return 200, create_run(st, body, headers, multi)
    if path == '/apis/v1beta1/runs' and method == 'GET':
        exp = None
        if ref_type == 'EXPERIMENT':
            exp = next((e for e in st.experiments if e['id'] == ref_id), None)
            if exp is None:
                raise ApiError(5, f'ResourceNotFoundError: Experiment {ref_id} not found.')
        elif multi and (ref_type != 'NAMESPACE' or not ref_id):
            raise ApiError(3, 'Invalid input error: ListRuns must filter by resource reference in multi-user mode.')
        authorize(st.config, headers, (exp['_namespace'] if exp else ref_id) if multi else None)
        preds = parse_filter(query.get('filter'))
        items = [r for r in st.runs.values() if (exp is None or r['_experiment'] == exp['id']) and (not multi or exp or r['_namespace'] == ref_id) and matches(r, preds)]
        return 200, page(st, items, query, 'runs')
    m = re.fullmatch(r'/apis/v1beta1/runs/([^/]+?)(/terminate)?', path)
    if m:
        run = st.runs.get(m.group(1))
        if run is None:
            raise ApiError(5, f'Failed to get a run: ResourceNotFoundError: Run {m.group(1)} not found.')
        authorize(st.config, headers, run['_namespace'] if multi else None)
        if method == 'POST' and m.group(2):
            if run['status'] not in ('', 'Pending', 'Running'):
                raise ApiError(3, f"Invalid input error: Failed to terminate run {run['id']}. Row not found.")
            run['status'] = 'Terminating'
            return 200, {}
        if method == 'GET' and not m.group(2):
            advance(run)
            return 200, detail(run)
    if path.startswith('/apis/v1beta1/pipeline'):
        return pipelines_route(st, method, path, query, body, headers, multi)
    raise ApiError(5, 'Not Found')


def create_run(st, body, headers, multi):
    check(body, 'ApiRun', 'run')
    name = field(body, 'name', '')
    invalid = 'Validate create run request failed.: Invalid input error: '
    if not name:
        raise ApiError(3, f'{invalid}The run name is empty. Please specify a valid name.')
    spec = field(body, 'pipeline_spec') or {}
    refs = field(body, 'resource_references') or []
    exp_id, version_id = '', ''
    for r in refs:
        key = field(r, 'key') or {}
        kind, rel = enum_name(field(key, 'type'), 'ApiResourceType'), enum_name(field(r, 'relationship'), 'ApiRelationship')
        if kind == 'EXPERIMENT':
            if rel != 'OWNER':
                raise ApiError(3, 'Invalid input error: Invalid resource reference: an experiment must be the run\'s OWNER.')
            exp_id = field(key, 'id', '')
        elif kind == 'PIPELINE_VERSION':
            if rel != 'CREATOR':
                raise ApiError(3, 'Invalid input error: Invalid resource reference: a pipeline version must be the run\'s CREATOR.')
            version_id = field(key, 'id', '')
        elif kind != 'NAMESPACE':
            raise ApiError(3, f'Invalid input error: Invalid resource reference type {kind} for a run.')
    manifest = field(spec, 'workflow_manifest', '')
    if manifest and (version_id or field(spec, 'pipeline_id')):
        raise ApiError(3, f"{invalid}Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest or pipeline manifest.")
    if manifest:
        try:
            wf = json.loads(manifest)  # KFP 1.8 json-decodes it: YAML text is refused
        except json.JSONDecodeError:
            raise ApiError(3, f'{invalid}Invalid argo workflow format. Workflow: ' + manifest[:200])
        wf = validate_workflow(wf, st)
    elif version_id:
        version = st.versions.get(version_id)
        if version is None:
            raise ApiError(5, f'ResourceNotFoundError: PipelineVersion {version_id} not found.')
        wf = version['_workflow']
    else:
        raise ApiError(3, f'{invalid}Please specify a pipeline by providing a (workflow manifest or pipeline manifest) or (pipeline id or/and pipeline version).')
    params = field(spec, 'parameters') or []
    if len(json.dumps(params).encode()) > MAX_PARAMETER_BYTES:
        raise ApiError(3, f'{invalid}The input parameter length exceed maximum size of {MAX_PARAMETER_BYTES}.')
    if multi and not exp_id:
        raise ApiError(3, 'Invalid input error: Job has no experiment.')
    if exp_id:
        exp = next((e for e in st.experiments if e['id'] == exp_id), None)
        if exp is None:
            raise ApiError(5, f'ResourceNotFoundError: Experiment {exp_id} not found.')
    else:
        exp = next((e for e in st.experiments if e['name'] == 'Default' and not e['_namespace']), None) or st.new_experiment('Default', '')
    authorize(st.config, headers, exp['_namespace'] if multi else None)
    # OverrideParameters: a given value replaces the workflow's; a name the workflow lacks is dropped.
    given = {field(p, 'name'): field(p, 'value', '') for p in params}
    effective = {p['name']: given.get(p['name'], p.get('value')) for p in workflow_parameters(wf)}
    dag = next((t.get('dag') for t in wf['spec']['templates'] if t.get('name') == wf['spec']['entrypoint']), None) or {}
    retried = {t.get('name') for t in wf['spec']['templates'] if t.get('retryStrategy')}
    # (task, retried): a task whose template has a retryStrategy runs under an Argo Retry node.
    tasks = [(t['name'], t.get('template') in retried) for t in dag.get('tasks') or []] or [(wf['spec']['entrypoint'], False)]
    out_refs = [{'key': {'type': 'EXPERIMENT', 'id': exp['id']}, 'name': exp['name'], 'relationship': 'OWNER'}]
    if exp['_namespace']:
        out_refs.append(ns_ref(exp['_namespace']))
    if version_id:
        out_refs.append({'key': {'type': 'PIPELINE_VERSION', 'id': version_id}, 'relationship': 'CREATOR'})
    run = {'id': str(uuid.uuid4()), 'name': name, 'description': field(body, 'description', ''), 'storage_state': 'STORAGESTATE_AVAILABLE',
           'pipeline_spec': {'workflow_manifest': json.dumps(wf), 'parameters': [{'name': k, 'value': v} for k, v in effective.items()]},
           'resource_references': out_refs, 'service_account': field(body, 'service_account') or 'pipeline-runner',
           'created_at': now(), 'scheduled_at': now(), 'status': '', '_experiment': exp['id'], '_namespace': exp['_namespace'],
           '_tasks': tasks, '_tick': 0, '_outcome': st.config.get('outcome', 'Succeeded'), '_parameters': effective, '_workflow': wf}
    st.runs[run['id']] = run
    return detail(run)


def advance(run):
    """Each GET moves the run one task on: Pending, then each task Running then Succeeded, then the outcome."""
    if run['status'] in FINAL:
        return
    if run['status'] == 'Terminating':
        # KFP 1.8 stops a run by setting the workflow's activeDeadlineSeconds to 0: Argo then fails it,
        # its running pod with the message Argo writes when a deadline hits.
        run['status'] = 'Failed'
        run['_message'] = 'Step exceeded its deadline'
        run['_terminated'] = True
        run['finished_at'] = now()
        return
    run['_tick'] += 1
    n, k = len(run['_tasks']), run['_tick']
    if k > n:
        run['status'] = run['_outcome']
        run['finished_at'] = now()
        if run['_outcome'] == 'Failed':
            run['_message'] = f"child '{run['_tasks'][-1][0]}' failed"
    else:
        run['status'] = 'Running'


def detail(run):
    """ApiRunDetail: the run, and the live Argo Workflow as KFP's persistence agent stores it: status.nodes
    holds the root DAG node, a Retry node per task with a retryStrategy, and the Pods (a retried task's
    first attempt named task(0), as Argo names it)."""
    n, k = len(run['_tasks']), run['_tick']
    wf_name = f"{run['name'][:20].lower().replace(' ', '-')}-{run['id'][:5]}"
    nodes = {wf_name: {'id': wf_name, 'name': wf_name, 'displayName': wf_name, 'type': 'DAG', 'phase': run['status'] or 'Pending', 'children': []}}
    for i, (t, retried) in enumerate(run['_tasks']):
        if i >= k:
            break
        phase = 'Succeeded' if i < k - 1 or k > n else 'Running'
        if k > n and i == n - 1:
            phase = run['_outcome']
        if run.get('_terminated') and phase == 'Running':
            phase = 'Failed'
        pod_id = f'{wf_name}-{1000 + i}'
        parent = nodes[wf_name]
        if retried:
            retry_id = f'{wf_name}-{2000 + i}'
            nodes[retry_id] = {'id': retry_id, 'name': f'{wf_name}.{t}', 'displayName': t, 'type': 'Retry', 'phase': phase, 'children': []}
            parent['children'].append(retry_id)
            parent = nodes[retry_id]
        nodes[pod_id] = {'id': pod_id, 'name': f'{wf_name}.{t}' + ('(0)' if retried else ''), 'displayName': t + ('(0)' if retried else ''),
                         'type': 'Pod', 'templateName': t, 'phase': phase}
        parent['children'].append(pod_id)
    live = dict(run['_workflow'])
    live['status'] = {'phase': run['status'] or 'Pending', 'nodes': nodes}
    if run.get('_message'):
        live['status']['message'] = run['_message']
    return {'run': public(run), 'pipeline_runtime': {'workflow_manifest': json.dumps(live)}}


def uploaded_workflow(st, body):
    """The file of an upload, as KFP 1.8 reads it: field uploadfile, a .yaml/.yml (or archive) name, a Workflow that validates."""
    if not isinstance(body, dict) or 'uploadfile' not in body:
        raise ApiError(3, 'Invalid input error: Failed to read pipeline from file: http: no such file')
    filename, data = body['uploadfile']
    if not (filename or '').endswith(('.yaml', '.yml')):
        raise ApiError(3, 'Invalid input error: Unexpected pipeline file format. Support .zip, .tar.gz or YAML.')
    try:
        return validate_workflow(yaml.safe_load(data), st)
    except yaml.YAMLError:
        raise ApiError(3, 'Invalid input error: Failed to parse the workflow template.')


def new_version(st, pipeline_id, name, wf, description=''):
    if any(v['_pipeline'] == pipeline_id and v['name'] == name for v in st.versions.values()):
        raise ApiError(6, f'Already exist error: Failed to create a new pipeline version. The name {name} already exist. Please specify a new name.')
    v = {'id': str(uuid.uuid4()), 'name': name, 'created_at': now(), 'description': description,
         'parameters': [{'name': p['name'], 'value': str(p.get('value', ''))} for p in workflow_parameters(wf)],
         'resource_references': [{'key': {'type': 'PIPELINE', 'id': pipeline_id}, 'relationship': 'OWNER'}], '_pipeline': pipeline_id, '_workflow': wf}
    st.versions[v['id']] = v
    return v


def pipelines_route(st, method, path, query, body, headers, multi):
    # KFP 1.8's pipelines are shared: no namespace; any known credential may read and upload them.
    authorize(st.config, headers, None)
    if path == '/apis/v1beta1/pipelines' and method == 'GET':
        preds = parse_filter(query.get('filter'))
        return 200, page(st, [p for p in st.pipelines.values() if matches(p, preds)], query, 'pipelines')
    if path == '/apis/v1beta1/pipelines/upload' and method == 'POST':
        wf = uploaded_workflow(st, body)
        name = query.get('name') or 'pipeline'
        if any(p['name'] == name for p in st.pipelines.values()):
            raise ApiError(6, f'Already exist error: Failed to create a new pipeline. The name {name} already exist. Please specify a new name.')
        pid = str(uuid.uuid4())
        v = new_version(st, pid, name, wf, query.get('description', ''))
        p = {'id': pid, 'name': name, 'description': query.get('description', ''), 'created_at': now(), 'parameters': v['parameters'],
             'default_version': public(v)}
        st.pipelines[pid] = p
        return 200, p
    if path == '/apis/v1beta1/pipelines/upload_version' and method == 'POST':
        pid = query.get('pipelineid', '')
        if pid not in st.pipelines:
            raise ApiError(5, f'ResourceNotFoundError: Pipeline {pid} not found.')
        wf = uploaded_workflow(st, body)
        v = new_version(st, pid, query.get('name') or 'version', wf, query.get('description', ''))
        st.pipelines[pid]['default_version'] = public(v)
        return 200, public(v)
    if path == '/apis/v1beta1/pipeline_versions' and method == 'GET':
        if query.get('resource_key.type') != 'PIPELINE' or query.get('resource_key.id') not in st.pipelines:
            raise ApiError(3, 'Invalid input error: ListPipelineVersions needs a PIPELINE resource key of an existing pipeline.')
        preds = parse_filter(query.get('filter'))
        items = [v for v in st.versions.values() if v['_pipeline'] == query['resource_key.id'] and matches(v, preds)]
        return 200, page(st, items, query, 'versions')
    raise ApiError(5, 'Not Found')


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
