"""The MCP adapter: translates MCP requests to ``Engine.invoke`` and results back.

Public interface:

* ``build_mcp_server(engine, plan) -> mcp.server.Server`` — the official SDK's low-level
  server with our handlers; tools, resources and prompts come from the plan, and the
  ``Tool`` list is built once here (nothing per request but the call itself).
* ``build_mcp_app(engine, plan, settings=AdapterSettings(), *, bindings=None) -> Starlette`` —
  streamable HTTP. Serves MCP on exactly ``/mcp``, ``/mcp/`` and ``/`` (the reference
  engine's tutorials post to ``/``), never with a 307 redirect; every other path is a 404
  problem (:class:`McpPaths`). Stateless with JSON responses by default
  (``settings.mcp_stateless``, ``settings.mcp_json_response``). DNS rebinding: the Host
  and Origin checks are :class:`~naftiko.adapters.http.origin.HostOriginMiddleware`, the first
  layer, shared with the other adapters (a JSON-RPC error on refusal); the SDK's own check
  stays off (it takes no bare host and no loopback spelling). The app's lifespan runs a
  session manager made for this app (one can only run once). Inbound auth is the shared
  ``InboundAuthMiddleware``; with oauth2 the RFC 9728 metadata document is served,
  unauthenticated, to GET and HEAD at ``protected_resource_metadata_path`` (other methods
  there need a credential and get a 405). The engine is not started or
  closed here: the runtime owns it (several adapters share it).
* ``run_mcp_stdio(engine, plan)`` — newline-delimited JSON-RPC on stdin/stdout; returns
  when stdin closes. Logs go to stderr only (stdout is the protocol).

No templating, upstream calls or mapping live here. Every handler catches everything:
SDK 2.x turns a handler exception into a JSON-RPC internal error, which an agent cannot
act on, so tool failures are ``isError`` results and resource/prompt failures are MCP
errors with a clear message.

Fast path: eligible ``tools/call`` requests of a stateless JSON server are answered by
:class:`~naftiko.adapters.mcp.fast_path.ToolCallFastPath`, the one module that leans on
the SDK's insides; this one uses only the SDK's public API.

Start-up: the SDK's server modules come through :mod:`naftiko.adapters.mcp.sdk`, which
imports them without the SDK's package ``__init__``s; the stdio transport is imported
only by ``run_mcp_stdio``.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import mcp_types as types
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from naftiko import __version__
from naftiko.adapters.http.auth import (
    InboundAuthMiddleware,
    build_inbound_auth,
    protected_resource_metadata,
    protected_resource_metadata_path,
    protected_resource_metadata_url,
)
from naftiko.adapters.http.common import (
    Outcome,
    problem_fields,
    problem_response,
    report_finished,
    request_id_of,
    sane_request_id,
    tracing_layers,
)
from naftiko.adapters.http.origin import HostOriginMiddleware
from naftiko.adapters.http.rate_limit import AdapterLimit, Decision, caller_of
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp import resources as res
from naftiko.adapters.mcp.fast_path import ToolCallFastPath
from naftiko.adapters.mcp.plan import DynamicResourcePlan, McpAdapterPlan, StaticResourcePlan
from naftiko.adapters.mcp.prompts import (
    CompiledPrompt,
    MissingArgument,
    PromptError,
    PromptFileError,
)
from naftiko.adapters.mcp.results import ToolEntry, build_tool, call_tool_result, error_result
from naftiko.adapters.mcp.sdk import (
    CacheHint,
    MCPError,
    Server,
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
    TransportSecuritySettings,
)
from naftiko.engine.types import Inputs
from naftiko.errors import CallerError
from naftiko.spec.binds import Bindings

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

__all__ = ["RATE_LIMITED", "McpHandlers", "build_mcp_app", "build_mcp_server", "run_mcp_stdio"]

log = logging.getLogger("naftiko.adapters.mcp.server")

ADAPTER_TYPE = "mcp"
UNKNOWN_UNIT = "(unknown)"  # metric label for unknown names: callers must not grow label sets
_ROLES = ("user", "assistant")
# The JSON-RPC code of a rate-limit refusal of ``resources/read`` and ``prompts/get``
# (``tools/call`` answers ``isError``). MCP defines none; -32000..-32019 is left to
# implementations, but the SDK's clients raise -32000 (connection closed) and -32001
# (timeout) themselves and -32002 is retired, so the first free code: a client can tell a
# refusal worth retrying later from a broken connection. Not -32600 (INVALID_REQUEST):
# the request is valid, and the same request is accepted once the bucket refills.
RATE_LIMITED = -32003


class McpHandlers:
    """The request handlers of one MCP adapter, built once from its plan.

    ``engine`` is anything with ``async invoke(unit, inputs) -> Result`` that never raises
    (``naftiko.engine.invoke.Engine``). ``limit``: the adapter's caller rate limit, one
    bucket per caller taken by every ``tools/call`` of a known tool (a refusal is an
    ``isError`` result), every ``resources/read`` of a known URI, static or dynamic, and
    every ``prompts/get`` of a known prompt (a refusal is the JSON-RPC error
    :data:`RATE_LIMITED`); listings are free.
    """

    def __init__(
        self, engine: Any, plan: McpAdapterPlan, limit: AdapterLimit | None = None
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.limit = limit
        self.tools: dict[str, ToolEntry] = {}
        for unit in plan.tools:
            if unit.name in self.tools:
                log.warning("mcp %s: duplicate tool %r ignored", plan.namespace, unit.name)
                continue
            self.tools[unit.name] = build_tool(unit)
        self.tool_list = types.ListToolsResult(tools=[e.tool for e in self.tools.values()])
        self.static: list[StaticResourcePlan] = []
        self.dynamic: tuple[res.DynamicEntry, ...] = ()
        self._readers: list[StaticResourcePlan | res.DynamicEntry] = []  # declaration order
        for resource in plan.resources:
            if isinstance(resource, DynamicResourcePlan):
                entry = res.compile_dynamic(resource)
                self.dynamic += (entry,)
                self._readers.append(entry)
            else:
                self.static.append(resource)
                self._readers.append(resource)
        self.prompts = {p.name: CompiledPrompt.compile(p, plan.base_dir) for p in plan.prompts}
        self.prompt_list = types.ListPromptsResult(
            prompts=[_prompt(p) for p in self.prompts.values()]
        )

    # ------------------------------------------------------------------ tools

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return self.tool_list

    async def on_call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in self.tools:
            # 2025-11-25 ("Error Handling"): an unknown tool is a protocol error, -32602.
            outcome = Outcome(unit=UNKNOWN_UNIT, is_error=True)
            self._report(outcome, 404, None, _request_id(ctx))
            raise MCPError(INVALID_PARAMS, self._unknown_tool_text(params.name))
        return await self.call_tool(
            params.name, params.arguments, _request_id(ctx), caller=_caller(ctx)
        )

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        request_id: str | None = None,
        *,
        caller: str | None = None,
    ) -> types.CallToolResult:
        """One ``tools/call``, independent of the transport; never raises. ``caller``: who
        calls (``rate_limit.caller_of``), for the rate limit."""
        started = time.perf_counter()
        entry = self.tools.get(name)
        status, upstream_status, unit_id = 404, None, UNKNOWN_UNIT
        try:
            if entry is None:
                answer = error_result(self._unknown_tool_text(name))
            else:
                unit_id = entry.unit.id
                decision = await self._take(caller)
                if decision is not None and not decision.allowed:
                    status, answer = 429, error_result(decision.message())
                else:
                    result = await self.engine.invoke(
                        entry.unit, Inputs(values=dict(arguments or {}), request_id=request_id)
                    )
                    status, upstream_status = result.status, result.upstream_status
                    answer = call_tool_result(entry, result)
        except Exception:
            log.exception("mcp %s: tools/call %r failed", self.plan.namespace, name)
            status = 500
            answer = error_result(
                f"Internal error while calling tool {name!r}; see the server log."
            )
        outcome = Outcome(unit_id, bool(answer.is_error), upstream_status)
        self._report(outcome, status, started, request_id)
        return answer

    async def _take(self, caller: str | None) -> Decision | None:
        """A token from ``caller``'s bucket (None: no limit); over stdio there is no
        address, so every caller there shares one bucket."""
        if self.limit is None:
            return None
        return await self.limit.take(caller or "address:unknown")

    async def _refuse_over_limit(self, ctx: Any) -> None:
        """Raise the :data:`RATE_LIMITED` error when ``ctx``'s caller has no token left."""
        decision = await self._take(_caller(ctx))
        if decision is not None and not decision.allowed:
            raise RateLimited(decision)

    def _report(
        self, outcome: Outcome, status: int, started: float | None, request_id: str | None
    ) -> None:
        report_finished(ADAPTER_TYPE, self.plan.namespace, outcome, status, started, request_id)

    def _unknown_tool_text(self, name: str) -> str:
        names = list(self.tools)
        text = f"Unknown tool {name!r}."
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            text += f" Did you mean {close[0]!r}?"
        return text + f" Available tools: {', '.join(names) or '(none)'}."

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self.tools.get(name)
        return entry.input_schema if entry is not None else None

    # ------------------------------------------------------------------ resources

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        resources = res.list_dynamic(self.dynamic)
        for plan in self.static:
            try:
                resources.extend(res.list_static(plan))
            except OSError:
                log.exception("mcp %s: cannot list resource %r", self.plan.namespace, plan.name)
        return types.ListResourcesResult(resources=resources)

    async def list_resource_templates(
        self, ctx: Any, params: Any
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=res.list_templates(self.dynamic)
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        started = time.perf_counter()
        request_id = _request_id(ctx)
        uri = str(params.uri)
        unit_id, status, upstream_status = UNKNOWN_UNIT, 200, None
        try:
            try:
                reader, match = self._match(uri)
                dynamic = isinstance(reader, res.DynamicEntry)
                unit_id = reader.plan.unit.id if dynamic else f"{self.plan.namespace}.{reader.name}"
                # Static reads pay too: the simplest rule, and a file is work as well.
                await self._refuse_over_limit(ctx)
                if dynamic:
                    inputs = Inputs(values=match, request_id=request_id)
                    result = await self.engine.invoke(reader.plan.unit, inputs)
                    status, upstream_status = result.status, result.upstream_status
                    contents = res.dynamic_contents(reader.plan, uri, result)
                else:
                    contents = await _in_thread(res.read_static, reader, uri, match)
            except res.ResourceFailure as failure:
                status = failure.status
                raise MCPError(failure.code, failure.message) from None
            except RateLimited as refusal:
                status = 429
                raise refusal.error() from None
            except Exception:
                log.exception("mcp %s: resources/read %r failed", self.plan.namespace, uri)
                status = 500
                raise MCPError(INTERNAL_ERROR, f"Internal error while reading {uri}") from None
        finally:
            outcome = Outcome(unit_id, upstream_status=upstream_status)
            self._report(outcome, status, started, request_id)
        return types.ReadResourceResult(contents=[contents])

    def _match(self, uri: str) -> tuple[Any, Any]:
        """The first declared resource that serves ``uri`` and its variables/relative path."""
        for reader in self._readers:
            if isinstance(reader, res.DynamicEntry):
                variables = reader.match(uri)
                if variables is not None:
                    return reader, variables
                continue
            relative = res.static_relative(reader, uri)
            if relative is not None:
                return reader, relative
        raise res.ResourceFailure(INVALID_PARAMS, f"Unknown resource URI: {uri}", status=404)

    # ------------------------------------------------------------------ prompts

    async def list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        return self.prompt_list

    async def get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        started = time.perf_counter()
        prompt = self.prompts.get(params.name)
        status = 200
        try:
            if prompt is None:
                status = 404
                available = ", ".join(self.prompts) or "(none)"
                raise MCPError(
                    INVALID_PARAMS,
                    f"Unknown prompt: {params.name!r}. Available prompts: {available}",
                )
            try:
                await self._refuse_over_limit(ctx)
                messages = await _in_thread(prompt.render, params.arguments or {})
            except RateLimited as refusal:
                status = 429
                raise refusal.error() from None
            except MissingArgument as exc:
                status = 400
                raise MCPError(
                    INVALID_PARAMS,
                    f"Missing required argument {exc.argument!r} for prompt {prompt.name!r}",
                ) from None
            except PromptFileError as exc:
                status = 500
                raise MCPError(INTERNAL_ERROR, str(exc)) from None
            except PromptError as exc:
                status = 400
                raise MCPError(INVALID_PARAMS, str(exc)) from None
            except Exception:
                log.exception("mcp %s: prompts/get %r failed", self.plan.namespace, params.name)
                status = 500
                raise MCPError(
                    INTERNAL_ERROR, f"Internal error while rendering prompt {params.name!r}"
                ) from None
        finally:
            unit = f"{self.plan.namespace}.{prompt.name}" if prompt else UNKNOWN_UNIT
            self._report(Outcome(unit), status, started, _request_id(ctx))
        return types.GetPromptResult(
            description=prompt.description,
            messages=[
                types.PromptMessage(
                    role=m.role if m.role in _ROLES else "user",
                    content=types.TextContent(text=m.text),
                )
                for m in messages
            ],
        )


class RateLimited(CallerError):
    """A caller over its limit, inside a handler that answers with a JSON-RPC error."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message())
        self.decision = decision

    def error(self) -> MCPError:
        """The words of the ``tools/call`` refusal (:meth:`Decision.message`), and the
        seconds to wait as data, as the REST problem's ``retryAfter``."""
        decision = self.decision
        return MCPError(RATE_LIMITED, decision.message(), {"retryAfter": decision.retry_after_s})


def _prompt(prompt: CompiledPrompt) -> types.Prompt:
    return types.Prompt(
        name=prompt.name,
        title=prompt.title,
        description=prompt.description,
        arguments=[
            types.PromptArgument(
                name=a.name, title=a.title, description=a.description, required=a.required
            )
            for a in prompt.arguments
        ]
        or None,
    )


async def _in_thread(fn: Any, *args: Any) -> Any:
    """File I/O off the event loop (a slow disk must not stall other requests)."""
    return await anyio.to_thread.run_sync(fn, *args)


def _request_id(ctx: Any) -> str | None:
    """The caller's ``X-Request-Id`` when the request came over HTTP and it is sane (it is
    logged and forwarded upstream, so the REST adapter's rule applies)."""
    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    try:
        return sane_request_id(headers.get("x-request-id"))
    except Exception:  # a transport object of unexpected shape: no id rather than a failure
        return None


def _caller(ctx: Any) -> str | None:
    """Who calls, from the HTTP request under the SDK's context (None over stdio)."""
    scope = getattr(getattr(ctx, "request", None), "scope", None)
    return caller_of(scope) if isinstance(scope, dict) else None


# ---------------------------------------------------------------------- public interface


def build_mcp_server(engine: Any, plan: McpAdapterPlan) -> Server[Any]:
    """The low-level SDK server for ``plan``; resources/prompts advertised only when declared."""
    return _server_and_handlers(engine, plan)[0]


def _server_and_handlers(
    engine: Any, plan: McpAdapterPlan, limit: AdapterLimit | None = None
) -> tuple[Server[Any], McpHandlers]:
    handlers = McpHandlers(engine, plan, limit)
    optional: dict[str, Any] = {}
    if plan.resources:
        optional.update(
            on_list_resources=handlers.list_resources,
            on_list_resource_templates=handlers.list_resource_templates,
            on_read_resource=handlers.read_resource,
        )
    if plan.prompts:
        optional.update(on_list_prompts=handlers.list_prompts, on_get_prompt=handlers.get_prompt)
    server: Server[Any] = Server(
        plan.namespace,
        version=plan.version or __version__,
        cache_hints=cache_hints(plan),
        instructions=plan.description,
        get_tool_input_schema=handlers.input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.on_call_tool,
        **optional,
    )
    return server, handlers


# The results MCP 2026-07-28 lets a server mark cacheable that this adapter answers.
_CACHEABLE = (
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
)


def cache_hints(plan: McpAdapterPlan) -> dict[Any, CacheHint] | None:
    """The document's ``ttlMs``/``cacheScope`` for every cacheable result (None: the
    SDK's own, ``0`` and ``private``). The SDK writes them on 2026-07-28 results only
    and drops them from the answers of earlier revisions, which have no such fields."""
    if plan.ttl_ms is None and plan.cache_scope is None:
        return None
    hint = CacheHint(ttl_ms=plan.ttl_ms or 0, scope=plan.cache_scope or "private")
    return dict.fromkeys(_CACHEABLE, hint)


def transport_security() -> TransportSecuritySettings:
    """The SDK's Host/Origin check off: :class:`HostOriginMiddleware` makes ours first."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


MCP_PATHS = frozenset({"/mcp", "/mcp/", "/"})
_NOT_FOUND = problem_fields(
    404, "Not found", "This server answers MCP at /mcp (or /) only.", "not-found"
)
_METADATA_METHODS = "GET, HEAD"


class McpPaths:
    """Routes by exact (decoded) path: MCP on :data:`MCP_PATHS`, the RFC 9728 metadata
    document to GET/HEAD on its path, a 404 problem for anything else.

    Exact comparison on purpose: a catch-all mount sent every path to MCP, so a path the
    auth middleware exempts reached a tool (issue 15), and a Starlette path regex also
    matches a path with a trailing (decoded) newline.
    """

    def __init__(
        self, endpoint: ASGIApp, metadata: tuple[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.metadata_path = metadata[0] if metadata else None
        self.metadata_body = JSONResponse(metadata[1]).body if metadata else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await WebSocketClose()(scope, receive, send)
            return
        path = get_route_path(scope)
        if path in MCP_PATHS:
            await self.endpoint(scope, receive, send)
            return
        response: Response
        if path != self.metadata_path:
            response = problem_response(_NOT_FOUND, request_id_of(scope))
        elif scope["method"] in ("GET", "HEAD"):
            response = Response(self.metadata_body, media_type="application/json")
        else:
            fields = problem_fields(
                405,
                "Method not allowed",
                f"The protected resource metadata answers {_METADATA_METHODS} only.",
                "method-not-allowed",
            )
            headers = {"Allow": _METADATA_METHODS}
            response = problem_response(fields, request_id_of(scope), headers=headers)
        await response(scope, receive, send)


def build_mcp_app(
    engine: Any,
    plan: McpAdapterPlan,
    settings: AdapterSettings = AdapterSettings(),  # noqa: B008  (frozen, safe to share)
    *,
    bindings: Bindings | None = None,
    fast_path: bool = True,
) -> Starlette:
    """The streamable-HTTP app for ``plan`` (see the module docstring).

    ``fast_path`` serves eligible ``tools/call`` requests with :class:`ToolCallFastPath`;
    it only applies to stateless JSON servers (the SDK keeps everything else). Raises
    ``InboundAuthConfigError`` when the authentication block cannot be enforced: an
    adapter must not start open when it was declared protected.
    """
    limit = settings.rate_limit(ADAPTER_TYPE, plan.namespace)
    server, handlers = _server_and_handlers(engine, plan, limit)
    security = transport_security()
    manager = StreamableHTTPSessionManager(
        app=server,
        stateless=settings.mcp_stateless,
        json_response=settings.mcp_json_response,
        security_settings=security,
    )
    endpoint: ASGIApp = StreamableHTTPASGIApp(manager)
    if fast_path and settings.mcp_stateless and settings.mcp_json_response:
        endpoint = ToolCallFastPath(endpoint, server, handlers, manager.max_request_body_size)
    binds = bindings or Bindings.empty()
    flat, namespaces = binds.as_scope(), binds.namespaced()

    metadata: tuple[str, dict[str, Any]] | None = None
    middleware = [
        *tracing_layers(ADAPTER_TYPE, plan.namespace),
        Middleware(HostOriginMiddleware, policy=settings.host_origin_policy(), reply="jsonrpc"),
    ]
    spec = plan.authentication
    auth = None
    if spec is not None:
        metadata_url: str | None = None
        if spec.type.strip().lower() == "oauth2":
            document = protected_resource_metadata(spec, flat, namespaces)
            metadata = (protected_resource_metadata_path(spec, flat, namespaces), document)
            metadata_url = protected_resource_metadata_url(spec, flat, namespaces)
        auth = build_inbound_auth(spec, flat, namespaces, resource_metadata_url=metadata_url)
        if auth is not None:
            exempt = (metadata[0],) if metadata else ()
            middleware.append(Middleware(InboundAuthMiddleware, auth=auth, exempt_paths=exempt))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = Starlette(middleware=middleware, lifespan=lifespan)
    # No routes: every request goes to the router's default, which is ours to route.
    app.router.default = McpPaths(endpoint, metadata)
    app.state.mcp_server = server
    app.state.mcp_handlers = handlers
    app.state.inbound_auth = auth  # the gateway's aggregate applies it to these handlers
    return app


async def run_mcp_stdio(engine: Any, plan: McpAdapterPlan) -> None:
    """Serve ``plan`` on stdin/stdout until stdin closes."""
    server = build_mcp_server(engine, plan)
    from mcp.server.stdio import stdio_server  # only stdio adapters need it

    log.info("MCP server started on stdio (namespace: %s)", plan.namespace)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
    log.info("MCP server on stdio stopped (namespace: %s)", plan.namespace)
