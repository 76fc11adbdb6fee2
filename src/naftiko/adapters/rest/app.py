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
  anything listens: a server must never start with an authentication it cannot enforce.
* ``info`` — the document's ``info``, for the OpenAPI title/description/version.

The app only translates HTTP to ``Engine.invoke``/``Engine.forward`` and back: no
templating, upstream calls or mapping happen here. This module is the endpoint that
sequences each request (Host/Origin, inbound auth, routing, the caller's rate limit, body
checks, inputs, invoke, reply); the steps live in ``routing`` (routes and the path
match), ``bodies`` (the four body kinds and their checks), ``inputs`` (headers, query
and the gathered ``Inputs``) and ``replies`` (encoding a ``Result`` or a problem).

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

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from naftiko.adapters.http.auth import InboundAuth, build_inbound_auth
from naftiko.adapters.http.common import (
    REQUEST_ID_BYTES,
    Outcome,
    json_bytes,
    problem_fields,
    receive_body,
    report_finished,
    request_id_of,
    traced,
)
from naftiko.adapters.http.origin import refusal_fields
from naftiko.adapters.http.rate_limit import caller_of
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.rest.bodies import (
    Refused,
    check_media_type,
    check_null_body,
    check_unread_body,
    empty_body,
    parse_body,
    parse_multipart,
)
from naftiko.adapters.rest.inputs import Incoming, gather_values
from naftiko.adapters.rest.openapi import OPENAPI_PATH, build_openapi, openapi_info
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.adapters.rest.replies import (
    INTERNAL,
    JSON_TYPE,
    NOT_FOUND,
    Reply,
    not_allowed,
    problem_reply,
    reply,
    response_reply,
    result_reply,
)
from naftiko.adapters.rest.routing import Route, match_route, raw_path_of
from naftiko.engine.types import MULTIPART_MEDIA_TYPE, ForwardPlan, Inputs, Result, Unit
from naftiko.media_types import media_and_charset
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Info

__all__ = ["OPENAPI_PATH", "RestEngine", "build_rest_app"]

log = logging.getLogger(__name__)


class RestEngine(Protocol):
    """What the adapter needs of the engine (``naftiko.engine.invoke.Engine``)."""

    async def invoke(self, unit: Unit, inputs: Inputs) -> Result: ...

    async def forward(self, forward: ForwardPlan, inputs: Inputs) -> Result: ...


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
        openapi_document: Callable[[], dict[str, Any]],
        auth: InboundAuth | None = None,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.settings = settings
        self.auth = auth
        self.host_origin = settings.host_origin_policy()
        self.limit = settings.rate_limit("rest", plan.namespace)
        self._openapi_document = openapi_document
        self.too_large = problem_fields(
            413,
            "Request body too large",
            f"The request body exceeds {settings.max_body_bytes} bytes.",
            "payload-too-large",
        )

    # The routing table and the OpenAPI reply are made on the first request that needs
    # them (then they are plain attributes): building them for every adapter of a
    # gateway's folder was a large part of its start, for adapters mostly never called.
    # Neither can fail for a plan that compiled.

    @functools.cached_property
    def routes(self) -> tuple[Route, ...]:
        return tuple(Route.of(route) for route in self.plan.routes)

    @functools.cached_property
    def openapi(self) -> Reply:
        return reply(200, [JSON_TYPE], json_bytes(self._openapi_document()))

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
            except Refused as refused:
                reply = problem_reply(refused.fields)
            except Exception:  # a defect of ours: logged with its traceback, never shown
                log.exception(
                    "REST adapter %s failed on %s (request %s)",
                    self.plan.namespace,
                    scope["method"],
                    request_id,
                )
                reply = problem_reply(INTERNAL)
            status, headers, body = reply
            headers = [*headers, (REQUEST_ID_BYTES, request_id.encode("latin-1"))]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            # HEAD: the GET's status and headers (its Content-Length too), no body.
            body = b"" if scope["method"] == "HEAD" else body
            await send({"type": "http.response.body", "body": body})
        finally:
            report_finished("rest", self.plan.namespace, outcome, status, started, request_id)

    async def _handle(
        self, scope: Scope, receive: Receive, request_id: str, outcome: Outcome
    ) -> Reply:
        # DNS rebinding first (naftiko.adapters.http.origin), as the other adapters' middleware.
        refused = self.host_origin.refusal(scope)
        if refused is not None:
            return problem_reply(refusal_fields(refused))
        if self.auth is not None:
            failure = await self.auth.check(HTTPConnection(scope))
            if failure is not None:
                return response_reply(failure.response())
        method = scope["method"].upper()
        raw_path = raw_path_of(scope)
        if raw_path.rstrip("/") == OPENAPI_PATH:
            outcome.unit = "openapi"
            if method not in ("GET", "HEAD"):
                return not_allowed(method, "GET, HEAD")
            return self.openapi
        found = match_route(self.routes, raw_path, method)
        if found is None:
            return problem_reply(NOT_FOUND)
        if isinstance(found, str):
            return not_allowed(method, found)
        route, params = found
        operation = route.operations.get(method)
        if operation is not None:
            outcome.unit = operation.unit.name
        else:
            outcome.unit = route.route.name or route.route.path
        limited: list[tuple[bytes, bytes]] = []
        if self.limit is not None:  # a request reaching a unit: the caller's bucket pays
            decision = await self.limit.take(caller_of(scope))
            limited = decision.headers()
            if not decision.allowed:
                return problem_reply(decision.problem(), limited)
        request = Incoming.of(scope)
        limit = self.settings.max_body_bytes
        raw = await receive_body(receive, limit, request.header("content-length"))
        if not isinstance(raw, bytes):  # http_common.finished, inlined: on every request
            if raw.interrupted_by is None:
                return problem_reply(self.too_large)
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
                body, kind = empty_body(operation, media)
            else:
                check_media_type(operation, media)  # before parsing: nothing refused is read
                if media == MULTIPART_MEDIA_TYPE:
                    body, kind = await parse_multipart(scope, raw), "multipart"
                else:
                    body, kind = parse_body(raw, media, charset)
            check_null_body(operation, kind, body)
            check_unread_body(operation, kind, body)
            inputs = Inputs(
                values=gather_values(operation, request, params, body, kind),
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
        contract = operation.contract if operation is not None else None
        if limited:
            status, headers, content = result_reply(result, contract)
            return status, [*headers, *limited], content
        return result_reply(result, contract)


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
    document = functools.partial(
        build_openapi,
        plan,
        title=title,
        version=version,
        description=description,
        server_url=server_url,
    )
    endpoint = _RestEndpoint(engine, plan, settings or AdapterSettings(), document, auth)
    app = _RestApp(traced(endpoint, "rest", plan.namespace))
    app.state.inbound_auth = auth  # the gateway's docs page of this adapter is behind it too
    return app


class _RestApp(Starlette):
    """A Starlette app (lifespan, ``state``) whose HTTP requests go straight to ``endpoint``.

    Every path is ours to route (a Starlette path regex misses decoded newlines and would
    answer a plain-text 404 first) and the endpoint answers every exception of its own;
    Starlette's error, exception and routing layers would only add per-request work.
    """

    def __init__(self, endpoint: ASGIApp) -> None:
        super().__init__()
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            await self.endpoint(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
