"""Building the upstream request of one consumed-operation call.

Decisions (reference-semantics "Our decisions" 4-7): ``baseUri`` and the path are joined
with exactly one ``/``; ``{x}`` and ``{{x}}`` are both substituted, each value
percent-encoded as *one* path segment so that no input can add a segment, a host or a
query; a parameter that resolves to nothing is omitted (never sent as template text);
bodies are encoded per declared type; a whole-body forward keeps the caller's media type.

Raw string bodies are sent as ``application/json`` when the rendered text parses as JSON
and as ``text/plain`` otherwise (the reference always says JSON, which mislabels text).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import httpx

from naftiko.errors import STATUS, CallerError, ErrorKind, Problem
from naftiko.media_types import JSON, essence
from naftiko.templating import MISSING, Scope, Template, format_value, render_or_none
from naftiko.upstream.outbound_auth import OAuth2TokenCache, build_outbound_auth
from naftiko.upstream.plans import BodyPlan, ConsumesPlan, OperationPlan, ParamPlan, PathTemplate
from naftiko.upstream.settings import UpstreamSettings

__all__ = [
    "CONNECTION_HEADERS",
    "BuiltRequest",
    "RequestError",
    "UpstreamRequest",
    "build_forward_request",
    "build_request",
    "join_url",
]

# Headers that frame the message or manage the connection: the HTTP client writes them
# from the base URI and the body. Taken from a parameter (an agent's input), a wrong
# ``Content-Length`` or ``Transfer-Encoding`` desynchronises the pooled upstream
# connection (request smuggling) and ``Host`` picks another virtual host.
CONNECTION_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)

_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Characters ``quote`` and ``quote_plus`` leave alone: most ids, keys and values need no
# quoting (and skip it: 3x faster on tokens and ids).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TEXT = "text/plain; charset=utf-8"
_CONTENT_TYPES = {"xml": "application/xml", "sparql": "application/sparql-query", "text": TEXT}
# Never copied from a caller, even when listed as trusted: they describe *this* hop.
_HOP_HEADERS = CONNECTION_HEADERS | {"proxy-authorization"}


class Inputs(Protocol):
    """What request building reads of a caller's request (``naftiko.engine.types.Inputs``)."""

    body: Any
    media_type: str | None
    headers: Mapping[str, str]
    query_string: str
    method: str
    path: str


class RequestError(CallerError):
    """A request cannot be built from these inputs; carries a safe VALIDATION problem."""

    def __init__(self, detail: str, *, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.problem = Problem(
            kind=ErrorKind.VALIDATION,
            title="Invalid request parameters",
            detail=detail,
            status=STATUS[ErrorKind.VALIDATION],
            parameter=parameter,
        )


@dataclass(slots=True)
class UpstreamRequest:
    """One request to a consumed API, before any HTTP library has seen it.

    ``upstream.client.send`` writes it on the wire itself when it can (its fast path, no
    httpx objects) and otherwise sends :meth:`to_httpx` through httpx's client (its general
    path); both put the same bytes on the wire (tests/engine/test_wire.py).
    """

    method: str
    url: str  # absolute; path segments and query values already percent-encoded
    headers: dict[str, str]
    content: bytes | None = None
    files: _Files | None = None
    # Set when ``url`` was built from a base URI and path template known to need none of
    # httpx's URL rules (``OperationPlan.fixed_origin``): origin, Host header and where the
    # request target starts in ``url``.
    fixed_origin: tuple[tuple[bytes, str, int], bytes, int] | None = None

    def to_httpx(self) -> httpx.Request:
        kwargs: dict[str, Any] = {}
        if self.files:
            kwargs["files"] = self.files
        elif self.content is not None:
            kwargs["content"] = self.content
        return httpx.Request(self.method, self.url, headers=self.headers, **kwargs)


# Made on every request: not ``frozen`` (its ``__init__`` would set each field through
# ``object.__setattr__``, ~5x the cost). Never mutated after construction.
@dataclass(slots=True)
class BuiltRequest:
    request: UpstreamRequest
    auth: httpx.Auth | None
    scope: Scope  # with the consumed parameters' resolved values written back


def _absent(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


def _text(value: Any) -> str:
    """A scalar as request text: booleans ``true``/``false``, dicts/lists as JSON."""
    return format_value(value)


def _segment(name: str, value: Any) -> str:
    """``value`` as one path segment: what ``quote(text, safe="")`` gives, which leaves
    exactly the characters of :data:`_UNRESERVED` alone (so ids skip the quoting)."""
    text = _text(value)
    if text in (".", ".."):
        raise RequestError(f"path parameter '{name}' cannot be '{text}'", parameter=name)
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def render_path(path: PathTemplate, scope: Scope) -> str:
    """The path with each variable encoded as one segment; a missing one is refused."""
    out = []
    for part in path.parts:
        if type(part) is str:
            out.append(part)
            continue
        name, shown = part  # ``shown``: ``tools.id`` is the caller's ``id``
        value = scope.lookup(name)
        if value == "":  # sent, so not "required": the caller may have used a query value
            detail = f"argument '{shown}' cannot be empty: it is a segment of the upstream path"
            raise RequestError(detail, parameter=shown)
        if _absent(value):
            raise RequestError(f"path parameter '{shown}' is required", parameter=shown)
        out.append(_segment(shown, value))
    return "".join(out)


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one ``/`` between them (none added to an empty path)."""
    if not path:
        return base
    if path.startswith(("?", "#")):
        return base + path
    return base.rstrip("/") + "/" + path.lstrip("/")


def _with_query(target: str, query: list[tuple[str, str]]) -> str:
    """``target`` with ``query`` merged into its query string.

    Same result as ``URL(target).copy_merge_params(query)``, which parses the URL three
    times; that is still the way when ``target`` has its own query or a fragment to merge
    around.
    """
    if not query:
        return target
    if "?" in target or "#" in target:
        return str(httpx.URL(target).copy_merge_params(query))
    # What ``str(httpx.QueryParams(query))`` gives: repeated names grouped at the first.
    if len(query) > 1 and len({name for name, _ in query}) < len(query):
        grouped: dict[str, list[str]] = {}
        for name, value in query:
            grouped.setdefault(name, []).append(value)
        query = [(n, v) for n, vs in grouped.items() for v in vs]
    return f"{target}?{form_encode(query)}"


def _check_header(name: str, value: str) -> str:
    """``value`` when it can be sent as is: visible ASCII, spaces and tabs only.

    httpx encodes header values as ASCII, so anything else would fail while sending (a
    500); line breaks and NUL would split or cut the header. The caller gets a 400.
    """
    if "\r" in value or "\n" in value or "\x00" in value:
        raise RequestError(
            f"header parameter '{name}' contains a line break or NUL", parameter=name
        )
    if not _HEADER_VALUE.fullmatch(value):
        raise RequestError(
            f"header parameter '{name}' contains a control or non-ASCII character, which "
            "cannot be sent in an HTTP header",
            parameter=name,
        )
    return value


def _header_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return _text(value)


def _query_pairs(name: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, (list, tuple)):
        return [(name, _text(v)) for v in value if not _absent(v)]
    return [(name, _text(value))]


# --------------------------------------------------------------------------- bodies


def _evaluate_tree(node: Any, scope: Scope) -> Any:
    """Data with template leaves; a leaf resolving to nothing is MISSING (then omitted)."""
    if isinstance(node, Template):
        return node.resolve(scope)
    if isinstance(node, Mapping):
        out = {}
        for key, value in node.items():
            resolved = _evaluate_tree(value, scope)
            if resolved is not MISSING:
                out[key] = resolved
        return out
    if isinstance(node, list):
        return [None if (v := _evaluate_tree(item, scope)) is MISSING else v for item in node]
    return node


def _json_body(value: Any) -> tuple[bytes, str]:
    if isinstance(value, bytes):
        return value, JSON
    if isinstance(value, str):
        return _raw_text_body(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), JSON
    except RecursionError:  # a caller's body can nest deeper than the encoder recurses
        raise RequestError("body is nested too deeply", parameter="body") from None


def _raw_text_body(text: str) -> tuple[bytes, str]:
    """Rendered text: JSON media type when it parses as JSON, text otherwise."""
    try:
        json.loads(text)
    except ValueError:
        return text.encode(), TEXT
    return text.encode(), JSON


def _form_pairs(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        if _absent(item):
            continue
        if isinstance(item, (list, tuple)):
            pairs.extend((str(key), _text(v)) for v in item if not _absent(v))
        else:
            pairs.append((str(key), _text(item)))
    return pairs


def _form_quote(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text)


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """``urlencode(pairs)``, without quoting what needs none (3x faster on tokens and ids)."""
    return "&".join([f"{_form_quote(key)}={_form_quote(value)}" for key, value in pairs])


def _form_body(value: Any) -> tuple[bytes, str]:
    if isinstance(value, Mapping):
        return form_encode(_form_pairs(value)).encode(), FORM
    if isinstance(value, bytes):
        return value, FORM
    return _text(value).encode(), FORM


_Files = list[tuple[str, tuple[str | None, bytes, str | None]]]


def _part_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, ensure_ascii=False).encode()
    return _text(value).encode()


def _multipart_from_mapping(value: Mapping[str, Any]) -> _Files:
    """Re-encode a caller's multipart fields; ``bytes`` values become file parts."""
    files: _Files = []
    for key, item in value.items():
        if _absent(item):
            continue
        items = item if isinstance(item, list) else [item]
        for one in items:
            if isinstance(one, bytes):
                files.append((str(key), (str(key), one, "application/octet-stream")))
            else:
                files.append((str(key), (None, _part_bytes(one), None)))
    return files


# Made on every request: not ``frozen`` (its ``__init__`` would set each field through
# ``object.__setattr__``, ~5x the cost). Never mutated after construction.
@dataclass(slots=True)
class _Body:
    content: bytes | None = None
    content_type: str | None = None
    files: _Files | None = None


def _explicit_body(plan: BodyPlan, scope: Scope) -> _Body:
    kind = plan.kind
    if kind == "multipart":
        files: _Files = []
        for part in plan.parts:
            value = _evaluate_tree(part.value, scope)
            if _absent(value):
                continue
            filename = part.filename.render(scope) if part.filename is not None else None
            files.append((part.name, (filename or None, _part_bytes(value), part.content_type)))
        return _Body(files=files)
    value = _evaluate_tree(plan.data, scope)
    if kind == "raw":
        if value is MISSING or value is None:
            return _Body()
        if isinstance(value, str):
            content, media = _raw_text_body(value)
            return _Body(content, media)
        content, media = _json_body(value)
        return _Body(content, media)
    if value is MISSING or value is None:
        return _Body()
    if kind == "form":
        content, media = _form_body(value)
        return _Body(content, media)
    if kind in _CONTENT_TYPES:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return _Body(text.encode() if isinstance(text, str) else text, _CONTENT_TYPES[kind])
    content, media = _json_body(value)
    return _Body(content, media)


def _forwarded_body(value: Any, media_type: str | None) -> _Body:
    """The caller's whole body, encoded as the caller sent it (form stays a form)."""
    media = essence(media_type)
    if media == FORM:
        return _Body(*_form_body(value))
    if media == MULTIPART:
        if isinstance(value, Mapping):
            return _Body(files=_multipart_from_mapping(value))
        return _Body(*_json_body(value))
    if isinstance(value, (str, bytes)) and media and media != JSON:
        raw = value.encode() if isinstance(value, str) else value
        return _Body(raw, media_type)
    return _Body(*_json_body(value))


def _param_body(
    whole: Any, fields: list[tuple[str, Any]], inputs: Inputs, declared_type: str | None
) -> _Body:
    """The body made of consumed ``in: body`` parameters.

    A parameter named ``body`` is the whole body; other ``in: body`` parameters are fields
    of a JSON object (merged over the whole body when it is an object). When the whole
    body *is* the caller's body (``rest.body``/``tools.body``), its media type is kept.
    A declared ``Content-Type`` of form or multipart decides the encoding of a dict.
    """
    if whole is not MISSING and not fields:
        if inputs.body is not None and whole is inputs.body:
            return _forwarded_body(whole, inputs.media_type)
        if declared_type == FORM and isinstance(whole, Mapping):
            return _Body(*_form_body(whole))
        if declared_type == MULTIPART and isinstance(whole, Mapping):
            return _Body(files=_multipart_from_mapping(whole))
        return _Body(*_json_body(whole))
    merged: dict[str, Any] = dict(whole) if isinstance(whole, Mapping) else {}
    merged.update(fields)
    if declared_type == FORM:
        return _Body(*_form_body(merged))
    if declared_type == MULTIPART:
        return _Body(files=_multipart_from_mapping(merged))
    return _Body(*_json_body(merged))


# --------------------------------------------------------------------------- request


def _param_value(param: ParamPlan, scope: Scope) -> Any:
    if param.value is not None:
        return param.value.evaluate(scope)
    value = scope.lookup(param.name)
    if value is MISSING and param.location == "environment":
        return os.environ.get(param.name, MISSING)
    return value


def _auth(consumes: ConsumesPlan, scope: Scope, cache: OAuth2TokenCache) -> httpx.Auth | None:
    if consumes.authentication is None:
        return None
    if consumes.auth_is_static:
        return consumes.static_auth
    return build_outbound_auth(
        consumes.authentication,
        lambda text: render_or_none(text, scope),
        token_cache=cache,
    )


def build_request(
    operation: OperationPlan,
    consumes: ConsumesPlan,
    scope: Scope,
    inputs: Inputs,
    settings: UpstreamSettings,
    token_cache: OAuth2TokenCache,
) -> BuiltRequest:
    """The request for ``operation``; raises :class:`RequestError` (a VALIDATION problem)."""
    resolved: dict[str, Any] = {}
    placed: dict[tuple[str, str], tuple[ParamPlan, Any]] = {}
    for param in operation.params:
        value = _param_value(param, scope)
        if _absent(value):
            continue
        resolved[param.name] = value
        # A later level (operation over resource over consumes) replaces an earlier one.
        placed[param.slot] = (param, value)
    # Written back so that the path, body and auth templates see consumes-level values.
    scope = scope.with_child(with_values={**scope.with_values, **resolved})

    base = consumes.base_uri or ""
    target = join_url(base, render_path(operation.path, scope))
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    whole: Any = MISSING
    fields: list[tuple[str, Any]] = []
    for (location, _), (param, value) in placed.items():
        name = param.name
        if location == "query":
            if isinstance(value, (list, tuple)):
                query.extend(_query_pairs(name, value))
            else:
                query.append((name, _text(value)))
        elif location == "header":
            headers[name] = _check_header(name, _header_value(value))
        elif location == "cookie":
            cookies.append(f"{quote(name, safe='')}={quote(_text(value), safe='')}")
        elif location == "body":
            if name == "body":
                whole = value
            else:
                fields.append((name, value))
    url = _with_query(target, query)
    if cookies:
        headers["Cookie"] = _check_header("Cookie", "; ".join(cookies))
    lower = {k.lower(): k for k in headers}
    if "user-agent" not in lower:
        headers["User-Agent"] = settings.user_agent
    declared_type = essence(headers.get(lower["content-type"])) if "content-type" in lower else None

    if operation.body is not None:
        body = _explicit_body(operation.body, scope)
    elif whole is not MISSING or fields:
        body = _param_body(whole, fields, inputs, declared_type)
    else:
        body = _Body()
    request = UpstreamRequest(
        operation.method.upper(), url, headers, fixed_origin=operation.fixed_origin
    )
    if body.files is not None:
        if body.files:
            request.files = body.files
            headers.pop(lower.get("content-type", "Content-Type"), None)  # needs the boundary
    elif body.content is not None:
        request.content = body.content
        if "content-type" not in lower and body.content_type:
            headers["Content-Type"] = body.content_type
    return BuiltRequest(request=request, auth=_auth(consumes, scope, token_cache), scope=scope)


def build_forward_request(
    consumes: ConsumesPlan,
    trusted_headers: tuple[str, ...],
    scope: Scope,
    inputs: Inputs,
    settings: UpstreamSettings,
    token_cache: OAuth2TokenCache,
) -> BuiltRequest:
    """A ``forward`` request: any method to ``baseUri + inputs.path`` (query kept).

    Each path segment is percent-encoded and ``.``/``..`` segments are refused, so the
    caller's remainder stays under the base URI. Only ``trusted_headers`` are copied (the
    caller's ``Authorization`` only when listed); the target's consumes-level parameters
    and authentication apply.
    """
    segments = inputs.path.split("/") if inputs.path else []
    for segment in segments:
        if segment in (".", ".."):
            raise RequestError(
                "forwarded path cannot contain '.' or '..' segments", parameter="path"
            )
    path = "/".join(quote(s, safe="") for s in segments)
    text = join_url(consumes.base_uri or "", path)
    url = httpx.URL(text)
    if inputs.query_string:
        url = url.copy_with(query=inputs.query_string.lstrip("?").encode())
    trusted = {h.lower() for h in trusted_headers} - _HOP_HEADERS
    headers: dict[str, str] = {}
    for name, value in inputs.headers.items():
        if name.lower() in trusted:
            headers[name] = _check_header(name, value)
    query: list[tuple[str, str]] = []
    for param in consumes.params:
        value = _param_value(param, scope)
        if _absent(value):
            continue
        if param.location == "header":
            headers[param.name] = _check_header(param.name, _header_value(value))
        elif param.location == "query":
            query.extend(_query_pairs(param.name, value))
    if query:
        url = url.copy_merge_params(query)
    if not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = settings.user_agent
    request = UpstreamRequest(inputs.method.upper(), str(url), headers)
    if inputs.body is not None:
        body = _forwarded_body(inputs.body, inputs.media_type)
        if body.files:
            request.files = body.files
        elif body.content is not None:
            request.content = body.content
            if body.content_type:
                headers["Content-Type"] = body.content_type
    return BuiltRequest(request=request, auth=_auth(consumes, scope, token_cache), scope=scope)
