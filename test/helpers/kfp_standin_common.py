"""What both KFP stand-ins (kfp-standin.py for v2beta1, kfp-standin-v1.py for KFP 1.8's v1beta1) share:
a body held to kfp-server-api's generated models, Go's second decoding of the filter, paging, uploads,
and KFP's authentication and namespace authorization. Plain Python, so it loads in either venv."""
import base64
import datetime
import json
import re

# google.rpc.Code -> HTTP status, as grpc-gateway maps them.
HTTP_OF = {3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 13: 500, 14: 503, 16: 401}


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def camel(name):
    head, *rest = name.split('_')
    return head + ''.join(p[:1].upper() + p[1:] for p in rest)


def field(obj, name, default=None):
    """A field read by its proto name or its JSON name, as protojson and jsonpb accept either."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(camel(name), default)


def check(value, typ, where, models, unknown=lambda key, typ: f'unknown field "{key}"', invalid=None, dropped=None):
    """Holds one JSON value to a kfp-server-api model type (of `models`, the package's models module);
    raises ApiError(3) with the decoder's wording: unknown(key, typ) for an unknown field, invalid(typ, where, what) for a wrong type.
    With dropped(path), an unknown field is passed to it instead, for a decoder that drops unknown fields."""
    invalid = invalid or (lambda t, w, what: f'invalid value for {t} field {w}: {what}')

    def bad(what):
        raise ApiError(3, invalid(typ, where, what))
    if typ in ('str', 'datetime'):
        if not isinstance(value, str):
            bad(json.dumps(value))
    elif typ == 'int':
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r'-?\d+', value))):
            bad(json.dumps(value))
    elif typ == 'bool':
        if not isinstance(value, bool):
            bad(json.dumps(value))
    elif typ == 'object':
        pass  # google.protobuf.Value / Struct: any JSON
    elif typ.startswith('list['):
        if not isinstance(value, list):
            bad('not a list')
        for i, v in enumerate(value):
            check(v, typ[5:-1], f'{where}[{i}]', models, unknown, invalid, dropped)
    elif typ.startswith('dict('):
        if not isinstance(value, dict):
            bad('not an object')
        inner = typ[typ.index(',') + 1:-1].strip()
        for k, v in value.items():
            check(v, inner, f'{where}.{k}', models, unknown, invalid, dropped)
    else:
        cls = getattr(models, typ)
        allowed = getattr(cls, 'allowable_values', None)
        if allowed is not None:
            if isinstance(value, str) and value in allowed:
                return
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(allowed):
                return
            bad(json.dumps(value))
        if typ == 'ProtobufAny':
            return
        if not isinstance(value, dict):
            bad('not an object')
        names = {}
        for attr, key in cls.attribute_map.items():
            names[key] = attr
            names[camel(key)] = attr
        for key, v in value.items():
            if key not in names:
                if dropped is None:
                    raise ApiError(3, unknown(key, typ))
                dropped(f'{where}.{key}')
            elif v is not None:
                check(v, cls.openapi_types[names[key]], f'{where}.{key}', models, unknown, invalid, dropped)


def go_query_unescape(s):
    """Go's url.QueryUnescape, KFP's second decoding of the filter: '+' is a space, %XX a byte, anything else after % an error."""
    out = bytearray()
    i = 0
    b = s.encode()
    while i < len(b):
        c = b[i]
        if c == ord('%'):
            h = b[i + 1:i + 3].decode(errors='replace')
            if len(h) < 2 or not re.fullmatch(r'[0-9a-fA-F]{2}', h):
                raise ApiError(3, f'Invalid input error: failed to decode the filter: invalid URL escape "%{h}"')
            out.append(int(h, 16))
            i += 3
        elif c == ord('+'):
            out.append(0x20)
            i += 1
        else:
            out.append(c)
            i += 1
    return out.decode(errors='replace')


def matches(obj, preds):
    """(key, op, string value) predicates, AND-ed; the stand-ins implement the two operations clients use by name."""
    for key, op, val in preds:
        if op == 'EQUALS' and obj.get(key) != val:
            return False
        if op == 'IS_SUBSTRING' and (val or '') not in (obj.get(key) or ''):
            return False
    return True


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def public(obj):
    """A stored object as KFP answers it: without the stand-in's own (underscored) keys and empty fields."""
    return {k: v for k, v in obj.items() if not k.startswith('_') and v is not None}


def page(config, items, query, key, default_size):
    """One page of a listing, KFP's way: page_size (capped by the test's page_size_cap), an opaque next_page_token."""
    size = int(query.get('page_size') or 0) or default_size
    cap = config.get('page_size_cap')
    if cap:
        size = min(size, cap)
    start = int(base64.b64decode(query['page_token']).decode()) if query.get('page_token') else 0
    out = {key: [public(x) for x in items[start:start + size]], 'total_size': len(items)}
    if start + size < len(items):
        out['next_page_token'] = base64.b64encode(str(start + size).encode()).decode()
    return out


def multipart(raw, ctype):
    """The form fields of a multipart body: name -> (filename, bytes)."""
    from email.parser import BytesParser
    from email.policy import HTTP
    msg = BytesParser(policy=HTTP).parsebytes(b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + raw)
    out = {}
    for part in msg.iter_parts():
        out[part.get_param('name', header='content-disposition')] = (part.get_filename(), part.get_payload(decode=True))
    return out


def authorize(config, headers, namespace):
    """KFP's two authenticators (user header or TokenReview of a bearer token), with a cookie as the
    Kubeflow login proxy checks it; then SubjectAccessReview of the namespace. config['credentials']:
    a list of {"token"|"token_file"|"cookie", "namespaces"}; none means an open cluster."""
    creds = config.get('credentials')
    if not creds:
        return
    auth = headers.get('Authorization') or ''
    cookie = headers.get('Cookie') or ''
    if not auth and not cookie:
        raise ApiError(16, 'Unauthenticated: Request header error: there is no user identity header.: Request header error: there is no user identity header.')
    for c in creds:
        ok = False
        if 'token' in c:
            ok = auth == f"Bearer {c['token']}"
        elif 'token_file' in c:
            # Like a projected ServiceAccount token: the file's current token is valid, and so are the
            # ones it held before (a rotated token stays valid until it expires).
            try:
                with open(c['token_file']) as f:
                    c.setdefault('_seen', set()).add(f.read().strip())
            except OSError:
                pass
            ok = auth.startswith('Bearer ') and auth[7:] in c.get('_seen', set())
        elif 'cookie' in c:
            ok = c['cookie'] in [p.strip() for p in cookie.split(';')]
        if ok:
            if namespace is not None and namespace not in c.get('namespaces', []):
                raise ApiError(7, f"PermissionDenied: User 'system:serviceaccount:someone:default-editor' is not authorized with reason: (request: &ResourceAttributes{{Namespace:{namespace},Verb:create,Group:pipelines.kubeflow.org,Version:v1beta1,Resource:runs}})")
            return
    raise ApiError(16, 'Unauthenticated: Failed to authenticate token review: Review.Status.Authenticated is false')
