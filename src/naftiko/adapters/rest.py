"""The REST adapter: one Starlette app per ``exposes: - type: rest`` entry.

Usage (the runtime)::

    app = build_rest_app(engine, plan, settings, bindings=loaded.bindings,
                         info=loaded.document.info)
    # serve ``app`` with uvicorn on plan.address / plan.port

``build_rest_app(engine, plan, settings=None, *, bindings=None, info=None) -> Starlette``

* ``engine`` — anything with ``await invoke(unit, inputs) -> Result`` and
  ``await forward(route, inputs) -> Result`` (``naftiko.engine.invoke.Engine``). The
  runtime starts and closes it; the app has no lifespan of its own.
* ``bindings`` — resolved binds, used only to build the inbound authentication. The check
  is built here, so an unresolvable credential raises ``InboundAuthConfigError`` before
  anything listens (decision 22).
* ``info`` — the document's ``info``, for the OpenAPI title/description/version.

The app only translates HTTP to ``Engine.invoke``/``Engine.forward`` and back: no
templating, upstream calls or mapping happen here.

Routing: each resource path (``{x}`` one segment, ``{path}`` the rest including slashes)
matches with or without one trailing slash and never redirects (a redirect would lose a
POST body). First declared match wins, as in the reference engine. HEAD is answered
for GET operations without a body; a known path with another method gets 405 with
``Allow`` unless the resource ``forward`` s; unknown paths get 404. Every error of ours is
``application/problem+json`` and every response carries ``X-Request-Id``.

Results: a success or a ``call`` unit's upstream error answers with the upstream's status
and body, unchanged. A failed orchestration step answers ``application/problem+json``
with the upstream's status, naming the step, the upstream body embedded (parsed JSON, or
text) under ``upstream``::

    {"type": "https://naftiko.dev/problems/upstream", "title": "Upstream error",
     "status": 404, "detail": "step 'get-ship' (registry.get-ship): the upstream
     answered 404", "step": "get-ship", "upstream": {"error": "not_found"}}

``GET /.well-known/openapi.json`` serves the adapter's OpenAPI 3.1 document. The path is
reserved: a resource declaring exactly it is a load error, one whose variables also match
it is shadowed there (a load warning; see ``naftiko.engine.routes``). It is behind the
same inbound authentication as every other path: the API description is not public when
the API is not.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request, cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naftiko.adapters.http_common import (
    BodyTooLarge,
    json_bytes,
    outcome_of,
    problem_fields,
    problem_response,
    read_asgi_body,
    request_id_of,
)
from naftiko.adapters.http_common import RequestObserverMiddleware as _Observe
from naftiko.adapters.inbound_auth import InboundAuthMiddleware, build_inbound_auth
from naftiko.adapters.openapi import OPENAPI_PATH, build_openapi, is_whole_body, openapi_info
from naftiko.adapters.settings import AdapterSettings
from naftiko.engine.coerce import coerce_text
from naftiko.engine.routes import route_pattern
from naftiko.engine.types import (
    JSON_MEDIA_TYPE,
    ErrorKind,
    InputField,
    Inputs,
    Problem,
    RestAdapterPlan,
    RestRoute,
    Result,
    Unit,
)
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Info

__all__ = ["OPENAPI_PATH", "RestEngine", "build_rest_app"]

log = logging.getLogger(__name__)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MULTIPART_MEDIA_TYPE = "multipart/form-data"
# Upstream headers that describe the upstream's own framing, never ours.
_DROPPED_RESULT_HEADERS = frozenset(
    {
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "x-request-id",
    }
)


class RestEngine(Protocol):
    """What the adapter needs of the engine (``naftiko.engine.invoke.Engine``)."""

    async def invoke(self, unit: Unit, inputs: Inputs) -> Result: ...

    async def forward(self, route: RestRoute, inputs: Inputs) -> Result: ...


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class _Route:
    route: RestRoute
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    allow: str  # the Allow header for a 405

    @classmethod
    def of(cls, route: RestRoute) -> _Route:
        pattern, names = route_pattern(route.path)
        methods = set(route.operations)
        if "GET" in methods:
            methods.add("HEAD")
        return cls(route, pattern, names, ", ".join(sorted(methods)))

    def match(self, raw_path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        params: dict[str, str] = {}
        for index, name in enumerate(self.names):
            value = found.group(f"v{index}")
            params.setdefault(name, unquote(value) if value is not None else "")
        return params


def _raw_path(scope: Scope) -> str:
    """The request path as sent (percent-encoded), without the mount's root path."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(scope["path"])
    root = scope.get("root_path", "")
    if root and path.startswith(quote(root)):
        path = path[len(quote(root)) :] or "/"
    return path


# --------------------------------------------------------------------------- requests


class _Refused(Exception):
    """A request we answer ourselves with a problem (400, 413, 415)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields["title"])
        self.fields = fields


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """``(type/subtype lower-cased, charset or None)``."""
    if not content_type:
        return "", None
    main, *params = content_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return main.strip().lower(), charset


def _is_json(media: str) -> bool:
    return media == JSON_MEDIA_TYPE or (
        media.startswith("application/") and media.endswith("+json")
    )


def _multi_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Pairs to a dict; a repeated key becomes a list of its values in order."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in result:
            result[key] = value
        elif isinstance(result[key], list):
            result[key].append(value)
        else:
            result[key] = [result[key], value]
    return result


def _bad_request(title: str, detail: str, parameter: str | None = None) -> _Refused:
    return _Refused(problem_fields(400, title, detail, "validation", parameter=parameter))


async def _parse_body(scope: Scope, raw: bytes, content_type: str | None) -> tuple[Any, str]:
    """The whole body as the engine wants it, and its kind (json/form/multipart/text/bytes)."""
    if not raw:
        return None, "none"
    media, charset = _media_type(content_type)
    if _is_json(media) or not media:
        try:
            return json.loads(raw), "json"
        except (ValueError, RecursionError) as exc:
            if not media:  # no Content-Type: JSON if it parses, opaque bytes otherwise
                return raw, "bytes"
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot be decoded"
            detail = f"The request body is not JSON: {reason}."
            raise _bad_request("Malformed JSON body", detail) from None
    if media == FORM_MEDIA_TYPE:
        try:
            pairs = parse_qsl(
                raw.decode("latin-1"),
                keep_blank_values=True,
                encoding=charset or "utf-8",
                errors="strict",
            )
        except (UnicodeDecodeError, LookupError):
            raise _bad_request("Malformed form body", "The form body is not valid UTF-8.") from None
        return _multi_dict(pairs), "form"
    if media == MULTIPART_MEDIA_TYPE:
        return await _parse_multipart(scope, raw), "multipart"
    if media.startswith("text/"):
        try:
            return raw.decode(charset or "utf-8"), "text"
        except (UnicodeDecodeError, LookupError):
            raise _bad_request(
                "Malformed text body", "The text body does not match its charset."
            ) from None
    return raw, "bytes"


async def _parse_multipart(scope: Scope, raw: bytes) -> dict[str, Any]:
    """Multipart fields as strings, files as their bytes (kept simple on purpose)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    # Without "app" in the scope Starlette raises its MultiPartException (which also wraps
    # python-multipart's errors) instead of an HTTPException that would escape as a 500.
    form_scope = {key: value for key, value in scope.items() if key != "app"}
    try:
        form = await Request(form_scope, replay).form()
    except (MultiPartException, ValueError):
        detail = "The multipart body cannot be parsed."
        raise _bad_request("Malformed multipart body", detail) from None
    pairs: list[tuple[str, Any]] = []
    try:
        for key, value in form.multi_items():
            pairs.append((key, await value.read() if isinstance(value, UploadFile) else value))
    finally:
        await form.close()
    return _multi_dict(pairs)


@dataclass(slots=True)
class _Incoming:
    """What the adapter reads of a request, from one pass over the raw ASGI headers.

    Starlette's ``Request`` re-decodes the header list on every lookup; this decodes
    each header once (latin-1, names lower-case as ASGI sends them).
    """

    headers: dict[str, list[str]]
    query_string: str
    _query: list[tuple[str, str]] | None = None

    @classmethod
    def of(cls, scope: Scope) -> _Incoming:
        headers: dict[str, list[str]] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1")
            found = headers.get(name)
            if found is None:
                headers[name] = [value.decode("latin-1")]
            else:
                found.append(value.decode("latin-1"))
        return cls(headers, scope.get("query_string", b"").decode("latin-1"))

    def header(self, name: str) -> str | None:
        """The first value, as ``Headers.get``."""
        found = self.headers.get(name)
        return found[0] if found else None

    def header_map(self) -> dict[str, str]:
        """Every header once; repeated ones joined with ``", "`` (RFC 9110 field lines)."""
        return {k: v[0] if len(v) == 1 else ", ".join(v) for k, v in self.headers.items()}

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query pairs in order, parsed as Starlette's ``QueryParams`` does (once)."""
        if self._query is None:
            self._query = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query

    def query_list(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name] if self.query_string else []

    def cookies(self) -> dict[str, str]:
        return cookie_parser(self.header("cookie") or "")


def _coerce(field: InputField, text: str | list[str]) -> Any:
    try:
        return coerce_text(field, text)
    except ValueError as exc:
        raise _bad_request(
            "Invalid parameter",
            f"The {field.location} parameter '{field.name}' {exc}.",
            parameter=field.name,
        ) from None


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _values(
    unit: Unit, request: _Incoming, params: Mapping[str, str], body: Any, kind: str
) -> dict[str, Any]:
    """Declared inputs from their locations, then lenient undeclared ones (declared win)."""
    values: dict[str, Any] = {}
    declared: set[str] = set()
    text_body = kind in ("form", "multipart")
    for field in unit.inputs:
        declared.add(field.name)
        if field.location == "path":
            if field.name in params:
                values[field.name] = _coerce(field, params[field.name])
        elif field.location == "query":
            found = request.query_list(field.name)
            if found:
                values[field.name] = _coerce(field, _one_or_many(found))
        elif field.location == "header":
            found = request.headers.get(field.name.lower(), [])
            if found:
                values[field.name] = _coerce(field, _one_or_many(found))
        elif field.location == "cookie":
            cookie = request.cookies().get(field.name)
            if cookie is not None:
                values[field.name] = _coerce(field, cookie)
        elif is_whole_body(field):
            if body is not None:
                values[field.name] = body
        elif field.location == "body" and isinstance(body, dict) and field.name in body:
            value = body[field.name]
            is_text = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            values[field.name] = _coerce(field, value) if text_body and is_text else value
    lenient: list[tuple[str, Any]] = list(params.items())
    lenient += request.query if request.query_string else []  # setdefault keeps the first
    if isinstance(body, dict):
        lenient += list(body.items())
    for name, value in lenient:
        if name not in declared:
            values.setdefault(name, value)
    return values


def _check_media_type(unit: Unit, kind: str, content_type: str | None) -> None:
    """415 when the unit declares body fields but the body is text or opaque bytes.

    A JSON body of the wrong shape (an array, a string) is not a media type problem: the
    engine's validation answers it with a 400 naming the missing field.
    """
    declares_fields = any(
        f.location == "body" and not f.derived and not is_whole_body(f) for f in unit.inputs
    )
    if declares_fields and kind in ("text", "bytes"):
        media, _ = _media_type(content_type)
        raise _Refused(
            problem_fields(
                415,
                "Unsupported media type",
                f"This operation reads fields of a JSON or form body, not {media or 'bytes'}.",
                "unsupported-media-type",
            )
        )


# --------------------------------------------------------------------------- responses


def _result_response(result: Result, request_id: str) -> Response:
    problem = result.problem
    if problem is not None and problem.kind != ErrorKind.UPSTREAM:
        return problem_response(problem, request_id)
    headers = {k: v for k, v in result.headers.items() if k.lower() not in _DROPPED_RESULT_HEADERS}
    if problem is not None and problem.step is not None:
        return _step_failure(problem, result.body, request_id, headers)
    body = result.body
    status = result.status
    if body is None or status in (204, 304) or status < 200:
        return Response(status_code=status, headers=headers)
    if isinstance(body, bytes | bytearray):
        headers["content-type"] = result.media_type or "application/octet-stream"
        return Response(bytes(body), status_code=status, headers=headers)
    try:
        content = json_bytes(body)
    except ValueError:  # NaN/Infinity parsed from an upstream body
        return problem_response(
            Problem(
                ErrorKind.BAD_UPSTREAM_RESPONSE,
                "Bad upstream response",
                "The upstream response holds numbers JSON cannot represent.",
                502,
            ),
            request_id,
        )
    media_type = result.media_type if "json" in (result.media_type or "") else JSON_MEDIA_TYPE
    headers["content-type"] = media_type
    return Response(content, status_code=status, headers=headers)


def _step_failure(
    problem: Problem, upstream: Any, request_id: str, headers: dict[str, str]
) -> Response:
    """A failed orchestration step: the problem naming it, the upstream body embedded."""
    fields = problem.as_json()
    if isinstance(upstream, bytes | bytearray):
        upstream = bytes(upstream).decode("utf-8", errors="replace")
    if upstream is not None:
        fields["upstream"] = upstream
    try:
        return problem_response(fields, request_id, headers=headers)
    except ValueError:  # NaN/Infinity parsed from the upstream body: the problem alone
        return problem_response(problem, request_id, headers=headers)


def _without_body(response: Response) -> Response:
    """The HEAD form: same status and headers (Content-Length of the GET), no body."""
    head = Response(status_code=response.status_code)
    head.raw_headers = list(response.raw_headers)
    head.body = b""
    return head


_INTERNAL = Problem(
    ErrorKind.INTERNAL, "Internal error", "The request could not be processed.", 500
)
_NOT_FOUND = problem_fields(
    404, "Not found", "No resource of this API matches the path.", "not-found"
)


# --------------------------------------------------------------------------- the app


class _RestEndpoint:
    """The single ASGI endpoint behind every path: match, translate, invoke, answer."""

    def __init__(
        self,
        engine: RestEngine,
        plan: RestAdapterPlan,
        settings: AdapterSettings,
        openapi_document: dict[str, Any],
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.settings = settings
        self.routes = tuple(_Route.of(route) for route in plan.routes)
        self.openapi = json_bytes(openapi_document)
        self.too_large = problem_fields(
            413,
            "Request body too large",
            f"The request body exceeds {settings.max_body_bytes} bytes.",
            "payload-too-large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_of(scope)
        method = scope["method"]
        try:
            response = await self._handle(scope, receive, request_id)
        except ClientDisconnect:
            return  # nobody is listening for an answer
        except _Refused as refused:
            response = problem_response(refused.fields, request_id)
        except Exception:  # a defect of ours: logged with its traceback, never shown
            log.exception(
                "REST adapter %s failed on %s (request %s)",
                self.plan.namespace,
                method,
                request_id,
            )
            response = problem_response(_INTERNAL, request_id)
        if method == "HEAD":
            response = _without_body(response)
        await response(scope, receive, send)

    def _match(self, raw_path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(raw_path)
            if params is not None:
                return route, params
        return None

    async def _handle(self, scope: Scope, receive: Receive, request_id: str) -> Response:
        outcome = outcome_of(scope)
        method = scope["method"].upper()
        raw_path = _raw_path(scope)
        if raw_path.rstrip("/") == OPENAPI_PATH:
            outcome.unit = "openapi"
            if method not in ("GET", "HEAD"):
                return _not_allowed(method, "GET, HEAD", request_id)
            return Response(self.openapi, media_type=JSON_MEDIA_TYPE)
        found = self._match(raw_path)
        if found is None:
            return problem_response(_NOT_FOUND, request_id)
        route, params = found
        unit = route.route.operations.get(method)
        if unit is None and method == "HEAD":
            unit = route.route.operations.get("GET")
        if unit is None and route.route.forward is None:
            return _not_allowed(method, route.allow, request_id)
        outcome.unit = unit.name if unit is not None else (route.route.name or route.route.path)
        request = _Incoming.of(scope)
        limit = self.settings.max_body_bytes
        try:
            raw = await read_asgi_body(receive, request.header("content-length"), limit)
        except BodyTooLarge:
            return problem_response(self.too_large, request_id)
        content_type = request.header("content-type")
        common: dict[str, Any] = {
            "media_type": content_type,
            "headers": request.header_map(),
            "query_string": request.query_string,
            "method": method,
            "request_id": request_id,
        }
        if unit is None:
            # ``Inputs.path`` is the remainder the engine appends to the target base URI.
            remainder = params.get("path", "")
            inputs = Inputs(values=params, body=raw or None, path=remainder, **common)
            result = await self.engine.forward(route.route, inputs)
        else:
            body, kind = await _parse_body(scope, raw, content_type)
            _check_media_type(unit, kind, content_type)
            values = _values(unit, request, params, body, kind)
            inputs = Inputs(values=values, body=body, **common)
            result = await self.engine.invoke(unit, inputs)
        outcome.upstream_status = result.upstream_status
        outcome.is_error = result.is_error
        return _result_response(result, request_id)


def _not_allowed(method: str, allow: str, request_id: str) -> Response:
    return problem_response(
        problem_fields(
            405,
            "Method not allowed",
            f"This resource does not accept {method}; it accepts {allow}.",
            "method-not-allowed",
        ),
        request_id,
        headers={"Allow": allow},
    )


def build_rest_app(
    engine: RestEngine,
    plan: RestAdapterPlan,
    settings: AdapterSettings | None = None,
    *,
    bindings: Bindings | None = None,
    info: Info | None = None,
) -> Starlette:
    """The Starlette app serving ``plan`` (see the module docstring).

    Raises ``InboundAuthConfigError`` when ``plan.authentication`` cannot be enforced.
    """
    binds = bindings or Bindings.empty()
    auth = build_inbound_auth(plan.authentication, binds.as_scope(), binds.namespaced())
    title, version, description = openapi_info(plan, info)
    document = build_openapi(
        plan, title=title, version=version, description=description, server_url="/"
    )
    endpoint: ASGIApp = _RestEndpoint(engine, plan, settings or AdapterSettings(), document)
    if auth is not None:
        endpoint = InboundAuthMiddleware(endpoint, auth=auth)
    return _RestApp(_Observe(endpoint, adapter_type="rest", adapter=plan.namespace))


class _RestApp(Starlette):
    """A Starlette app (lifespan, ``state``) whose HTTP requests go straight to ``chain``.

    Every path is ours to route (a Starlette path regex misses decoded newlines and would
    answer a plain-text 404 first), the endpoint answers every exception of its own, and
    the chain is pure ASGI; Starlette's error, exception and routing layers would only
    add per-request work.
    """

    def __init__(self, chain: ASGIApp) -> None:
        super().__init__()
        self.chain = chain
        self.router.redirect_slashes = False
        self.router.default = chain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            await self.chain(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
