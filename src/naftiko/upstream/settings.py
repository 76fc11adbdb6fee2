"""Knobs of the engine that are not in the document (timeouts, limits, overrides)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from naftiko import __version__
from naftiko.upstream.resilience import ResilienceSettings


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    # Deadline on one whole upstream exchange (auth, send, headers, body): a body that
    # drips just under ``read_timeout_s`` per chunk must not hold a request forever.
    total_timeout_s: float = 60.0
    max_response_bytes: int = 10 * 1024 * 1024
    follow_redirects: bool = False
    max_connections: int = 100
    # consumes namespace -> base URI, replacing the document's (``--base-uri``)
    base_uri_overrides: Mapping[str, str] = field(default_factory=dict)
    user_agent: str = f"naftiko/{__version__}"
    # The seam for a test double: makes the transport each namespace's client sends on,
    # instead of our ``Http11Transport`` (e.g. ``httpx.MockTransport(router.async_handler)``
    # with a respx router). Every call then takes the general path through httpx's client.
    transport: Callable[[], httpx.AsyncBaseTransport] | None = None
    # Retries, circuit breaker and bulkhead per consumed namespace (``upstream.resilience``).
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
