"""Knobs of the protocol adapters that are not in the document."""

from __future__ import annotations

from dataclasses import dataclass

from naftiko.adapters.http.origin import HostOriginPolicy
from naftiko.adapters.http.rate_limit import AdapterLimit, RateLimiter


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    max_body_bytes: int = 1024 * 1024  # REST request bodies over this get 413
    mcp_stateless: bool = True  # stateful sessions (Mcp-Session-Id) when False
    mcp_json_response: bool = True  # one JSON body instead of SSE for streamable HTTP
    # Host headers accepted besides loopback names (naftiko.adapters.http.origin): a bare name
    # on any port, name:port on that port; "*" accepts any host, () loopback names only.
    allowed_hosts: tuple[str, ...] = ("*",)
    # Origins accepted besides the one a request reached ("*": any); see origin.py.
    allowed_origins: tuple[str, ...] = ()
    # Caller rate limits (naftiko.adapters.http.rate_limit); None: no adapter is limited.
    rate_limiter: RateLimiter | None = None

    def host_origin_policy(self) -> HostOriginPolicy:
        """The Host/Origin check every HTTP adapter makes first."""
        return HostOriginPolicy(self.allowed_hosts, self.allowed_origins)

    def rate_limit(self, adapter_type: str, namespace: str) -> AdapterLimit | None:
        """The limit of one adapter (None: not limited)."""
        if self.rate_limiter is None:
            return None
        return self.rate_limiter.for_adapter(adapter_type, namespace)
