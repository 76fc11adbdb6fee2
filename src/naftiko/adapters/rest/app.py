"""The REST adapter: one Starlette app per ``exposes: - type: rest`` entry.

Usage (the runtime)::

    app = build_rest_app(engine, plan, settings, bindings=loaded.bindings,
                         info=loaded.document.info)
    # serve ``app`` with uvicorn on plan.address / plan.port

``build_rest_app(engine, plan, settings=None, *, bindings=None, info=None) -> Starlette``

* ``engine`` — anything with ``await invoke(unit, inputs) -> Result`` and
  ``await forward(forward_plan, inputs) -> Result`` (``naftiko.engine.invoke.Engine``). The
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

Request bodies: JSON (``application/json``, ``application/*+json``) always; form and
multipart only where a consumed operation the unit calls declares that body type
(``Unit.body_media``); any other body, or one without a Content-Type, is a 415 before it
is parsed. Form, multipart and ``text/plain`` are what a browser sends cross-site without
a preflight: they never run an operation whose body is JSON (CSRF). A request without a
body is not refused. ``forward`` resources pass any body on as sent.

Results: a success or a ``call`` unit's upstream error answers with the upstream's status
and body, unchanged. A failed orchestration step answers ``application/problem+json``
with the upstream's status, naming the step, the upstream body embedded (parsed JSON, or
text) under ``upstream``::

    {"type": "https://naftiko.dev/problems/upstream", "title": "Upstream error",
     "status": 404, "detail": "step 'get-ship' (registry.get-ship): the upstream
     answered 404", "step": "get-ship", "upstream": {"error": "not_found"}}

``GET /.well-known/openapi.json`` serves the adapter's OpenAPI 3.1 document. The path is
reserved: a resource declaring exactly it is a load error, one whose variables also match
it is shadowed there (a load warning; see ``naftiko.adapters.rest.routes``). It is behind the
same inbound authentication as every other path: the API description is not public when
the API is not.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, HTTPConnection, Request, cookie_parser
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from naftiko import json_codec
from naftiko.adapters.http.auth import InboundAuth, build_inbound_auth
from naftiko.adapters.http.common import (
    REQUEST_ID_BYTES,
    Outcome,
    json_bytes,
    problem_fields,
    receive_body,
    report_finished,
    request_id_of,
)
from naftiko.adapters.http.origin import refusal_fields
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.rest.coerce import coerce_text, schema_type
from naftiko.adapters.rest.openapi import OPENAPI_PATH, build_openapi, is_whole_body, openapi_info
from naftiko.adapters.rest.plan import RestAdapterPlan, RestRoute
from naftiko.adapters.rest.routes import route_pattern
from naftiko.engine.types import (
    FORM_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    MULTIPART_MEDIA_TYPE,
    PROBLEM_MEDIA_TYPE,
    ErrorKind,
    ForwardPlan,
    InputField,
    Inputs,
    Problem,
    Result,
    Unit,
)
from naftiko.errors import CallerError
from naftiko.media_types import is_json_request_body, media_and_charset
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Info

__all__ = ["OPENAPI_PATH", "RestEngine", "build_rest_app"]

log = logging.getLogger(__name__)

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

    async def forward(self, forward: ForwardPlan, inputs: Inputs) -> Result: ...


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class _Operation:
    """A unit as this adapter calls it, with what its requests need decided at build time."""

    unit: Unit
    reads_fields: bool  # declares fields of a JSON or form body
    reads_body: bool  # some input is in the body (fields or the whole body)
    declared: frozenset[str]  # the names of its inputs
    # Each input, and whether its declared type takes one text value as it is (string or
    # untyped): ``coerce_text`` would return it unchanged.
    inputs: tuple[tuple[InputField, bool], ...]
    # The 415 answered to a body of any media type besides JSON and ``unit.body_media``.
    unsupported: Mapping[str, Any]

    @classmethod
    def of(cls, unit: Unit) -> _Operation:
        reads_fields = any(
            f.location == "body" and not f.derived and not is_whole_body(f) for f in unit.inputs
        )
        reads_body = any(f.location == "body" for f in unit.inputs)
        declared = frozenset(f.name for f in unit.inputs)
        inputs = tuple((f, schema_type(f.schema) not in _CONVERTED_TYPES) for f in unit.inputs)
        return cls(unit, reads_fields, reads_body, declared, inputs, _unsupported_media(unit))


# The declared types ``coerce_text`` converts text to (any other passes through).
_CONVERTED_TYPES = frozenset({"array", "integer", "number", "boolean", "object", "null"})


@dataclass(frozen=True, slots=True)
class _Route:
    route: RestRoute
    pattern: re.Pattern[str]
    groups: tuple[tuple[str, str], ...]  # (variable name, regex group name)
    operations: Mapping[str, _Operation]  # by method; HEAD is answered by GET

    @classmethod
    def of(cls, route: RestRoute) -> _Route:
        pattern, names = route_pattern(route.path)
        groups = tuple((name, f"v{index}") for index, name in enumerate(names))
        operations = {method: _Operation.of(unit) for method, unit in route.operations.items()}
        if "GET" in operations:
            operations.setdefault("HEAD", operations["GET"])
        return cls(route, pattern, groups, operations)

    def match(self, raw_path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        params: dict[str, str] = {}
        for name, group in self.groups:
            value = found.group(group)
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


class _Refused(CallerError):
    """A request we answer ourselves with a problem (400, 413, 415)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields["title"])
        self.fields = fields


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


def _parse_body(raw: bytes, media: str, charset: str | None) -> tuple[Any, str]:
    """A non-empty body of a media type the operation takes (``_check_media_type``), as
    the engine wants it, and its kind (json/form).

    ``media``/``charset`` as :func:`media_and_charset` gives them; multipart is
    :func:`_parse_multipart`'s (the only one that awaits).
    """
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
    try:
        return json_codec.loads(raw), "json"
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot be decoded"
        detail = f"The request body is not JSON: {reason}."
        raise _bad_request("Malformed JSON body", detail) from None


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

    headers: dict[str, str]  # every header once; repeated ones joined with ", " (RFC 9110)
    raw_headers: list[tuple[bytes, bytes]]
    repeated: bool  # some header came more than once: ask ``raw_headers`` for its values
    query_string: str
    _query: list[tuple[str, str]] | None = None

    @classmethod
    def of(cls, scope: Scope) -> _Incoming:
        headers: dict[str, str] = {}
        repeated = False
        raw_headers = scope["headers"]
        for key, value in raw_headers:
            name = key.decode("latin-1")
            if name in headers:
                headers[name] += ", " + value.decode("latin-1")
                repeated = True
            else:
                headers[name] = value.decode("latin-1")
        query_string = scope.get("query_string", b"").decode("latin-1")
        return cls(headers, raw_headers, repeated, query_string)

    def header(self, name: str) -> str | None:
        """The first value, as ``Headers.get``."""
        if not self.repeated:
            return self.headers.get(name)
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of one header, in order."""
        if not self.repeated:
            value = self.headers.get(name)
            return [] if value is None else [value]
        key = name.encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw_headers if k == key]

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query pairs in order, parsed as Starlette's ``QueryParams`` does (once)."""
        if self._query is None:
            self._query = _parse_query(self.query_string)
        return self._query

    def query_list(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name] if self.query_string else []

    def cookies(self) -> dict[str, str]:
        return cookie_parser(self.header("cookie") or "")


def _parse_query(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``; without ``%`` or ``+`` nothing needs
    unquoting, and splitting is all it does (at a fifth of the cost)."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for item in text.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((name, value))
    return pairs


def _coerce(field: InputField, text: str | list[str], as_is: bool = False) -> Any:
    if as_is and type(text) is str:
        return text
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
    operation: _Operation, request: _Incoming, params: Mapping[str, str], body: Any, kind: str
) -> dict[str, Any]:
    """Declared inputs from their locations, then lenient undeclared ones (declared win)."""
    values: dict[str, Any] = {}
    declared = operation.declared
    text_body = kind in ("form", "multipart")
    for field, as_is in operation.inputs:
        if field.location == "path":
            if field.name in params:
                values[field.name] = _coerce(field, params[field.name], as_is)
        elif field.location == "query":
            found = request.query_list(field.name)
            if found:
                values[field.name] = _coerce(field, _one_or_many(found), as_is)
        elif field.location == "header":
            found = request.header_values(field.name.lower())
            if found:
                values[field.name] = _coerce(field, _one_or_many(found), as_is)
        elif field.location == "cookie":
            cookie = request.cookies().get(field.name)
            if cookie is not None:
                values[field.name] = _coerce(field, cookie, as_is)
        elif is_whole_body(field):
            if body is not None:
                values[field.name] = body
        elif field.location == "body" and isinstance(body, dict) and field.name in body:
            value = body[field.name]
            is_text = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            values[field.name] = _coerce(field, value, as_is) if text_body and is_text else value
    lenient: list[tuple[str, Any]] = list(params.items())
    lenient += request.query if request.query_string else []  # setdefault keeps the first
    if isinstance(body, dict):
        lenient += list(body.items())
    for name, value in lenient:
        if name not in declared:
            values.setdefault(name, value)
    return values


def _unsupported_media(unit: Unit) -> dict[str, Any]:
    """The 415 problem of ``unit``, naming the media types it takes."""
    taken = ", ".join([JSON_MEDIA_TYPE, *sorted(unit.body_media)])
    return problem_fields(
        415,
        "Unsupported media type",
        f"This operation takes a request body of type {taken} (or application/*+json).",
        "unsupported-media-type",
    )


def _check_media_type(operation: _Operation, media: str) -> None:
    """415 unless a body's media type is JSON or one the document declares (form,
    multipart). What a browser sends cross-site without a preflight (form, multipart,
    ``text/plain``) or a body without a Content-Type never runs a JSON operation.

    A JSON body of the wrong shape (an array, a string) is not a media type problem: the
    engine's validation answers it with a 400 naming the missing field.
    """
    if not (is_json_request_body(media) or media in operation.unit.body_media):
        raise _Refused(operation.unsupported)


def _empty_body(operation: _Operation, media: str) -> tuple[Any, str]:
    """An empty body: a form with no fields where the operation takes forms (its schema
    is an object), else nothing at all."""
    if media == FORM_MEDIA_TYPE and media in operation.unit.body_media:
        return {}, "form"
    return None, "none"


def _check_null_body(operation: _Operation, kind: str, body: Any) -> None:
    """400 for a JSON ``null`` where the OpenAPI document promises an object of fields.

    ``null`` is a body that was sent, not an absent one: reading no field from it would
    accept what the served contract refuses (schemathesis sends it).
    """
    if operation.reads_fields and kind == "json" and body is None:
        raise _bad_request(
            "Invalid request body",
            "The request body is JSON null; this operation reads fields of a JSON object.",
            parameter="body",
        )


def _check_unread_body(operation: _Operation, kind: str, body: Any) -> None:
    """400 for a body no input reads: it would be dropped on the way to the upstream.

    A JSON or form object with a field named like an input, or like a name the unit's
    templates read (``Unit.reads``), is read (leniently, as undeclared fields are); an
    empty one carries nothing to drop.
    """
    if operation.reads_body or kind == "none" or body == {}:
        return
    if isinstance(body, dict):
        reads = operation.unit.reads
        if reads is None or not operation.declared.isdisjoint(body) or not reads.isdisjoint(body):
            return
    raise _bad_request(
        "Unexpected request body",
        "This operation reads no request body; it would not reach the upstream.",
        parameter="body",
    )


# --------------------------------------------------------------------------- responses

_Headers = list[tuple[bytes, bytes]]
# A response as its two ASGI messages carry it: status, headers (lower-case names,
# Content-Length included, X-Request-Id added when sending; never mutated), body. Sent
# as is, it skips Starlette's ``Response`` and leaves uvicorn few headers to validate.
_Reply = tuple[int, _Headers, bytes]

_JSON_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())
_PROBLEM_TYPE = (b"content-type", PROBLEM_MEDIA_TYPE.encode())


def _reply(status: int, headers: _Headers, body: bytes = b"") -> _Reply:
    """As Starlette's ``Response``: a Content-Length unless the status has no body."""
    if status >= 200 and status not in (204, 304):
        headers.append((b"content-length", b"%d" % len(body)))
    return status, headers, body


def _problem_reply(fields: Mapping[str, Any], headers: _Headers | None = None) -> _Reply:
    """``application/problem+json`` with the problem's status (``problem_response``'s)."""
    content = json_bytes(fields)
    return _reply(int(fields.get("status", 500)), [_PROBLEM_TYPE, *(headers or ())], content)


def _response_reply(response: Response) -> _Reply:
    """A Starlette response built elsewhere (the auth refusals)."""
    return response.status_code, list(response.raw_headers), bytes(response.body)


def _kept_headers(headers: Mapping[str, str]) -> _Headers:
    """The result's headers, encoded, without any that describe the upstream's framing
    or that cannot be written (a control character: the server would refuse the reply)."""
    kept = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in _DROPPED_RESULT_HEADERS:
            continue
        encoded = _header_value(value)
        if not _CONTROL.search(encoded):
            kept.append((_header_value(lower), encoded))
    return kept


# What uvicorn refuses in a header value (its HEADER_VALUE_RE): CR, LF and the rest.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(text: str) -> bytes:
    """Latin-1, as ASGI carries headers; text that is not Latin-1 came from an upstream
    header httpx read as UTF-8, so it goes on as those same UTF-8 bytes, never a 500."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _result_reply(result: Result) -> _Reply:
    problem = result.problem
    if problem is not None and problem.kind != ErrorKind.UPSTREAM:
        return _problem_reply(problem.as_json())
    headers = _kept_headers(result.headers) if result.headers else []
    if problem is not None and problem.step is not None:
        return _step_failure(problem, result.body, headers)
    body = result.body
    status = result.status
    if body is None or status in (204, 304) or status < 200:
        return _reply(status, headers)
    if isinstance(body, bytes | bytearray):
        media_type = result.media_type or "application/octet-stream"
        headers.append((b"content-type", _header_value(media_type)))
        return _reply(status, headers, bytes(body))
    try:
        content = json_bytes(body)
    except (ValueError, RecursionError):  # NaN/Infinity, or nested beyond the encoder
        return _problem_reply(_UNREPRESENTABLE)
    media_type = result.media_type
    if media_type == JSON_MEDIA_TYPE or "json" not in (media_type or ""):
        headers.append(_JSON_TYPE)
    else:
        headers.append((b"content-type", _header_value(media_type)))
    return _reply(status, headers, content)


def _step_failure(problem: Problem, upstream: Any, headers: _Headers) -> _Reply:
    """A failed orchestration step: the problem naming it, the upstream body embedded."""
    fields = problem.as_json()
    if isinstance(upstream, bytes | bytearray):
        upstream = bytes(upstream).decode("utf-8", errors="replace")
    if upstream is not None:
        fields["upstream"] = upstream
    try:
        return _problem_reply(fields, headers)
    except ValueError:  # NaN/Infinity parsed from the upstream body: the problem alone
        return _problem_reply(problem.as_json(), headers)


def _not_allowed(method: str, allow: str) -> _Reply:
    fields = problem_fields(
        405,
        "Method not allowed",
        f"This resource does not accept {method}; it accepts {allow}.",
        "method-not-allowed",
    )
    return _problem_reply(fields, [(b"allow", allow.encode("latin-1"))])


_INTERNAL = Problem(
    ErrorKind.INTERNAL, "Internal error", "The request could not be processed.", 500
).as_json()
_UNREPRESENTABLE = Problem(
    ErrorKind.BAD_UPSTREAM_RESPONSE,
    "Bad upstream response",
    "The upstream response cannot be written as JSON (numbers JSON cannot represent, or "
    "nesting too deep).",
    502,
).as_json()
_NOT_FOUND = problem_fields(
    404, "Not found", "No resource of this API matches the path.", "not-found"
)


# --------------------------------------------------------------------------- the app


class _RestEndpoint:
    """The single ASGI endpoint behind every path: match, translate, invoke, answer.

    It is also the adapter's request observer and runs its inbound authentication, in
    the order the generic middlewares would (id and report outermost, then the auth
    check): one coroutine frame per request instead of three, and every response, auth
    refusals included, carries ``X-Request-Id`` and is counted once.
    """

    def __init__(
        self,
        engine: RestEngine,
        plan: RestAdapterPlan,
        settings: AdapterSettings,
        openapi_document: dict[str, Any],
        auth: InboundAuth | None = None,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.settings = settings
        self.auth = auth
        self.host_origin = settings.host_origin_policy()
        self.routes = tuple(_Route.of(route) for route in plan.routes)
        self.openapi = _reply(200, [_JSON_TYPE], json_bytes(openapi_document))
        self.too_large = problem_fields(
            413,
            "Request body too large",
            f"The request body exceeds {settings.max_body_bytes} bytes.",
            "payload-too-large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        outcome = Outcome()
        status = 500  # what the observer hears when nothing could be sent
        try:
            try:
                reply = await self._handle(scope, receive, request_id, outcome)
            except ClientDisconnect:
                return  # nobody is listening for an answer
            except _Refused as refused:
                reply = _problem_reply(refused.fields)
            except Exception:  # a defect of ours: logged with its traceback, never shown
                log.exception(
                    "REST adapter %s failed on %s (request %s)",
                    self.plan.namespace,
                    scope["method"],
                    request_id,
                )
                reply = _problem_reply(_INTERNAL)
            status, headers, body = reply
            headers = [*headers, (REQUEST_ID_BYTES, request_id.encode("latin-1"))]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            # HEAD: the GET's status and headers (its Content-Length too), no body.
            body = b"" if scope["method"] == "HEAD" else body
            await send({"type": "http.response.body", "body": body})
        finally:
            report_finished("rest", self.plan.namespace, outcome, status, started, request_id)

    def _match(self, raw_path: str, method: str) -> tuple[_Route, dict[str, str]] | str | None:
        """The first route whose path matches and that serves ``method`` (an operation or
        a forward), with its path variables; else the ``Allow`` value of the routes whose
        path matched (a 405), or None (a 404).

        Published documents often give each operation a resource of its own, so several
        resources share a path and split its methods; a route that matches the path but
        not the method must not end the search. The OpenAPI document merges them the
        same way: first declared wins.
        """
        allowed: set[str] | None = None
        for route in self.routes:
            params = route.match(raw_path)
            if params is None:
                continue
            if method in route.operations or route.route.forward is not None:
                return route, params
            allowed = (allowed or set()) | route.operations.keys()
        return None if allowed is None else ", ".join(sorted(allowed))

    async def _handle(
        self, scope: Scope, receive: Receive, request_id: str, outcome: Outcome
    ) -> _Reply:
        # DNS rebinding first (naftiko.adapters.http.origin), as the other adapters' middleware.
        refused = self.host_origin.refusal(scope)
        if refused is not None:
            return _problem_reply(refusal_fields(refused))
        if self.auth is not None:
            failure = await self.auth.check(HTTPConnection(scope))
            if failure is not None:
                return _response_reply(failure.response())
        method = scope["method"].upper()
        raw_path = _raw_path(scope)
        if raw_path.rstrip("/") == OPENAPI_PATH:
            outcome.unit = "openapi"
            if method not in ("GET", "HEAD"):
                return _not_allowed(method, "GET, HEAD")
            return self.openapi
        found = self._match(raw_path, method)
        if found is None:
            return _problem_reply(_NOT_FOUND)
        if isinstance(found, str):
            return _not_allowed(method, found)
        route, params = found
        operation = route.operations.get(method)
        if operation is not None:
            outcome.unit = operation.unit.name
        else:
            outcome.unit = route.route.name or route.route.path
        request = _Incoming.of(scope)
        limit = self.settings.max_body_bytes
        raw = await receive_body(receive, limit, request.header("content-length"))
        if not isinstance(raw, bytes):  # http_common.finished, inlined: on every request
            if raw.interrupted_by is None:
                return _problem_reply(self.too_large)
            raise ClientDisconnect
        content_type = request.header("content-type")
        if operation is None:
            # ``Inputs.path`` is the remainder the engine appends to the target base URI.
            inputs = Inputs(
                values=params,
                body=raw or None,
                media_type=content_type,
                headers=request.headers,
                query_string=request.query_string,
                method=method,
                path=params.get("path", ""),
                request_id=request_id,
            )
            forward = route.route.forward
            assert forward is not None  # ``_match`` gives a route the method misses for its forward
            result = await self.engine.forward(forward, inputs)
        else:
            media, charset = media_and_charset(content_type)
            if not raw:
                body, kind = _empty_body(operation, media)
            else:
                _check_media_type(operation, media)  # before parsing: nothing refused is read
                if media == MULTIPART_MEDIA_TYPE:
                    body, kind = await _parse_multipart(scope, raw), "multipart"
                else:
                    body, kind = _parse_body(raw, media, charset)
            _check_null_body(operation, kind, body)
            _check_unread_body(operation, kind, body)
            inputs = Inputs(
                values=_values(operation, request, params, body, kind),
                body=body,
                media_type=content_type,
                headers=request.headers,
                query_string=request.query_string,
                method=method,
                request_id=request_id,
            )
            result = await self.engine.invoke(operation.unit, inputs)
        outcome.upstream_status = result.upstream_status
        outcome.is_error = result.is_error
        return _result_reply(result)


def build_rest_app(
    engine: RestEngine,
    plan: RestAdapterPlan,
    settings: AdapterSettings | None = None,
    *,
    bindings: Bindings | None = None,
    info: Info | None = None,
    server_url: str = "/",
) -> Starlette:
    """The Starlette app serving ``plan`` (see the module docstring).

    ``server_url`` is the OpenAPI document's ``servers`` URL: the gateway serves the
    adapter under a prefix. Raises ``InboundAuthConfigError`` when
    ``plan.authentication`` cannot be enforced.
    """
    binds = bindings or Bindings.empty()
    auth = build_inbound_auth(plan.authentication, binds.as_scope(), binds.namespaced())
    title, version, description = openapi_info(plan, info)
    document = build_openapi(
        plan, title=title, version=version, description=description, server_url=server_url
    )
    return _RestApp(_RestEndpoint(engine, plan, settings or AdapterSettings(), document, auth))


class _RestApp(Starlette):
    """A Starlette app (lifespan, ``state``) whose HTTP requests go straight to ``endpoint``.

    Every path is ours to route (a Starlette path regex misses decoded newlines and would
    answer a plain-text 404 first) and the endpoint answers every exception of its own;
    Starlette's error, exception and routing layers would only add per-request work.
    """

    def __init__(self, endpoint: _RestEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            await self.endpoint(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
