"""Traces: the one seam between the request path and OpenTelemetry, off unless configured.

Off by default, and then nothing of OpenTelemetry is imported here and the request path
does no tracing work: callers test :data:`ENABLED` (a module attribute, set once at
process start by ``naftiko.runtime.traces``) before calling anything else of this module,
and adapters are wrapped in :func:`server_spans` only when it is true at build time.

When on, a request makes:

* a SERVER span per HTTP request of an adapter (:func:`server_spans`), continuing the
  caller's W3C ``traceparent``/``tracestate`` when they are valid; :func:`request_reported`
  (called from the one request report) names it after the adapter and unit;
* a span per orchestration step (:func:`step_started` / :func:`step_ended`);
* a CLIENT span per upstream attempt (:func:`upstream_started` / :func:`upstream_ended`),
  with the HTTP semantic conventions, whose context is written into the upstream
  request's ``traceparent``/``tracestate`` headers.

Only W3C trace context crosses process boundaries (no baggage: a caller's baggage is not
ours to hand to third-party APIs). What goes into attributes is chosen here and nowhere
else, never a header value, a bind value or a query value: ``url.full`` keeps the scheme,
host, port and path, with credentials and every query value replaced by ``REDACTED``.

Our tracer comes from our own provider, not the global one, so libraries that trace
through the global API (the MCP SDK does) stay silent and every span here is ours.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from naftiko.errors import Problem

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ENABLED",
    "current_ids",
    "disable",
    "enable",
    "redacted_url",
    "request_reported",
    "server_spans",
    "step_ended",
    "step_started",
    "upstream_ended",
    "upstream_started",
]

ENABLED = False
"""True once a tracer provider is installed; read by the request path before any call here."""

REDACTED = "REDACTED"
_TRACE_HEADERS = (b"traceparent", b"tracestate")

_tracer: Tracer | None = None
_api: Any = None  # the OpenTelemetry API pieces, imported by :func:`enable`


class _Api:
    """The OpenTelemetry API names used here, imported once when tracing is enabled."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.context = context
        self.trace = trace
        self.SERVER = SpanKind.SERVER
        self.CLIENT = SpanKind.CLIENT
        self.INTERNAL = SpanKind.INTERNAL
        self.ERROR = StatusCode.ERROR
        self.propagator = TraceContextTextMapPropagator()


def enable(tracer: Tracer) -> None:
    """Trace through ``tracer`` from now on (adapters built later get server spans)."""
    global ENABLED, _tracer, _api
    _api = _api or _Api()
    _tracer = tracer
    ENABLED = True


def disable() -> None:
    """Stop tracing (adapters already wrapped keep their wrapper but make no span)."""
    global ENABLED, _tracer
    ENABLED = False
    _tracer = None


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in W3C hex of the current span, or None when there is none."""
    if not ENABLED:
        return None
    context = _api.trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


# --------------------------------------------------------------------------- server spans


def server_spans(app: Any, adapter_type: str, adapter: str) -> Any:
    """``app`` itself when tracing is off; else ``app`` wrapped to make a SERVER span per
    HTTP request (the outermost layer: refused requests get a span too)."""
    return _ServerSpans(app, adapter_type, adapter) if ENABLED else app


class _ServerSpans:
    """ASGI wrapper: one SERVER span per HTTP request, current while the app runs."""

    def __init__(self, app: Any, adapter_type: str, adapter: str) -> None:
        self.app = app
        self.adapter_type = adapter_type
        self.adapter = adapter

    def __getattr__(self, name: str) -> Any:  # the wrapped app's attributes (state, ...)
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        tracer = _tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        api = _api
        parent = api.propagator.extract(_trace_headers(scope.get("headers", ())))
        method = scope.get("method", "GET")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "naftiko.adapter.type": self.adapter_type,
            "naftiko.adapter": self.adapter,
        }
        server = scope.get("server")
        if server and server[1] is not None:
            attributes["server.port"] = server[1]
        span = tracer.start_span(method, context=parent, kind=api.SERVER, attributes=attributes)
        token = api.context.attach(api.trace.set_span_in_context(span, parent))
        status: int | None = None  # None: no response was started (a disconnect, a defect)

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(api.ERROR)
            raise
        finally:
            if status is None:
                pass
            elif status >= 500:
                span.set_attributes(
                    {"http.response.status_code": status, "error.type": str(status)}
                )
                span.set_status(api.ERROR)
            else:
                span.set_attribute("http.response.status_code", status)
            api.context.detach(token)
            span.end()


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The caller's ``traceparent``/``tracestate`` (the only headers the propagator reads)."""
    carrier: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in _TRACE_HEADERS:
            carrier[lower.decode()] = value.decode("latin-1")
    return carrier


def request_reported(adapter_type: str, unit: str, status: int, is_error: bool) -> None:
    """What the one request report knows, on the current server span: the unit (the span
    is renamed ``"<adapter type> <unit>"``) and, for a failed MCP call answered with 200,
    ``error.type``. MCP reports tool calls, resource reads and prompts; REST and skill
    report their request."""
    span = _api.trace.get_current_span()
    if not span.is_recording():
        return
    if unit:
        span.update_name(f"{adapter_type} {unit}")
        span.set_attributes({"naftiko.unit": unit, "naftiko.status": status})
    else:
        span.set_attribute("naftiko.status", status)
    # HTTP statuses mark the span in :class:`_ServerSpans` (a 4xx is not a server error);
    # an MCP failure is answered 200 with ``isError``, as the MCP conventions name it.
    if is_error and adapter_type == "mcp":
        span.set_attribute("error.type", "tool_error")
        span.set_status(_api.ERROR)


# --------------------------------------------------------------------------- steps


def step_started(name: str, kind: str, operation: str | None = None) -> tuple[Span, object]:
    """A span for one orchestration step, made current (its upstream calls nest in it);
    give the pair to :func:`step_ended`."""
    api = _api
    attributes = {"naftiko.step.name": name, "naftiko.step.type": kind}
    if operation:
        attributes["naftiko.step.operation"] = operation
    span = _tracer.start_span(f"step {name}", kind=api.INTERNAL, attributes=attributes)  # type: ignore[union-attr]
    return span, api.context.attach(api.trace.set_span_in_context(span))


def step_ended(started: tuple[Span, object], answer: object = None) -> None:
    """End a step span; ``answer`` (a Problem, or a response with a status >= 400) marks
    it failed."""
    span, token = started
    error = _error_type(answer)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(_api.ERROR)
    _api.context.detach(token)
    span.end()


def _error_type(answer: object) -> str | None:
    if isinstance(answer, Problem):
        return answer.kind.value
    status = getattr(answer, "status", None)
    return str(status) if isinstance(status, int) and status >= 400 else None


# --------------------------------------------------------------------------- upstream calls


def upstream_started(
    method: str, url: str, headers: MutableMapping[str, str], namespace: str, operation: str
) -> Span:
    """A CLIENT span for one upstream attempt (child of the current span); its context
    is written into ``headers`` (``traceparent``, ``tracestate``), replacing any spelling
    of them already there. End it with :func:`upstream_ended`."""
    api = _api
    span = _tracer.start_span(  # type: ignore[union-attr]
        method, kind=api.CLIENT, attributes={"http.request.method": method}
    )
    if span.is_recording():  # a span the sampler dropped is sent upstream, never shown
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "url.full": redacted_url(url),
            "naftiko.upstream.namespace": namespace,
            "naftiko.upstream.operation": operation,
        }
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        if port is not None:
            attributes["server.port"] = port
        span.set_attributes(attributes)
    for name in [n for n in headers if n.lower() in ("traceparent", "tracestate")]:
        del headers[name]
    api.propagator.inject(headers, api.trace.set_span_in_context(span))
    return span


def upstream_ended(span: Span, status: int | None, error: str | None) -> None:
    """End an upstream span: the response status when one came, ``error.type`` when the
    exchange failed (our error kind: ``timeout``, ``unreachable``...) or answered >= 400."""
    if error is None and status is not None and status >= 400:
        error = str(status)
    if error is not None:
        attributes: dict[str, Any] = {"error.type": error}
        if status is not None:
            attributes["http.response.status_code"] = status
        span.set_attributes(attributes)
        span.set_status(_api.ERROR)
    elif status is not None:
        span.set_attribute("http.response.status_code", status)
    span.end()


def redacted_url(url: str) -> str:
    """``url`` for ``url.full``: credentials and every query value replaced by REDACTED,
    the fragment dropped (it is never sent)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}:{REDACTED}@{netloc.rpartition('@')[2]}"
        query = "&".join(
            f"{pair.partition('=')[0]}={REDACTED}" if pair else ""
            for pair in parts.query.split("&")
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", ""))
    except ValueError:
        return REDACTED
