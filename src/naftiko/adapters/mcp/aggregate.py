"""The gateway's aggregate MCP endpoint: every tool, resource and prompt of many MCP adapters.

Each member is an adapter's :class:`~naftiko.adapters.mcp.server.McpHandlers` under the
prefix the gateway serves it at. A ``tools/call`` here is the member's own
``call_tool`` (the same engine path, metrics and errors as ``/PREFIX/mcp``); nothing is
compiled twice.

Naming rule (a contract: agents and scripts keep tool names), :func:`aggregate_name`:
a tool ``NAME`` of the adapter served at ``/PREFIX`` is ``PREFIX__NAME`` (two
underscores) when that matches ``^[A-Za-z0-9_-]{1,64}$``. Otherwise (too long, or a
character outside that set) it is that text with every other character turned into
``_``, cut to 55 characters, then ``-`` and the first 8 hex digits of
SHA-256(``PREFIX`` NUL ``NAME``): 64 at most, the same on every start. Should two
names still coincide (``a__b`` + ``c`` and ``a`` + ``b__c``), each of them takes the
hashed form. Prompts are named the same way. Resources keep their URIs (a URI is already
global); a ``resources/read`` goes to the first member, in file order, that serves the
URI, and a URI served by two members is listed once.

``tools/list``, ``resources/list`` and ``prompts/list`` are paginated by an opaque
cursor (:data:`PAGE_SIZE` items a page); a cursor that is not ours is invalid params.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import mcp_types as types
from mcp_types import INVALID_PARAMS
from starlette.applications import Starlette
from starlette.middleware import Middleware

from naftiko import __version__
from naftiko.adapters.http.common import tracing_layers
from naftiko.adapters.http.origin import HostOriginMiddleware
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp import resources as res
from naftiko.adapters.mcp.fast_path import ToolCallFastPath
from naftiko.adapters.mcp.results import ToolEntry, error_result
from naftiko.adapters.mcp.sdk import (
    MCPError,
    NotificationOptions,
    Server,
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from naftiko.adapters.mcp.server import McpHandlers, McpPaths, transport_security

__all__ = ["AggregateHandlers", "aggregate_name", "assign_names", "build_aggregate_app"]

log = logging.getLogger("naftiko.adapters.mcp.aggregate")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEPARATOR = "__"
MAX_NAME = 64
_HASH_DIGITS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
PAGE_SIZE = 100


def hashed_name(prefix: str, name: str) -> str:
    """The shortened, hash-suffixed form of ``PREFIX__NAME`` (see the module docstring)."""
    digest = hashlib.sha256(f"{prefix}\0{name}".encode()).hexdigest()[:_HASH_DIGITS]
    safe = _UNSAFE.sub("_", f"{prefix}{SEPARATOR}{name}")
    return f"{safe[: MAX_NAME - _HASH_DIGITS - 1]}-{digest}"


def aggregate_name(prefix: str, name: str) -> str:
    """``PREFIX__NAME`` when valid as it is, else :func:`hashed_name`."""
    plain = f"{prefix}{SEPARATOR}{name}"
    return plain if NAME_PATTERN.match(plain) else hashed_name(prefix, name)


def assign_names(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Unique aggregate names for ``(prefix, name)`` pairs; coinciding ones are hashed."""
    wanted = {pair: aggregate_name(*pair) for pair in dict.fromkeys(pairs)}
    counts: dict[str, int] = {}
    for name in wanted.values():
        counts[name] = counts.get(name, 0) + 1
    names = {
        pair: hashed_name(*pair) if counts[name] > 1 else name for pair, name in wanted.items()
    }
    if len(set(names.values())) != len(names):  # 32 bits of SHA-256 coinciding as well
        raise ValueError("aggregate MCP names are not unique; rename a tool or a namespace")
    return names


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"naftiko:{offset}".encode()).decode()


def _page(items: Sequence[Any], cursor: str | None) -> tuple[list[Any], str | None]:
    """``PAGE_SIZE`` items from the cursor's offset, and the next cursor (None at the end)."""
    offset = 0
    if cursor:
        try:
            text = base64.urlsafe_b64decode(cursor.encode()).decode()
            tag, _, number = text.partition(":")
            offset = int(number)
            if tag != "naftiko" or not 0 <= offset <= len(items):
                raise ValueError(cursor)
        except (ValueError, UnicodeError):
            raise MCPError(INVALID_PARAMS, "Invalid cursor") from None
    end = offset + PAGE_SIZE
    return list(items[offset:end]), _cursor(end) if end < len(items) else None


@dataclass(frozen=True, slots=True)
class Member:
    """One MCP adapter in the aggregate: the prefix it is served at and its handlers.

    ``hold``, when given, is entered around every call routed to this member: the
    gateway counts it as in flight on the member's app generation, so a reload closes
    that generation's engine only after the aggregate's calls to it are done too.
    """

    prefix: str
    handlers: McpHandlers
    hold: Callable[[], AbstractContextManager[Any]] | None = None


_NO_HOLD = contextlib.nullcontext


class AggregateTable:
    """The aggregate's member table: names, routes and lists, built whole from members.

    Immutable once built; :meth:`AggregateHandlers.replace` swaps the whole table in one
    assignment, so a request sees either the previous members or the new ones.
    """

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = tuple(members)
        tool_names = assign_names(
            [(m.prefix, name) for m in self.members for name in m.handlers.tools]
        )
        prompt_names = assign_names(
            [(m.prefix, name) for m in self.members for name in m.handlers.prompts]
        )
        self.tools: dict[str, ToolEntry] = {}
        self.routes: dict[str, tuple[Member, str]] = {}
        for member in self.members:
            for name, entry in member.handlers.tools.items():
                public = tool_names[(member.prefix, name)]
                tool = entry.tool.model_copy(update={"name": public})
                self.tools[public] = replace(entry, tool=tool)
                self.routes[public] = (member, name)
        self.tool_list = [entry.tool for entry in self.tools.values()]
        self.prompt_routes: dict[str, tuple[Member, str]] = {}
        self.prompt_list: list[types.Prompt] = []
        for member in self.members:
            for prompt in member.handlers.prompt_list.prompts:
                public = prompt_names[(member.prefix, prompt.name)]
                self.prompt_routes[public] = (member, prompt.name)
                self.prompt_list.append(prompt.model_copy(update={"name": public}))


# Sessions remembered for change notifications, at most; the oldest are forgotten first.
MAX_SESSIONS = 10_000


class AggregateHandlers:
    """Request handlers over many members; duck-types :class:`McpHandlers` where the fast
    path reads it (``tools``, ``call_tool``)."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.table = AggregateTable(members)
        # Stateful sessions that made a request, by connection: the ones a change is
        # announced to (a stateless request has no session to announce anything on).
        self._sessions: dict[int, Any] = {}

    def replace(self, members: Sequence[Member]) -> None:
        """Serve ``members`` from now on (the table is built first, then swapped)."""
        self.table = AggregateTable(members)

    @property
    def members(self) -> tuple[Member, ...]:
        return self.table.members

    @property
    def tools(self) -> dict[str, ToolEntry]:
        return self.table.tools

    @property
    def routes(self) -> dict[str, tuple[Member, str]]:
        return self.table.routes

    @property
    def prompt_list(self) -> list[types.Prompt]:
        return self.table.prompt_list

    def _remember(self, ctx: Any) -> None:
        session = getattr(ctx, "session", None)
        connection = getattr(session, "_connection", None)
        if connection is None or getattr(connection, "session_id", None) is None:
            return  # stateless: nowhere to send a notification later
        key = id(connection)
        if key not in self._sessions:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = session

    async def announce_change(self) -> int:
        """Send ``notifications/tools/list_changed`` (and the prompts and resources ones)
        to every open session that made a request; returns how many got it."""
        sent = 0
        for key, session in list(self._sessions.items()):
            try:
                await session.send_tool_list_changed()
                await session.send_prompt_list_changed()
                await session.send_resource_list_changed()
            except Exception as exc:  # a closed session: forget it
                log.debug("list_changed not sent: %r", exc)
                self._sessions.pop(key, None)
                continue
            sent += 1
        return sent

    @property
    def has_resources(self) -> bool:
        return any(m.handlers.plan.resources for m in self.table.members)

    # ------------------------------------------------------------------ tools

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        self._remember(ctx)
        tools, cursor = _page(self.table.tool_list, getattr(params, "cursor", None))
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def on_call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        self._remember(ctx)
        route = self.table.routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool {params.name!r}.")
        member, name = route
        with (member.hold or _NO_HOLD)():
            return await member.handlers.on_call_tool(ctx, params.model_copy(update={"name": name}))

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, request_id: str | None = None
    ) -> types.CallToolResult:
        route = self.table.routes.get(name)
        if route is None:  # the table changed since the fast path looked the name up
            return error_result(f"Unknown tool {name!r}.")
        member, original = route
        with (member.hold or _NO_HOLD)():
            return await member.handlers.call_tool(original, arguments, request_id)

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self.table.tools.get(name)
        return entry.input_schema if entry is not None else None

    # ------------------------------------------------------------------ resources

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        self._remember(ctx)
        seen: dict[str, types.Resource] = {}
        for member in self.table.members:
            listed = await member.handlers.list_resources(ctx, params)
            for resource in listed.resources:
                seen.setdefault(str(resource.uri), resource)
        page, cursor = _page(list(seen.values()), getattr(params, "cursor", None))
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: Any, params: Any
    ) -> types.ListResourceTemplatesResult:
        templates: dict[str, types.ResourceTemplate] = {}
        for member in self.table.members:
            for template in res.list_templates(member.handlers.dynamic):
                templates.setdefault(template.uri_template, template)
        page, cursor = _page(list(templates.values()), getattr(params, "cursor", None))
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=cursor)

    async def read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        for member in self.table.members:
            with contextlib.suppress(res.ResourceFailure):
                member.handlers._match(uri)
                with (member.hold or _NO_HOLD)():
                    return await member.handlers.read_resource(ctx, params)
        raise MCPError(INVALID_PARAMS, f"Unknown resource URI: {uri}")

    # ------------------------------------------------------------------ prompts

    async def list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        self._remember(ctx)
        prompts, cursor = _page(self.table.prompt_list, getattr(params, "cursor", None))
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        route = self.table.prompt_routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name!r}")
        member, name = route
        with (member.hold or _NO_HOLD)():
            return await member.handlers.get_prompt(ctx, params.model_copy(update={"name": name}))


def build_aggregate_server(handlers: AggregateHandlers, dynamic: bool = False) -> Server[Any]:
    """The SDK server over ``handlers``. ``dynamic`` (``--reload``): members come and go,
    so resources and prompts are served even while no member has any, and the
    ``listChanged`` capabilities are advertised (:meth:`AggregateHandlers.announce_change`)."""
    optional: dict[str, Any] = {}
    if dynamic or handlers.has_resources:
        optional.update(
            on_list_resources=handlers.list_resources,
            on_list_resource_templates=handlers.list_resource_templates,
            on_read_resource=handlers.read_resource,
        )
    if dynamic or handlers.prompt_list:
        optional.update(on_list_prompts=handlers.list_prompts, on_get_prompt=handlers.get_prompt)
    # With members coming and going, the list at start would soon be wrong.
    prefixes = (
        "those under the watched folders"
        if dynamic
        else ", ".join(m.prefix for m in handlers.members) or "none"
    )
    server: Server[Any] = Server(
        "naftiko-gateway",
        version=__version__,
        instructions=f"Every tool of the MCP adapters served by this gateway ({prefixes}).",
        get_tool_input_schema=handlers.input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.on_call_tool,
        **optional,
    )
    if dynamic:
        changes = NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=True
        )
        # The session runner asks the server for its initialisation options without
        # any notification options; bind ours so the handshake advertises listChanged.
        server.create_initialization_options = functools.partial(  # type: ignore[method-assign]
            server.create_initialization_options, changes
        )
    return server


def build_aggregate_app(
    members: Sequence[Member],
    settings: AdapterSettings = AdapterSettings(),  # noqa: B008  (frozen, safe to share)
    *,
    dynamic: bool = False,
) -> Starlette:
    """Streamable HTTP for the aggregate, as ``build_mcp_app`` serves one adapter: the
    Host/Origin check first, the SDK's session manager, the ``tools/call`` fast path.

    No inbound authentication of its own: the gateway only makes members of adapters
    that declare none (a protected adapter's tools stay behind its own ``/PREFIX/mcp``).
    """
    handlers = AggregateHandlers(members)
    server = build_aggregate_server(handlers, dynamic)
    manager = StreamableHTTPSessionManager(
        app=server,
        stateless=settings.mcp_stateless,
        json_response=settings.mcp_json_response,
        security_settings=transport_security(),
    )
    endpoint: Any = StreamableHTTPASGIApp(manager)
    if settings.mcp_stateless and settings.mcp_json_response:
        endpoint = ToolCallFastPath(endpoint, server, handlers, manager.max_request_body_size)  # type: ignore[arg-type]
    middleware = [
        *tracing_layers("mcp", "mcp"),  # the aggregate's requests: adapter "mcp"
        Middleware(HostOriginMiddleware, policy=settings.host_origin_policy(), reply="jsonrpc"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = Starlette(middleware=middleware, lifespan=lifespan)
    app.router.default = McpPaths(endpoint)
    app.state.mcp_server = server
    app.state.aggregate = handlers
    return app
