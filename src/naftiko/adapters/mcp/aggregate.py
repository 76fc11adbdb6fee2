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

Inbound authentication (a contract, README "Gateway"): a member whose adapter declares
``authentication`` brings that adapter's own check (``Member.auth``). Its tools,
resources, resource templates and prompts are listed to a request only when the
request's credentials pass that check (each list is filtered per request, before
pagination), and a ``tools/call`` of one of its tools without them is an ``isError``
result with the reason its own ``/PREFIX/mcp`` gives (``Unauthorized: ...``), nothing of
the tool; a ``resources/read`` or ``prompts/get`` the same reason as an MCP error. Members
without authentication stay open to everyone. The credentials are read from the HTTP
request that carried the message (``ctx.request``), never from a session: in a stateful
session every request is checked again. The ``tools/call`` fast path serves only open
members' tools; a protected member's call takes the SDK's path, which has the request.

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
from starlette.requests import HTTPConnection

from naftiko import __version__
from naftiko.adapters.http.auth import AuthFailure, InboundAuth
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
    ``auth`` is the adapter's own inbound authentication (None: open to everyone).
    """

    prefix: str
    handlers: McpHandlers
    hold: Callable[[], AbstractContextManager[Any]] | None = None
    auth: InboundAuth | None = None

    async def refusal(self, ctx: Any) -> AuthFailure | None:
        """Why the request behind ``ctx`` may not reach this member; None when it may."""
        if self.auth is None:
            return None
        request = getattr(ctx, "request", None)
        if not isinstance(request, HTTPConnection):  # no HTTP request to check: refuse
            return NO_REQUEST
        return await self.auth.check(request)


NO_REQUEST = AuthFailure(401, None, "Unauthorized", "Credentials are required.")


def refusal_text(failure: AuthFailure) -> str:
    """The reason of a refusal, as the member's own endpoint gives it (title and detail)."""
    return f"{failure.title}: {failure.detail}"


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
        self.open_tools: dict[str, ToolEntry] = {}  # of members without authentication
        self.routes: dict[str, tuple[Member, str]] = {}
        self.tools_of: dict[int, list[types.Tool]] = {}  # by id(member), in member order
        for member in self.members:
            listed = self.tools_of.setdefault(id(member), [])
            for name, entry in member.handlers.tools.items():
                public = tool_names[(member.prefix, name)]
                tool = entry.tool.model_copy(update={"name": public})
                self.tools[public] = replace(entry, tool=tool)
                if member.auth is None:
                    self.open_tools[public] = self.tools[public]
                self.routes[public] = (member, name)
                listed.append(tool)
        self.tool_list = [entry.tool for entry in self.tools.values()]
        self.prompt_routes: dict[str, tuple[Member, str]] = {}
        self.prompt_list: list[types.Prompt] = []
        self.prompts_of: dict[int, list[types.Prompt]] = {}
        for member in self.members:
            listed_prompts = self.prompts_of.setdefault(id(member), [])
            for prompt in member.handlers.prompt_list.prompts:
                public = prompt_names[(member.prefix, prompt.name)]
                self.prompt_routes[public] = (member, prompt.name)
                renamed = prompt.model_copy(update={"name": public})
                self.prompt_list.append(renamed)
                listed_prompts.append(renamed)
        self.protected = any(m.auth is not None for m in self.members)

    async def visible(self, ctx: Any) -> tuple[Member, ...]:
        """The members the request behind ``ctx`` may see, in member order."""
        if not self.protected:
            return self.members
        return tuple([m for m in self.members if await m.refusal(ctx) is None])

    async def visible_items(
        self, ctx: Any, whole: list[Any], by_member: dict[int, list[Any]]
    ) -> list[Any]:
        """Of a list kept whole and per member (tools, prompts), what ``ctx`` may see: the
        whole list when every member is visible, else the visible members' parts."""
        members = await self.visible(ctx)
        if len(members) == len(self.members):
            return whole
        return [item for m in members for item in by_member[id(m)]]


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
        tools = await self.table.visible_items(ctx, self.table.tool_list, self.table.tools_of)
        page, cursor = _page(tools, getattr(params, "cursor", None))
        return types.ListToolsResult(tools=page, next_cursor=cursor)

    async def on_call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        self._remember(ctx)
        route = self.table.routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool {params.name!r}.")
        member, name = route
        # Held from before the check: a reload must not close the engine in between.
        with (member.hold or _NO_HOLD)():
            failure = await member.refusal(ctx)
            if failure is not None:
                return error_result(refusal_text(failure))
            return await member.handlers.on_call_tool(ctx, params.model_copy(update={"name": name}))

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        request_id: str | None = None,
        *,
        caller: str | None = None,
    ) -> types.CallToolResult:
        """The fast path's call (:class:`OpenTools`): it has no request to check
        credentials on, so a protected member's tool is refused here."""
        route = self.table.routes.get(name)
        if route is None:  # the table changed since the fast path looked the name up
            return error_result(f"Unknown tool {name!r}.")
        member, original = route
        if member.auth is not None:  # the same: a reload protected it meanwhile
            return error_result(refusal_text(NO_REQUEST))
        with (member.hold or _NO_HOLD)():
            # The member's own limit: the same bucket as a call through /PREFIX/mcp.
            return await member.handlers.call_tool(original, arguments, request_id, caller=caller)

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """The schema the SDK checks ``Mcp-Param-*`` headers against, before any handler
        runs: none for a protected member's tool (its refusal would describe the tool)."""
        entry = self.table.open_tools.get(name)
        return entry.input_schema if entry is not None else None

    # ------------------------------------------------------------------ resources

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        self._remember(ctx)
        seen: dict[str, types.Resource] = {}
        for member in await self.table.visible(ctx):
            listed = await member.handlers.list_resources(ctx, params)
            for resource in listed.resources:
                seen.setdefault(str(resource.uri), resource)
        page, cursor = _page(list(seen.values()), getattr(params, "cursor", None))
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: Any, params: Any
    ) -> types.ListResourceTemplatesResult:
        templates: dict[str, types.ResourceTemplate] = {}
        for member in await self.table.visible(ctx):
            for template in res.list_templates(member.handlers.dynamic):
                templates.setdefault(template.uri_template, template)
        page, cursor = _page(list(templates.values()), getattr(params, "cursor", None))
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=cursor)

    async def read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        refused: AuthFailure | None = None
        for member in self.table.members:
            try:
                member.handlers._match(uri)
            except res.ResourceFailure:
                continue
            with (member.hold or _NO_HOLD)():
                failure = await member.refusal(ctx)
                if failure is None:
                    return await member.handlers.read_resource(ctx, params)
            refused = refused or failure  # another member may serve it to this caller
        if refused is not None:
            raise MCPError(INVALID_PARAMS, refusal_text(refused))
        raise MCPError(INVALID_PARAMS, f"Unknown resource URI: {uri}")

    # ------------------------------------------------------------------ prompts

    async def list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        self._remember(ctx)
        table = self.table
        prompts = await table.visible_items(ctx, table.prompt_list, table.prompts_of)
        page, cursor = _page(prompts, getattr(params, "cursor", None))
        return types.ListPromptsResult(prompts=page, next_cursor=cursor)

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        route = self.table.prompt_routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name!r}")
        member, name = route
        with (member.hold or _NO_HOLD)():
            failure = await member.refusal(ctx)
            if failure is not None:
                raise MCPError(INVALID_PARAMS, refusal_text(failure))
            return await member.handlers.get_prompt(ctx, params.model_copy(update={"name": name}))


class OpenTools:
    """The aggregate as the ``tools/call`` fast path sees it: only the tools of members
    without authentication. The fast path has no request to check credentials on, so a
    protected member's tool goes to the SDK's path (:meth:`AggregateHandlers.on_call_tool`)."""

    def __init__(self, handlers: AggregateHandlers) -> None:
        self.handlers = handlers

    @property
    def tools(self) -> dict[str, ToolEntry]:
        return self.handlers.table.open_tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        request_id: str | None = None,
        *,
        caller: str | None = None,
    ) -> types.CallToolResult:
        return await self.handlers.call_tool(name, arguments, request_id, caller=caller)


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

    No inbound authentication of its own: each protected member's check applies to its
    own tools, resources and prompts (module docstring).
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
        endpoint = ToolCallFastPath(
            endpoint, server, OpenTools(handlers), manager.max_request_body_size
        )
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
