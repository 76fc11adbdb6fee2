"""How the runtime configures uvicorn for every adapter server."""

from __future__ import annotations

from typing import Any

from naftiko.runtime.config import RuntimeConfig
from naftiko.runtime.http_protocol import LimitedHttpToolsProtocol
from naftiko.runtime.logs import Redactor
from naftiko.runtime.metrics import Metrics
from naftiko.runtime.process import Runtime


def runtime() -> Runtime:
    return Runtime(RuntimeConfig(paths=()), [], [], redactor=Redactor(), metrics=Metrics())


async def test_forwarded_headers_are_not_trusted_by_default() -> None:
    """A local peer's ``X-Forwarded-For``/``-Proto`` change neither client nor scheme."""
    seen: list[dict[str, Any]] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope)

    config = runtime()._uvicorn_config(app)
    config.load()
    scope = {
        "type": "http",
        "scheme": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
    }

    async def never(*_: object) -> None:
        raise AssertionError("not expected")

    await config.loaded_app(dict(scope), never, never)
    assert seen[0]["client"] == ("127.0.0.1", 50000)
    assert seen[0]["scheme"] == "http"


def test_requests_come_in_through_the_limited_protocol() -> None:
    """The listener limits hold on every adapter (tests/hardening/test_hardening_listeners.py)."""

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        pass

    config = runtime()._uvicorn_config(app)
    config.load()
    assert config.http_protocol_class is LimitedHttpToolsProtocol


def test_every_listener_gets_the_configured_limits() -> None:
    from naftiko.runtime.http_protocol import ListenerConfig

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        pass

    config = RuntimeConfig(
        paths=(),
        max_header_bytes=100,
        header_timeout_s=2.0,
        idle_timeout_s=3.0,
        keep_alive_timeout_s=11.0,
        max_connections=4,
    )
    made = Runtime(config, [], [], redactor=Redactor(), metrics=Metrics())._uvicorn_config(
        app, "rest shop (port 1)"
    )
    assert isinstance(made, ListenerConfig)
    assert made.listener_guard.name == "rest shop (port 1)"
    assert made.listener_guard.limits == config.listener_limits()
    assert made.timeout_keep_alive == 11.0  # between requests: the keep-alive timeout


def test_descriptor_room_is_made_or_reported() -> None:
    import resource

    from naftiko.runtime.process import ensure_descriptor_room

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ensure_descriptor_room(1, 1) is None
    warning = ensure_descriptor_room(4, 10**9)
    assert warning is not None and "--max-connections" in warning
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft  # never lowered
