"""Gateway mode (``--gateway PORT``): every adapter of every document behind one listener.

Layout (a contract; README "Gateway")::

    /                                  catalogue page (HTML, no JavaScript)
    /mcp                               one MCP endpoint with every tool of every MCP adapter
    /health/live /health/ready /metrics /status    the control endpoints
    /PREFIX<declared path>             a REST adapter's operations
    /PREFIX/.well-known/openapi.json   its OpenAPI document (``servers``: ``/PREFIX``)
    /PREFIX/docs                       its Swagger UI page (assets under /_naftiko/)
    /PREFIX/mcp                        an MCP adapter's own tools, resources and prompts
    /PREFIX/...                        a skill adapter's paths

``PREFIX`` is the adapter's namespace unless ``--prefix [FILE:]NS=OTHER`` says otherwise
(``naftiko.runtime.placement.assign_prefixes``).
Routing compares the first segment of the raw (still percent-encoded) path with the
prefixes, exactly: ``/NS%2Fx``, ``//NS`` and ``/ns`` for ``/NS`` are 404s, never another
adapter, and the member app still runs its own Host/Origin check and inbound
authentication on every request. One dictionary lookup per request, whatever the
number of documents.

An adapter's inbound authentication covers every path of its prefix, every method: its
own app checks what it serves, and the one page the gateway serves under a prefix,
``/PREFIX/docs``, is checked with that adapter's own check (``Member.auth``) before
anything else but Host/Origin. In ``/mcp`` a protected adapter's tools, resources and
prompts are listed and served only to requests its check passes
(``naftiko.adapters.mcp.aggregate``); the catalogue names a protected adapter and its
URL only. The Swagger UI assets under ``/_naftiko/`` are public: they hold nothing of
any document.

Each member is a :class:`~naftiko.runtime.reload.SwappableApp`, as a listener of its
own would be, so a reload can swap one document's apps without touching the others.

A document whose bind variables are not set is served degraded: :class:`DegradedEngine`
answers every unit with a 503 problem naming what is missing (REST: problem+json; MCP:
an ``isError`` result), and the catalogue and ``/status`` show why.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from naftiko.adapters.http.auth import InboundAuth
from naftiko.adapters.http.common import problem_fields, problem_response, request_id_of
from naftiko.adapters.http.origin import HostOriginPolicy, refusal_fields
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.engine.types import AdapterPlan
from naftiko.errors import ErrorKind, Problem
from naftiko.runtime.placement import PlacementError, Slot
from naftiko.runtime.reload import AppGeneration, SwappableApp

# ``naftiko.runtime.process`` imports this module; the runtime and its ``Served`` class
# come in as arguments instead of an import back.
Runtime = Served = Any

log = logging.getLogger("naftiko.runtime.gateway")

GATEWAY_TYPE = "gateway"
CONTROL_PATHS = frozenset({"/health/live", "/health/ready", "/metrics", "/status"})
ASSETS = "/_naftiko/"
SWAGGER_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
DOCS_SCRIPT = b"""\
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: node.getAttribute("data-url"), dom_id: "#swagger-ui",
    deepLinking: true, presets: [SwaggerUIBundle.presets.apis] });
});
"""
HTML_TYPE = "text/html; charset=utf-8"
# The catalogue has no script at all; the docs page runs only our own files.
CATALOGUE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class GatewayListenerPlan(AdapterPlan):
    """The one listener of gateway mode (a ``Slot`` needs a plan)."""


def listener_slot(host: str, port: int) -> Slot:
    plan = GatewayListenerPlan(
        type=GATEWAY_TYPE,  # type: ignore[arg-type]
        namespace=GATEWAY_TYPE,
        address=host,
        port=port,
        description="--gateway",
        authentication=None,
    )
    return Slot(plan=plan, capability=None, host=host, declared_port=port)


# --------------------------------------------------------------------------- degraded


class DegradedEngine(Engine):
    """The engine of a document served degraded: every unit answers a 503 problem naming
    what is missing; nothing is sent upstream (credentials the document needs are not
    there, and calling without them would leak the call and fail anyway)."""

    def __init__(self, compiled: Any, settings: Any, reason: str) -> None:
        super().__init__(compiled, settings)
        self.problem = Problem.of(
            ErrorKind.UNCONFIGURED,
            "Capability not configured",
            f"This capability is served degraded: {reason}. Set it and restart naftiko-run.",
        )

    async def invoke(self, unit: Any, inputs: Any) -> Any:
        from naftiko.engine.types import Result

        return Result.failure(self.problem)

    async def forward(self, forward_plan: Any, inputs: Any) -> Any:
        from naftiko.engine.types import Result

        return Result.failure(self.problem)


class UnavailableApp:
    """A degraded adapter whose app could not be built (its inbound authentication needs a
    bind that is not set): every request gets the 503 problem, after the Host/Origin check."""

    def __init__(self, problem: Problem, policy: HostOriginPolicy) -> None:
        self.problem = problem
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Nothing to start; answering is what lets the gateway start with it (an app
            # that returns without a word fails the start, and the whole gateway with it).
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        refused = self.policy.refusal(scope)
        fields = refusal_fields(refused) if refused is not None else self.problem.as_json()
        await problem_response(fields, request_id_of(scope))(scope, receive, send)


# --------------------------------------------------------------------------- the app


@dataclass
class Member:
    """One adapter under its prefix."""

    prefix: str
    served: Served
    docs: bytes | None = None  # the REST adapter's docs page
    auth: InboundAuth | None = None  # the adapter's inbound authentication, for the docs page

    @property
    def app(self) -> SwappableApp:
        assert self.served.app is not None
        return self.served.app


@cache
def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - a dependency; docs pages then say so
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


@cache
def _asset(name: str) -> bytes | None:
    if name == "docs.js":
        return DOCS_SCRIPT
    folder = _swagger_dir()
    if name not in SWAGGER_FILES or folder is None:
        return None
    try:
        return (folder / name).read_bytes()
    except OSError:
        return None


def docs_page(title: str, prefix: str) -> bytes:
    """The Swagger UI page of one REST adapter; its scripts are ours, from this server."""
    title_text = html.escape(f"{title} — API docs")
    spec = html.escape(f"/{prefix}/.well-known/openapi.json", quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title_text}</title>
<link rel="icon" href="{ASSETS}swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}swagger-ui/swagger-ui.css"></head>
<body><p><a href="/">All capabilities</a> · <a href="{spec}">OpenAPI document</a></p>
<div id="swagger-ui" data-url="{spec}"></div>
<noscript>This page needs JavaScript; the API is described in <a href="{spec}">its
OpenAPI document</a>.</noscript>
<script src="{ASSETS}swagger-ui/swagger-ui-bundle.js"></script>
<script src="{ASSETS}docs.js"></script></body></html>
""".encode()


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    media: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class GatewayApp:
    """The ASGI app of the gateway listener (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        members: Sequence[Member],
        aggregate: SwappableApp | None,
        control: SwappableApp,
        policy: HostOriginPolicy,
    ) -> None:
        self.runtime = runtime
        self.members = {m.prefix: m for m in members}
        self.aggregate = aggregate
        self.control = control
        self.policy = policy

    def _apps(self) -> list[SwappableApp]:
        apps = [m.app for m in self.members.values()]
        return [*apps, self.control, *([self.aggregate] if self.aggregate else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return  # no websockets here; the server closes the connection
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
        segment, _, rest = path[1:].partition("/")
        member = self.members.get(segment)
        if member is not None:
            if member.docs is not None and rest in ("docs", "docs/"):
                await self._own(
                    scope, send, member.docs, HTML_TYPE, DOCS_CSP, auth=member.auth, receive=receive
                )
                return
            # The server makes a scope per request: set the mount point in place.
            scope["root_path"] = scope.get("root_path", "") + "/" + segment
            await member.app(scope, receive, send)
        elif path in ("/mcp", "/mcp/") and self.aggregate is not None:
            await self.aggregate(scope, receive, send)
        elif path in CONTROL_PATHS:
            await self.control(scope, receive, send)
        elif path == "/":
            page = self.runtime_catalogue()
            await self._own(scope, send, page, HTML_TYPE, CATALOGUE_CSP)
        elif path.startswith(ASSETS):
            await self._asset(scope, send, path[len(ASSETS) :])
        else:
            await self._not_found(scope, receive, send)

    def runtime_catalogue(self) -> bytes:
        from naftiko.runtime.catalogue import render_catalogue

        return render_catalogue(self.runtime, self)

    async def _own(
        self,
        scope: Scope,
        send: Send,
        body: bytes,
        media: str,
        csp: str,
        *,
        auth: InboundAuth | None = None,
        receive: Receive | None = None,
    ) -> None:
        """A page of the gateway's own: Host/Origin checked, then ``auth`` (the inbound
        authentication of the adapter the page is about) for every method, GET and HEAD only."""
        refused = self.policy.refusal(scope)
        if refused is not None:
            fields = refusal_fields(refused)
            await _reply(send, int(fields["status"]), _json(fields), "application/problem+json")
            return
        if auth is not None:
            failure = await auth.check(HTTPConnection(scope))
            if failure is not None:
                assert receive is not None
                await failure.response()(scope, receive, send)
                return
        if scope["method"] not in ("GET", "HEAD"):
            fields = problem_fields(
                405, "Method not allowed", "This page answers GET and HEAD.", "method-not-allowed"
            )
            extra = [(b"allow", b"GET, HEAD")]
            await _reply(send, 405, _json(fields), "application/problem+json", extra)
            return
        extra = [
            (b"content-security-policy", csp.encode()),
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
        ]
        await _reply(send, 200, body, media, extra, head=scope["method"] == "HEAD")

    async def _asset(self, scope: Scope, send: Send, name: str) -> None:
        folder, _, file = name.rpartition("/")
        data = _asset(file) if folder in ("swagger-ui", "") else None
        if data is None or (folder == "") != (file == "docs.js"):
            await self._not_found(scope, None, send)
            return
        media = SWAGGER_FILES.get(file, "text/javascript; charset=utf-8")
        await self._own(scope, send, data, media, DOCS_CSP)

    async def _not_found(self, scope: Scope, receive: Receive | None, send: Send) -> None:
        fields = problem_fields(
            404,
            "Not found",
            "No adapter is served at this path; GET / lists every one.",
            "not-found",
        )
        await _reply(send, 404, _json(fields), "application/problem+json")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        started: list[SwappableApp] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for app in self._apps():
                        await app.current.start()
                        started.append(app)
                except Exception as exc:
                    log.error("gateway failed to start: %s", exc)
                    for app in reversed(started):
                        await app.current.stop()
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The members now (a reload may have added some since the start; the
                # ones it retired are stopped already, and stopping again is a no-op).
                for app in reversed(self._apps()):
                    await app.current.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _json(fields: dict[str, Any]) -> bytes:
    from naftiko.adapters.http.common import json_bytes

    return json_bytes(fields)


# --------------------------------------------------------------------------- building


@dataclass
class GatewayParts:
    """What :func:`prepare_gateway` built, for the catalogue and ``/status``."""

    members: list[Member] = field(default_factory=list)
    aggregated: set[str] = field(default_factory=set)  # prefixes whose tools are in /mcp
    tool_names: dict[tuple[str, str], str] = field(default_factory=dict)  # (prefix, tool)
    handlers: Any = None  # the aggregate's AggregateHandlers, when /mcp is served
    app: Any = None  # the GatewayApp


def build_member(
    runtime: Runtime, served: Served, prefix: str, gateway: Served
) -> tuple[Member | None, Any]:
    """The gateway member of one placed adapter and, for an MCP adapter, its member of the
    aggregate ``/mcp`` with the adapter's inbound authentication (else ``None``).

    ``(None, None)`` when this build serves no such adapter. Raises :class:`PlacementError`
    when an adapter that is not degraded cannot be built."""
    from naftiko.adapters.mcp.aggregate import Member as AggregateMember
    from naftiko.adapters.rest.app import build_rest_app

    config = runtime.config
    host = config.bind_host(None)
    settings = runtime.adapter_settings(host)
    slot, capability = served.slot, served.slot.capability
    engine = runtime.engines.get(capability.path) if capability else None
    try:
        if isinstance(slot.plan, RestAdapterPlan) and capability is not None:
            app: ASGIApp | None = build_rest_app(
                engine,
                slot.plan,
                settings,
                bindings=capability.loaded.bindings,
                info=capability.loaded.document.info,
                server_url=f"/{prefix}",
            )
        else:
            app = runtime.build_app(replace(slot, host=host), engine)
    except ValueError as exc:  # InboundAuthConfigError and friends
        if capability is None or not capability.degraded:
            raise PlacementError([f"{slot.name()}: {exc}"]) from None
        app = UnavailableApp(engine.problem, settings.host_origin_policy())  # type: ignore[union-attr]
    if app is None:
        served.state = "not-served"
        return None, None
    # The check the adapter's own app makes, for what the gateway serves of it elsewhere
    # (its docs page, its tools in /mcp); an UnavailableApp has none and answers 503.
    built = isinstance(slot.plan, RestAdapterPlan | McpAdapterPlan) and hasattr(app, "state")
    auth = getattr(app.state, "inbound_auth", None) if built else None  # type: ignore[union-attr]
    if built and slot.plan.authentication is not None and auth is None:  # never served open
        raise PlacementError([f"{slot.name()}: its inbound authentication was not built"])
    generation = AppGeneration(app, slot.name())
    served.app = SwappableApp(generation)
    served.via, served.prefix = gateway, prefix
    member = Member(prefix, served, auth=auth)
    if built and isinstance(slot.plan, RestAdapterPlan):
        title = capability.label if capability else slot.namespace
        member.docs = docs_page(title, prefix)
    aggregated = None
    if built and isinstance(slot.plan, McpAdapterPlan):
        aggregated = AggregateMember(prefix, app.state.mcp_handlers, generation.hold, auth)  # type: ignore[union-attr]
    return member, aggregated


def tool_names(handlers: Any) -> dict[tuple[str, str], str]:
    """``(prefix, tool) -> name in /mcp`` for the catalogue."""
    return {(member.prefix, name): public for public, (member, name) in handlers.routes.items()}


def prepare_gateway(runtime: Runtime, served_type: Any) -> Served:
    """Build every member app, the aggregate, the control app and the gateway app; the
    returned ``served_type`` is the one listener (the runtime binds and serves it).

    With ``--reload`` the aggregate ``/mcp`` is served even while no member is in it
    (one may come), and announces list changes (``naftiko.runtime.gateway_reload``).

    Raises :class:`PlacementError` (exit 2) when the prefixes clash or an adapter that is not
    degraded cannot be built."""
    from naftiko.adapters.control.app import build_control_app
    from naftiko.adapters.control.plan import ControlAdapterPlan
    from naftiko.adapters.mcp.aggregate import build_aggregate_app

    config = runtime.config
    assert config.gateway_port is not None
    host = config.bind_host(None)
    settings = runtime.adapter_settings(host)
    policy = settings.host_origin_policy()
    members_served = list(runtime.served)
    prefixes = [s.slot.mount.lstrip("/") for s in members_served]  # placement.gateway_slots
    gateway = served_type(listener_slot(host, config.gateway_port))
    parts = GatewayParts()
    aggregate_members = []
    for served, prefix in zip(members_served, prefixes, strict=True):
        member, aggregated = build_member(runtime, served, prefix, gateway)
        if member is None:
            continue
        parts.members.append(member)
        if aggregated is not None:
            aggregate_members.append(aggregated)
            parts.aggregated.add(prefix)
    aggregate = None
    if aggregate_members or config.reload:
        try:
            aggregate_app = build_aggregate_app(aggregate_members, settings, dynamic=config.reload)
        except ValueError as exc:
            raise PlacementError([f"naftiko-run: --gateway: {exc}"]) from None
        parts.handlers = aggregate_app.state.aggregate
        parts.tool_names = tool_names(parts.handlers)
        aggregate = SwappableApp(AppGeneration(aggregate_app, "mcp (aggregate)"))
    control_plan = ControlAdapterPlan(
        type="control",
        namespace="control",
        address=None,
        port=None,
        description="the gateway's control endpoints",
        authentication=None,
    )
    control = SwappableApp(
        AppGeneration(build_control_app(runtime, control_plan, settings), "control")
    )
    app = GatewayApp(runtime, parts.members, aggregate, control, policy)
    gateway.app = SwappableApp(AppGeneration(app, "gateway"))
    parts.app = app
    runtime.gateway = parts
    shadowed = [
        m.served.slot.name()
        for m in parts.members
        if m.docs is not None
        and any(r.path.rstrip("/") == "/docs" for r in m.served.slot.plan.routes)  # type: ignore[attr-defined]
    ]
    for name in shadowed:
        log.warning("%s: its /docs resource is shadowed by the gateway's docs page", name)
    return gateway
