"""The MCP fast path: ``tools/call`` answered without the SDK's per-request transport.

The one module of ours that leans on the MCP SDK's insides; ``naftiko.adapters.mcp.sdk``
imports the SDK, ``naftiko.adapters.mcp.server`` uses only its public API.

Why: the SDK spends more CPU on its per-request transport (a task, memory streams, a
dispatcher, a session, pydantic envelopes) than we spend on a whole upstream call, so
:class:`ToolCallFastPath` answers the common request itself: a stateless JSON server,
one JSON-RPC ``tools/call`` request POSTed as ``application/json`` that passes every
check the SDK would make, in either protocol era. Anything else, or anything it is
unsure of, is replayed to the SDK untouched, before the tool runs; the answer is the
SDK's, byte for byte (``tests/adapters/test_mcp_fast_path.py`` proves it).

What it relies on, all public names of ``mcp``/``mcp_types`` 2.3 but not a documented
contract, so an SDK upgrade must re-run that test:

* the streamable HTTP transport's checks, restated here: ``Content-Type`` (a prefix
  test, then an exact one), ``Accept`` with a JSON type, the ``Content-Length`` limit
  (``StreamableHTTPSessionManager.max_request_body_size``), duplicated routing headers,
  and ``Mcp-Param-*`` headers (left to the SDK, as are tools whose schema declares
  them: ``X_MCP_HEADER_KEY``);
* ``mcp.shared.inbound``: the protocol-version header names, ``classify_inbound_request``
  and ``InboundLadderRejection`` (the 2026-07-28 era's request checks) and
  ``ERROR_CODE_HTTP_STATUS`` (that era's HTTP status of an error);
* ``mcp_types.methods``: ``validate_client_request`` (the params as the SDK validates
  them) and ``serialize_server_result`` (the result as the SDK's
  ``ServerRunner._serialize`` sends it; the envelopes of each era are restated in
  :meth:`ToolCallFastPath._encode`);
* ``mcp_types.version``: which versions belong to which era;
* ``Server.get_request_handler``, ``Server.middleware`` and ``Server.cache_hints``: the
  server is still the one built (our ``tools/call`` handler, the SDK's default
  middleware, no cache hint), else the SDK serves; ``Server.server_info_stamp``: the
  ``_meta`` stamp of modern results;
* OpenTelemetry: with an SDK installed the SDK's path runs, so that its spans are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import mcp_types as types
import pydantic_core
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INTERNAL_ERROR,
    SERVER_INFO_META_KEY,
    JSONRPCError,
    JSONRPCResponse,
)
from mcp_types import methods as _methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, get_tracer_provider
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naftiko.adapters.http.common import (
    REQUEST_ID_BYTES,
    UnfinishedBody,
    receive_body,
    sane_request_id,
)
from naftiko.adapters.http.rate_limit import caller_of
from naftiko.adapters.mcp.sdk import (
    ERROR_CODE_HTTP_STATUS,
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    X_MCP_HEADER_KEY,
    InboundLadderRejection,
    MCPError,
    Server,
    classify_inbound_request,
)

__all__ = ["ToolCallFastPath", "ToolHandlers"]

log = logging.getLogger("naftiko.adapters.mcp.server")


class ToolHandlers(Protocol):
    """What the fast path calls (``naftiko.adapters.mcp.server.McpHandlers``)."""

    @property
    def tools(self) -> Mapping[str, Any]:
        """Tool name -> ``ToolEntry`` (its ``input_schema``)."""
        ...

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        request_id: str | None = None,
        *,
        caller: str | None = None,
    ) -> types.CallToolResult: ...


_ACCEPT = b"accept"
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_VERSION = MCP_PROTOCOL_VERSION_HEADER.encode()
_ROUTING = frozenset({_VERSION, MCP_METHOD_HEADER.encode(), MCP_NAME_HEADER.encode()})
_PARAM_PREFIX = MCP_PARAM_HEADER_PREFIX.lower().encode()
_ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_JSON_HEADERS = (b"content-type", b"application/json")
_TOOLS_CALL = "tools/call"


def _accepts_json(accept: bytes) -> bool:
    """``check_accept_headers``' JSON half (RFC 7231 wildcards), on the raw header."""
    types_ = {t.split(b";")[0].strip().lower() for t in accept.split(b",")}
    return bool(types_ & {b"*/*", b"application/json", b"application/*"})


def _tracing() -> bool:
    """True when an OpenTelemetry SDK is installed: the SDK path then records the spans."""
    return not isinstance(get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)


def _replay_of(read: UnfinishedBody) -> list[Message]:
    """The messages read of a body the fast path could not finish, for the SDK to read."""
    body: Message = {"type": "http.request", "body": read.data, "more_body": read.more_body}
    if read.interrupted_by is None:
        return [body]
    return [body, read.interrupted_by] if read.started else [read.interrupted_by]


class _Replay:
    """A ``receive`` that hands back what the fast path already read, then the rest."""

    __slots__ = ("messages", "receive")

    def __init__(self, messages: list[Message], receive: Receive) -> None:
        self.messages = messages
        self.receive = receive

    async def __call__(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return await self.receive()


class ToolCallFastPath:
    """Answers stateless-JSON ``tools/call`` POSTs without the SDK's transport (module doc).

    Before the tool runs, every check is the SDK's own or stricter: any doubt
    (another method, a batch, a notification, a header or envelope the SDK would
    reject, ``Mcp-Param-*`` headers, an active OpenTelemetry SDK, a changed server) hands
    the untouched request to ``sdk``. After the tool ran, the result goes through the
    SDK's serialiser, and the SDK's ``INTERNAL_ERROR`` if that rejects it.
    """

    def __init__(
        self, sdk: ASGIApp, server: Server[Any], handlers: ToolHandlers, max_body: int
    ) -> None:
        self.sdk = sdk
        self.server = server
        self.handlers = handlers
        self.max_body = max_body
        self.entry = server.get_request_handler(_TOOLS_CALL)
        self.middleware = tuple(server.middleware)
        self._sdk_tools: tuple[Any, frozenset[str]] = (None, frozenset())
        self.server_info = server.server_info_stamp
        self.accept_cache: dict[bytes, bool] = {}

    @property
    def sdk_tools(self) -> frozenset[str]:
        """The tools the SDK must serve: it validates Mcp-Param-* headers for tools whose
        schema declares them. Worked out again when the handlers' tool table is another
        (the gateway's aggregate replaces its table on reload)."""
        tools = self.handlers.tools
        seen, names = self._sdk_tools
        if seen is not tools:
            names = frozenset(
                name for name, e in tools.items() if X_MCP_HEADER_KEY in json.dumps(e.input_schema)
            )
            self._sdk_tools = (tools, names)
        return names

    def _server_unchanged(self) -> bool:
        """Still the server we built: our handler, the SDK's default middleware, no hints."""
        server = self.server
        return (
            server.get_request_handler(_TOOLS_CALL) is self.entry
            and len(server.middleware) == len(self.middleware)
            and all(a is b for a, b in zip(server.middleware, self.middleware, strict=True))
            and _TOOLS_CALL not in server.cache_hints
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.sdk(scope, receive, send)
            return
        # One pass over the headers; the first value wins, as in Starlette's ``Headers.get``.
        accept = content_type = length = request_id = None
        routing: dict[str, str] = {}
        eligible = True
        for key, value in scope["headers"]:
            if key in _ROUTING:
                name = key.decode("latin-1")
                if name in routing:  # the SDK rejects a duplicated routing header
                    eligible = False
                routing[name] = value.decode("latin-1")
            elif key == _ACCEPT:
                accept = value if accept is None else accept
            elif key == _CONTENT_TYPE:
                content_type = value if content_type is None else content_type
            elif key == _CONTENT_LENGTH:
                length = value if length is None else length
            elif key == REQUEST_ID_BYTES:
                request_id = value if request_id is None else request_id
            elif key.startswith(_PARAM_PREFIX):
                eligible = False
        if (
            not eligible
            # The SDK's Content-Type checks: a prefix test, then an exact, case-sensitive one.
            or content_type is None
            or content_type.split(b";", 1)[0].strip() != b"application/json"
            or accept is None
            or not self._accepts_json(accept)
            or self._declared_too_large(length)
        ):
            await self.sdk(scope, receive, send)
            return
        read = await receive_body(receive, self.max_body)
        if not isinstance(read, bytes):  # too large, or not a plain body: the SDK decides
            await self.sdk(scope, _Replay(_replay_of(read), receive), send)
            return
        answer = await self._answer(read, routing, request_id, scope)
        if answer is None:
            replay = [{"type": "http.request", "body": read, "more_body": False}]
            await self.sdk(scope, _Replay(replay, receive), send)
            return
        status, body = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), _JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _declared_too_large(self, length: bytes | None) -> bool:
        """The SDK's body-limit test on Content-Length (it answers 413 without reading)."""
        try:
            return length is not None and int(length) > self.max_body
        except ValueError:
            return False

    def _accepts_json(self, accept: bytes) -> bool:
        known = self.accept_cache.get(accept)
        if known is None:
            known = _accepts_json(accept)
            if len(self.accept_cache) < 64:  # clients send a handful of distinct values
                self.accept_cache[accept] = known
        return known

    async def _answer(
        self, body: bytes, routing: dict[str, str], request_id: bytes | None, scope: Scope
    ) -> tuple[int, bytes] | None:
        """``(status, JSON)`` for a request the fast path serves, else ``None`` (nothing ran)."""
        if _tracing() or not self._server_unchanged():
            return None
        version = routing.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is None:
            modern, version = False, DEFAULT_NEGOTIATED_VERSION
        else:
            if version in HANDSHAKE_PROTOCOL_VERSIONS:
                modern = False
            elif version in MODERN_PROTOCOL_VERSIONS:
                modern = True
            else:
                return None
        # Each era's own parser: pydantic-core for the handshake era, json for 2026-07-28.
        try:
            decoded = json.loads(body) if modern else pydantic_core.from_json(body)
        except (ValueError, RecursionError):
            return None
        if (
            type(decoded) is not dict
            or decoded.keys() != _ENVELOPE_KEYS
            or decoded["jsonrpc"] != "2.0"
            or decoded["method"] != _TOOLS_CALL
            or type(decoded["id"]) not in (int, str)
            or type(decoded["params"]) is not dict
        ):
            return None
        rpc_id, params = decoded["id"], decoded["params"]
        if modern and isinstance(
            classify_inbound_request(decoded, headers=routing), InboundLadderRejection
        ):
            return None
        try:
            _methods.validate_client_request(_TOOLS_CALL, version, params)
            call = types.CallToolRequestParams.model_validate(params, by_name=False)
        except (ValidationError, KeyError, ValueError):
            return None
        if (modern and call.name in self.sdk_tools) or call.name not in self.handlers.tools:
            return None  # the SDK's path answers (an unknown tool is its JSON-RPC error)
        rid = sane_request_id(request_id.decode("latin-1")) if request_id is not None else None
        result = await self.handlers.call_tool(
            call.name, call.arguments, rid, caller=caller_of(scope)
        )
        return self._encode(rpc_id, version, modern, result)

    def _encode(
        self, rpc_id: int | str, version: str, modern: bool, result: types.CallToolResult
    ) -> tuple[int, bytes]:
        """The SDK's wire form: ``ServerRunner._serialize``, then each era's envelope."""
        message: JSONRPCResponse | JSONRPCError
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            dumped = _methods.serialize_server_result(_TOOLS_CALL, version, dumped)
        except ValidationError:
            log.exception("handler for %r returned an invalid result", _TOOLS_CALL)
            error = MCPError(INTERNAL_ERROR, "Handler returned an invalid result").error
            message = JSONRPCError(jsonrpc="2.0", id=rpc_id, error=error)
        else:
            if modern:
                if dumped.get("resultType") is None:
                    dumped["resultType"] = "complete"
                meta = dumped.get("_meta")
                if meta is None:
                    dumped["_meta"] = {SERVER_INFO_META_KEY: self.server_info}
                elif isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
                    dumped["_meta"] = {**meta, SERVER_INFO_META_KEY: self.server_info}
            message = JSONRPCResponse(jsonrpc="2.0", id=rpc_id, result=dumped)
        if not modern:
            return 200, message.model_dump_json(by_alias=True, exclude_unset=True).encode()
        wire = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        status = 200
        if isinstance(message, JSONRPCError):
            status = ERROR_CODE_HTTP_STATUS.get(message.error.code, 200)
        return status, json.dumps(wire, separators=(",", ":")).encode()
