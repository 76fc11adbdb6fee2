"""Knobs of the protocol adapters that are not in the document."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    max_body_bytes: int = 1024 * 1024  # REST request bodies over this get 413
    mcp_stateless: bool = True  # stateful sessions (Mcp-Session-Id) when False
    mcp_json_response: bool = True  # one JSON body instead of SSE for streamable HTTP
    # Host headers accepted by the MCP DNS-rebinding check; "*" accepts any host.
    allowed_hosts: tuple[str, ...] = ("*",)
