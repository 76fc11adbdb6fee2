"""The MCP SDK's server modules, imported without the SDK's package ``__init__``s.

``mcp/__init__`` and ``mcp/server/__init__`` import the whole SDK: the client (httpx2,
cryptography), the high-level ``MCPServer`` and its resource/prompt managers, none of
which the adapter uses. This module registers both packages unexecuted, imports the
server modules the adapter needs, and re-exports them: ``naftiko.adapters.mcp.server`` imports
the SDK only from here. Importing this module is what exposing MCP costs at start-up
(``bench/run`` reports it as a floor of the start-up time).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = [
    "ERROR_CODE_HTTP_STATUS",
    "MCP_METHOD_HEADER",
    "MCP_NAME_HEADER",
    "MCP_PARAM_HEADER_PREFIX",
    "MCP_PROTOCOL_VERSION_HEADER",
    "X_MCP_HEADER_KEY",
    "CacheHint",
    "InboundLadderRejection",
    "MCPError",
    "NotificationOptions",
    "Server",
    "StreamableHTTPASGIApp",
    "StreamableHTTPSessionManager",
    "TransportSecuritySettings",
    "classify_inbound_request",
]


def _skip_sdk_package_inits() -> None:
    """Import the SDK's server modules without running ``mcp/__init__`` and ``mcp.server``'s.

    Those two ``__init__`` files import the whole SDK: the client (httpx2, cryptography),
    the high-level ``MCPServer`` and its resource/prompt managers, none of which this
    adapter uses. Skipping them saves over a hundred modules and a noticeable part of
    start-up. The packages
    are registered unexecuted (their ``__path__`` is all that importing a submodule
    needs) and run their real ``__init__`` the first time anything asks for a name they
    define (``from mcp import ClientSession``), so every other user of the SDK in this
    process sees the usual package. Nothing happens when ``mcp`` is already imported.
    """
    if "mcp" in sys.modules:
        return
    for name in ("mcp", "mcp.server"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return  # not a regular package: let the normal import run
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = _LazyInit(module)  # type: ignore[method-assign]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


class _LazyInit:
    """A package's ``__getattr__`` that runs its real ``__init__`` once, on first need."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.lock = threading.RLock()
        self.state = "pending"  # -> "running" -> "done"

    def __call__(self, name: str) -> Any:
        with self.lock:
            if self.state == "pending":
                self.state = "running"  # names asked for meanwhile are missing, as usual
                try:
                    spec = self.module.__spec__
                    assert spec is not None and spec.loader is not None
                    spec.loader.exec_module(self.module)
                finally:
                    self.state = "done"
                    vars(self.module).pop("__getattr__", None)
        try:
            return vars(self.module)[name]
        except KeyError:
            raise AttributeError(
                f"module {self.module.__name__!r} has no attribute {name!r}"
            ) from None


# The SDK imports below must come after this call.
# ruff: noqa: E402
_skip_sdk_package_inits()

from mcp.server.caching import CacheHint
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    X_MCP_HEADER_KEY,
    InboundLadderRejection,
    classify_inbound_request,
)
