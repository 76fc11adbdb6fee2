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
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import mcp_types as types
from mcp_types import INVALID_PARAMS
from starlette.applications import Starlette
from starlette.middleware import Middleware

from naftiko import __version__
from naftiko.adapters.http.origin import HostOriginMiddleware
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp import resources as res
from naftiko.adapters.mcp.fast_path import ToolCallFastPath
from naftiko.adapters.mcp.results import ToolEntry, error_result
from naftiko.adapters.mcp.sdk import (
    MCPError,
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
    """One MCP adapter in the aggregate: the prefix it is served at and its handlers."""

    prefix: str
    handlers: McpHandlers


class AggregateHandlers:
    """Request handlers over many members; duck-types :class:`McpHandlers` where the fast
    path reads it (``tools``, ``call_tool``)."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = tuple(members)
        tool_names = assign_names(
            [(m.prefix, name) for m in self.members for name in m.handlers.tools]
        )
        prompt_names = assign_names(
            [(m.prefix, name) for m in self.members for name in m.handlers.prompts]
        )
        self.tools: dict[str, ToolEntry] = {}
        self.routes: dict[str, tuple[McpHandlers, str]] = {}
        for member in self.members:
            for name, entry in member.handlers.tools.items():
                public = tool_names[(member.prefix, name)]
                tool = entry.tool.model_copy(update={"name": public})
                self.tools[public] = replace(entry, tool=tool)
                self.routes[public] = (member.handlers, name)
        self.tool_list = [entry.tool for entry in self.tools.values()]
        self.prompt_routes: dict[str, tuple[McpHandlers, str]] = {}
        self.prompt_list: list[types.Prompt] = []
        for member in self.members:
            for prompt in member.handlers.prompt_list.prompts:
                public = prompt_names[(member.prefix, prompt.name)]
                self.prompt_routes[public] = (member.handlers, prompt.name)
                self.prompt_list.append(prompt.model_copy(update={"name": public}))

    @property
    def has_resources(self) -> bool:
        return any(m.handlers.plan.resources for m in self.members)

    # ------------------------------------------------------------------ tools

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        tools, cursor = _page(self.tool_list, getattr(params, "cursor", None))
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def on_call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        route = self.routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool {params.name!r}.")
        handlers, name = route
        return await handlers.on_call_tool(ctx, params.model_copy(update={"name": name}))

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, request_id: str | None = None
    ) -> types.CallToolResult:
        route = self.routes.get(name)
        if route is None:  # the fast path only calls names it found in ``tools``
            return error_result(f"Unknown tool {name!r}.")
        handlers, original = route
        return await handlers.call_tool(original, arguments, request_id)

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self.tools.get(name)
        return entry.input_schema if entry is not None else None

    # ------------------------------------------------------------------ resources

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        seen: dict[str, types.Resource] = {}
        for member in self.members:
            listed = await member.handlers.list_resources(ctx, params)
            for resource in listed.resources:
                seen.setdefault(str(resource.uri), resource)
        page, cursor = _page(list(seen.values()), getattr(params, "cursor", None))
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: Any, params: Any
    ) -> types.ListResourceTemplatesResult:
        templates: dict[str, types.ResourceTemplate] = {}
        for member in self.members:
            for template in res.list_templates(member.handlers.dynamic):
                templates.setdefault(template.uri_template, template)
        page, cursor = _page(list(templates.values()), getattr(params, "cursor", None))
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=cursor)

    async def read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        for member in self.members:
            with contextlib.suppress(res.ResourceFailure):
                member.handlers._match(uri)
                return await member.handlers.read_resource(ctx, params)
        raise MCPError(INVALID_PARAMS, f"Unknown resource URI: {uri}")

    # ------------------------------------------------------------------ prompts

    async def list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        prompts, cursor = _page(self.prompt_list, getattr(params, "cursor", None))
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        route = self.prompt_routes.get(params.name)
        if route is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name!r}")
        handlers, name = route
        return await handlers.get_prompt(ctx, params.model_copy(update={"name": name}))


def build_aggregate_server(handlers: AggregateHandlers) -> Server[Any]:
    optional: dict[str, Any] = {}
    if handlers.has_resources:
        optional.update(
            on_list_resources=handlers.list_resources,
            on_list_resource_templates=handlers.list_resource_templates,
            on_read_resource=handlers.read_resource,
        )
    if handlers.prompt_list:
        optional.update(on_list_prompts=handlers.list_prompts, on_get_prompt=handlers.get_prompt)
    prefixes = ", ".join(m.prefix for m in handlers.members) or "none"
    server: Server[Any] = Server(
        "naftiko-gateway",
        version=__version__,
        instructions=f"Every tool of the MCP adapters served by this gateway ({prefixes}).",
        get_tool_input_schema=handlers.input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.on_call_tool,
        **optional,
    )
    return server


def build_aggregate_app(
    members: Sequence[Member],
    settings: AdapterSettings = AdapterSettings(),  # noqa: B008  (frozen, safe to share)
) -> Starlette:
    """Streamable HTTP for the aggregate, as ``build_mcp_app`` serves one adapter: the
    Host/Origin check first, the SDK's session manager, the ``tools/call`` fast path.

    No inbound authentication of its own: the gateway only makes members of adapters
    that declare none (a protected adapter's tools stay behind its own ``/PREFIX/mcp``).
    """
    handlers = AggregateHandlers(members)
    server = build_aggregate_server(handlers)
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
        Middleware(HostOriginMiddleware, policy=settings.host_origin_policy(), reply="jsonrpc")
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
