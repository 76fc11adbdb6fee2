"""The Host/Origin policy on its own: what each header combination gets."""

from __future__ import annotations

from typing import Any

import pytest

from naftiko.adapters.http.origin import HostOriginPolicy, is_loopback, normalize_origin, split_host


def scope(host: str | None, origin: str | None, port: int = 8080) -> dict[str, Any]:
    headers = []
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "headers": headers, "server": ("127.0.0.1", port)}


LOOPBACK_ONLY = HostOriginPolicy(())
ANY_HOST = HostOriginPolicy(("*",))
LISTED = HostOriginPolicy(("gw", "api.example:9000"), ("https://app.example",))


@pytest.mark.parametrize(
    ("policy", "host", "origin", "expected"),
    [
        (LOOPBACK_ONLY, "127.0.0.1:8080", None, None),
        (LOOPBACK_ONLY, "localhost:8080", "http://127.0.0.1:8080", None),
        (LOOPBACK_ONLY, "[::1]:8080", "http://localhost:8080", None),
        (LOOPBACK_ONLY, "127.0.0.1:8080", "http://127.0.0.1:8081", 403),
        (LOOPBACK_ONLY, "evil.example:8080", None, 421),
        (LOOPBACK_ONLY, "evil.example:8080", "http://evil.example:8080", 421),
        (LOOPBACK_ONLY, None, None, 421),
        (LOOPBACK_ONLY, "bad host", None, 421),
        (ANY_HOST, "svc:8080", "http://svc:8080", None),
        (ANY_HOST, "svc", "http://svc", None),  # default ports on both sides
        (ANY_HOST, "svc", "https://svc", None),  # TLS ended by a proxy in front
        (ANY_HOST, "svc:8080", "http://evil.example", 403),
        (ANY_HOST, "svc:8080", "null", 403),
        (ANY_HOST, None, "http://127.0.0.1:8080", None),  # HTTP/1.0: the listener's port
        (LISTED, "gw:1234", None, None),
        (LISTED, "gw", None, None),
        (LISTED, "api.example:9000", None, None),
        (LISTED, "api.example:9001", None, 421),
        (LISTED, "gw.evil:8080", None, 421),
        (LISTED, "gw:8080", "https://app.example", None),
        (LISTED, "gw:8080", "https://app.example:443", None),
        (LISTED, "gw:8080", "http://app.example", 403),
    ],
)
def test_policy(
    policy: HostOriginPolicy, host: str | None, origin: str | None, expected: int | None
) -> None:
    refused = policy.refusal(scope(host, origin))
    assert (refused[0] if refused else None) == expected


def test_any_origin() -> None:
    assert HostOriginPolicy(("*",), ("*",)).refusal(scope("x", "http://evil.example")) is None


def test_parsing() -> None:
    assert split_host("Example.COM:80") == ("example.com", 80)
    assert split_host("[::1]:8080") == ("[::1]", 8080)
    assert split_host("[::1]") == ("[::1]", None)
    for bad in ("", "a b", "host:0", "host:99999", "[::1", "a/b", "host:x"):
        with pytest.raises(ValueError):
            split_host(bad)
    assert normalize_origin("HTTP://Example.com") == "http://example.com:80"
    assert normalize_origin("*") == "*"
    for bad in ("example.com", "ftp://x", "http://x/path", "null"):
        with pytest.raises(ValueError):
            normalize_origin(bad)
    assert all(map(is_loopback, ("localhost", "127.0.0.5", "::1", "[::1]", "a.localhost")))
    assert not any(map(is_loopback, ("localhost.evil", "10.0.0.1", "evil.example")))
